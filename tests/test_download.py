"""`mer-bench datasets download` and `weights download` against a server on the loopback
interface: tiny archives in each dataset's real layout, interrupted and resumed transfers, a
server without range requests, checksum mismatches, unexpected layouts, manual steps and no
network at all."""

import dataclasses
import hashlib
import io
import json
import socket
import tarfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

import mer_bench_plugins.datasets.deam as deam_plugin
from mer_bench.cli import cli
from mer_bench.dataset_download import DOWNLOADED, FAILED, MANUAL, PRESENT, download_dataset
from mer_bench.download import fetch, unpack
from mer_bench.errors import DownloadError
from mer_bench.plugin_manager import load_plugins
from mer_bench.types import RemoteFile
from mer_bench_plugins.models import imagenet_weights
from mer_bench_plugins.models.imagenet_weights import resolve_weights
from tests import layouts
from tests.conftest import BUILTINS, run_cli
from tests.http_server import LoopbackServer


def served_at(url: str) -> str:
    """The path a mirror serves ``url`` under (``--mirror`` maps it to ``<mirror>/<host>/<path>``)."""
    parts = urlsplit(url)
    return f"/{parts.netloc}{parts.path}"


def zipped(folder: Path, under: str = "") -> bytes:
    """A zip of ``folder``'s contents, inside a folder ``under`` when given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, str(Path(under) / path.relative_to(folder)))
    return buffer.getvalue()


def tarred(folder: Path, name: str) -> bytes:
    """A .tar.gz holding ``folder`` as ``name/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        t.add(folder, arcname=name)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Each downloadable dataset's archives, by the URL its plugin declares."""
    src = tmp_path_factory.mktemp("archives")
    layouts.fourq(src / "4q", per_quadrant=2)
    layouts.emomusic(src / "emo", per_quadrant=2)
    layouts.deam(src / "deam", per_quadrant=1)
    files = {
        "http://mir.dei.uc.pt/resources/MER_audio_taffc_dataset.zip": zipped(src / "4q", "MER_audio_taffc_dataset"),
        "http://cvml.unige.ch/databases/emoMusic/clips_45sec.tar.gz": tarred(src / "emo" / "clips_45seconds", "clips_45seconds"),
        "http://cvml.unige.ch/databases/emoMusic/annotations.tar.gz": tarred(src / "emo" / "annotations", "annotations"),
        "https://cvml.unige.ch/databases/DEAM/DEAM_audio.zip": zipped(src / "deam" / "MEMD_audio", "MEMD_audio"),
        "https://cvml.unige.ch/databases/DEAM/DEAM_Annotations.zip": zipped(src / "deam" / "annotations", "annotations"),
    }
    return files


@pytest.fixture
def server(archives):
    with LoopbackServer() as server:
        server.served.files.update({served_at(url): body for url, body in archives.items()})
        yield server


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(BUILTINS, entry_points=False)


def unchecked_deam(monkeypatch):
    """DEAM's spec without the real archives' sizes and checksums, which tiny archives cannot have."""
    files = tuple(dataclasses.replace(f, size=None, sha256=None) for f in deam_plugin.DOWNLOAD.files)
    monkeypatch.setattr(deam_plugin, "DOWNLOAD", dataclasses.replace(deam_plugin.DOWNLOAD, files=files))


def test_download_unpacks_each_layout_verifies_it_and_reports_per_dataset(server, archives, tmp_path):
    data = tmp_path / "data"
    args = ("datasets", "download", "4q,emomusic", "pmemo", "--data-dir", str(data), "--mirror", server.url, "--yes", "--json")
    first = run_cli(*args)
    # PMEmo needs a browser: the command says how and exits 1, having done the rest.
    assert first.returncode == 1, first.stderr
    report = json.loads(first.stdout)
    assert {name: r["status"] for name, r in report.items()} == {"4q": DOWNLOADED, "emomusic": DOWNLOADED, "pmemo": MANUAL}
    # Each dataset was verified where it was placed: the tiny 4Q keeps the real set's quirks
    # (a clip missing, a folder that disagrees with the annotations), and verify says so.
    four_q = report["4q"]["verify"]
    assert four_q["status"] == "problems" and four_q["missing_audio"] == 1 and four_q["tracks"] == 9
    assert report["emomusic"]["verify"]["status"] == "ok" and report["emomusic"]["verify"]["labelled"] == 8
    assert report["4q"]["root"] == str(data / "MER_audio_taffc_dataset")  # the zip's own folder, not nested
    assert (data / "emoMusic" / "clips_45seconds").is_dir() and (data / "emoMusic" / "annotations").is_dir()
    assert report["pmemo"]["detail"].startswith("PMEmo2019 is shared through Google Drive folders")
    assert f"then put it under {data} as PMEmo2019 (layout: PMEmo2019/metadata.csv" in report["pmemo"]["detail"]
    # The terms were shown before anything was fetched.
    assert "4q: 4Q audio emotion dataset, from https://mir.dei.uc.pt/downloads.html" in first.stderr
    # Archives stay beside their SHA-256, in sha256sum's format; no unpacking folder is left.
    archive = data / "downloads" / "4q" / "MER_audio_taffc_dataset.zip"
    digest = hashlib.sha256(archives["http://mir.dei.uc.pt/resources/MER_audio_taffc_dataset.zip"]).hexdigest()
    assert archive.with_name(archive.name + ".sha256").read_text() == f"{digest}  {archive.name}\n"
    assert sorted(p.name for p in (data / "downloads").rglob("*") if p.name.startswith(".")) == []

    fetched = len(server.served.requests)
    again = run_cli(*args)
    report = json.loads(again.stdout)
    assert report["4q"]["status"] == PRESENT and report["emomusic"]["status"] == PRESENT
    assert len(server.served.requests) == fetched  # nothing fetched twice


def test_an_interrupted_download_continues_with_a_range_request(server, archives, plugins, tmp_path):
    url = "http://cvml.unige.ch/databases/emoMusic/clips_45sec.tar.gz"
    server.served.cut_once[served_at(url)] = 5000
    loader = plugins.dataset("emomusic")
    broken = download_dataset(loader, tmp_path, mirror=server.url)
    assert broken.status == FAILED and "sent 5,000 of" in broken.detail and "the same command continues it" in broken.detail
    part = tmp_path / "downloads" / "emomusic" / "clips_45sec.tar.gz.part"
    assert part.stat().st_size == 5000 and not (tmp_path / "emoMusic").exists()

    done = download_dataset(loader, tmp_path, mirror=server.url)
    assert done.status == DOWNLOADED and "resumed at 5,000 bytes" in done.detail
    assert server.served.requests[-2] == (served_at(url), "bytes=5000-")
    assert (tmp_path / "downloads" / "emomusic" / "clips_45sec.tar.gz").read_bytes() == archives[url]
    assert not part.exists() and len(list((tmp_path / "emoMusic" / "clips_45seconds").glob("*.mp3"))) == 9


def test_a_server_without_range_requests_sends_the_file_again(server, archives, plugins, tmp_path):
    url = "http://mir.dei.uc.pt/resources/MER_audio_taffc_dataset.zip"
    server.served.ranges = False
    part = tmp_path / "downloads" / "4q" / "MER_audio_taffc_dataset.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archives[url][:3000])
    done = download_dataset(plugins.dataset("4q"), tmp_path, mirror=server.url)
    assert done.status == DOWNLOADED and "started again: the server ignored the range request" in done.detail
    assert server.served.requests == [(served_at(url), "bytes=3000-")]
    assert (tmp_path / "downloads" / "4q" / "MER_audio_taffc_dataset.zip").read_bytes() == archives[url]


def test_a_checksum_mismatch_keeps_the_file_aside_and_unpacks_nothing(server, plugins, tmp_path, monkeypatch):
    loader = plugins.dataset("deam")
    # The real spec: the tiny archive's length differs from the real one's, so nothing is fetched.
    refused = download_dataset(loader, tmp_path, mirror=server.url)
    assert refused.status == FAILED
    assert "DEAM_audio.zip is " in refused.detail and "bytes, not the 1,343,203,527 expected" in refused.detail
    assert "By hand instead: download DEAM_audio.zip and DEAM_Annotations.zip" in refused.detail

    files = (dataclasses.replace(deam_plugin.DOWNLOAD.files[0], size=None, sha256="0" * 64), deam_plugin.DOWNLOAD.files[1])
    monkeypatch.setattr(deam_plugin, "DOWNLOAD", dataclasses.replace(deam_plugin.DOWNLOAD, files=files))
    wrong = download_dataset(loader, tmp_path, mirror=server.url)
    aside = tmp_path / "downloads" / "deam" / "DEAM_audio.zip.mismatch"
    assert wrong.status == FAILED and f"not the {'0' * 64} expected" in wrong.detail and f"kept aside as {aside}" in wrong.detail
    assert aside.is_file() and not (tmp_path / "downloads" / "deam" / "DEAM_audio.zip").exists()
    assert not (tmp_path / "DEAM").exists()

    unchecked_deam(monkeypatch)
    done = download_dataset(loader, tmp_path, mirror=server.url)
    assert done.status == DOWNLOADED and done.root == tmp_path / "DEAM"
    assert len(loader.load(done.root).tracks) == 12  # two zips unpacked side by side: audio and annotations


def test_an_archive_with_an_unexpected_layout_is_not_placed(server, plugins, tmp_path):
    url = "http://mir.dei.uc.pt/resources/MER_audio_taffc_dataset.zip"
    stray = tmp_path / "stray"
    (stray / "music").mkdir(parents=True)
    (stray / "music" / "readme.txt").write_text("not the dataset")
    server.served.files[served_at(url)] = zipped(stray)
    outcome = download_dataset(plugins.dataset("4q"), tmp_path / "data", mirror=server.url)
    assert outcome.status == FAILED
    assert "the archives do not unpack into the layout 4q reads" in outcome.detail and "they hold music/" in outcome.detail
    assert not (tmp_path / "data" / "MER_audio_taffc_dataset").exists()
    assert sorted(p.name for p in (tmp_path / "data" / "downloads" / "4q").iterdir()) == ["MER_audio_taffc_dataset.zip", "MER_audio_taffc_dataset.zip.sha256"]


def test_archives_that_reach_outside_their_folder_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(DownloadError, match=r"holds a path outside its folder \(\.\./outside\.txt\)"):
        unpack(evil, tmp_path / "into")
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as t:
        member = tarfile.TarInfo("annotations")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc"
        t.addfile(member)
    with pytest.raises(DownloadError, match="holds a link, a device or a path outside its folder"):
        unpack(link, tmp_path / "into")
    assert not (tmp_path / "outside.txt").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_network_every_download_command_fails_at_once_naming_the_host(tmp_path):
    nowhere = f"http://127.0.0.1:{closed_port()}"
    datasets = run_cli("datasets", "download", "4q", "bimodal", "--data-dir", str(tmp_path), "--mirror", nowhere, "--yes")
    assert datasets.returncode == 1
    assert f"4q: could not reach {nowhere[7:]} (" in datasets.stdout and "no network, or the host is down" in datasets.stdout
    assert "bimodal: download the Bi-Modal dataset (MER_bimodal_dataset) from https://mir.dei.uc.pt/downloads.html" in datasets.stdout
    weights = run_cli("weights", "download", "effnetb3", "--mirror", nowhere, "--yes", env={"KERAS_HOME": str(tmp_path / "keras")})
    assert weights.returncode == 1
    assert weights.stderr.strip().splitlines()[-1].startswith(f"error: could not reach {nowhere[7:]} (")


def test_terms_are_accepted_before_anything_is_fetched(server, tmp_path):
    refused = run_cli("datasets", "download", "4q", "--data-dir", str(tmp_path), "--mirror", server.url)
    assert refused.returncode == 1 and "error: pass --yes to accept the terms above" in refused.stderr
    assert server.served.requests == [] and not (tmp_path / "downloads").exists()


def test_weights_download_places_the_file_where_effnetb3_finds_it_and_refuses_a_wrong_one(tmp_path, monkeypatch):
    weights = b"pretend HDF5 weights " * 1000
    with LoopbackServer() as server:
        server.served.files[served_at(imagenet_weights.IMAGENET_URL)] = weights
        # Keras' MD5 belongs to the real file; this one stands in for it.
        monkeypatch.setattr(imagenet_weights, "IMAGENET_MD5", hashlib.md5(weights).hexdigest())
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
        runner = CliRunner()
        placed = runner.invoke(cli, ["weights", "download", "effnetb3", "--mirror", server.url, "--yes"])
        assert placed.exit_code == 0, placed.output
        where = tmp_path / "keras" / "models" / "efficientnetb3_notop.h5"
        assert f"effnetb3: downloaded: {where} (MD5 checked (Keras' record" in placed.output
        assert resolve_weights("imagenet").path == where and where.read_bytes() == weights
        # Already in place and right: only checked, so no terms to accept (no --yes, no terminal).
        again = runner.invoke(cli, ["weights", "download", "effnetb3", "--mirror", server.url])
        assert f"effnetb3: already present: {where}" in again.output and len(server.served.requests) == 1

        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "other"))
        server.served.files[served_at(imagenet_weights.IMAGENET_URL)] = weights[:-1] + b"!"
        wrong = runner.invoke(cli, ["weights", "download", "effnetb3", "--mirror", server.url, "--yes"])
        assert wrong.exit_code == 1
        assert "efficientnetb3_notop.h5 has MD5 " in wrong.output and "kept aside as" in wrong.output
        assert not (tmp_path / "other" / "models" / "efficientnetb3_notop.h5").exists()
        assert (tmp_path / "other" / "models" / "efficientnetb3_notop.h5.mismatch").is_file()


def test_our_imagenet_hash_is_the_one_keras_records():
    efficientnet = pytest.importorskip("keras.src.applications.efficientnet")
    assert efficientnet.WEIGHTS_HASHES["b3"][1] == imagenet_weights.IMAGENET_MD5
    assert efficientnet.BASE_WEIGHTS_PATH + imagenet_weights.IMAGENET_FILE == imagenet_weights.IMAGENET_URL


TINY = RemoteFile("http://files.example/data/tiny.bin", source="a test")


def test_fetch_continues_or_restarts_as_the_server_answers(tmp_path):
    body = bytes(range(256)) * 40
    with LoopbackServer() as server:
        server.served.files["/files.example/data/tiny.bin"] = body
        dest = tmp_path / "tiny.bin"
        part = tmp_path / "tiny.bin.part"
        # A part as long as the file (stopped before its check): HTTP 416 says so, nothing is fetched again.
        part.write_bytes(body)
        got = fetch(TINY, dest, mirror=server.url)
        assert dest.read_bytes() == body and not got.restarted and server.served.requests[-1][1] == f"bytes={len(body)}-"
        dest.unlink()
        # A server that answers a range request from byte 0: never appended, started again.
        server.served.range_from_zero = True
        part.write_bytes(body[:3000])
        got = fetch(TINY, dest, mirror=server.url)
        assert dest.read_bytes() == body and got.restarted
        # A file already there that fails its check is set aside and fetched anew.
        dest.write_bytes(b"junk")
        checked = dataclasses.replace(TINY, sha256=hashlib.sha256(body).hexdigest())
        got = fetch(checked, dest, mirror=server.url)
        assert dest.read_bytes() == body and got.fetched and "tiny.bin has SHA-256" in got.replaced
        assert (tmp_path / "tiny.bin.mismatch").read_bytes() == b"junk"


def test_fetch_refuses_a_web_page_and_a_body_of_unknown_length(tmp_path):
    with LoopbackServer() as server:
        server.served.files["/files.example/data/tiny.bin"] = b"<html>please fill in the form</html>"
        server.served.content_types["/files.example/data/tiny.bin"] = "text/html; charset=utf-8"
        with pytest.raises(DownloadError, match="answered with a web page, not tiny.bin: the source may want a form"):
            fetch(TINY, tmp_path / "tiny.bin", mirror=server.url)
        server.served.content_types.clear()
        server.served.no_length.add("/files.example/data/tiny.bin")
        with pytest.raises(DownloadError, match="gave no length for tiny.bin, so a cut transfer could not be told"):
            fetch(TINY, tmp_path / "tiny.bin", mirror=server.url)
        assert not (tmp_path / "tiny.bin").exists()
    with pytest.raises(DownloadError, match="mirror '/srv/mirror' is not an http:// or https:// address"):
        fetch(TINY, tmp_path / "tiny.bin", mirror="/srv/mirror")


def test_a_data_directory_that_cannot_be_written_is_a_failed_line(server, plugins, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    outcome = download_dataset(plugins.dataset("4q"), not_a_folder, mirror=server.url)
    assert outcome.status == FAILED and outcome.detail.startswith(f"could not write {not_a_folder / 'downloads'}")


def test_a_tar_of_a_folder_made_with_dot_unpacks(tmp_path):
    (tmp_path / "src" / "annotations").mkdir(parents=True)
    (tmp_path / "src" / "annotations" / "a.csv").write_text("x")
    archive = tmp_path / "dot.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(tmp_path / "src", arcname=".")
    unpack(archive, tmp_path / "into")
    assert (tmp_path / "into" / "annotations" / "a.csv").read_text() == "x"


def test_datasets_list_says_which_datasets_download_themselves():
    listing = run_cli("datasets", "list", env={"COLUMNS": "400"})
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("│")[1].strip(): line for line in listing.stdout.splitlines() if line.startswith("│")}
    assert "fetches it" in rows["4q"] and "fetches it" in rows["deam"]
    assert "says what to fetch by hand" in rows["pmemo"] and "says what to fetch by hand" in rows["bimodal"]
    assert "no download declared" in rows["demo"]


def test_a_command_a_test_runs_cannot_leave_the_loopback_interface(tmp_path):
    outside = run_cli("datasets", "download", "4q", "--data-dir", str(tmp_path), "--mirror", "http://192.0.2.1", "--yes")
    assert outside.returncode == 1
    assert "could not reach 192.0.2.1 (" in outside.stdout and "tests never leave the loopback interface" in outside.stdout
