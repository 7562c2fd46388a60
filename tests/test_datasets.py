"""The four paper datasets, read from tiny copies in their official layouts with the real quirks."""

import json
import shutil

import pandas as pd
import pytest

from mer_bench.discover import discover
from mer_bench.errors import DatasetError
from mer_bench.figures import va_plane
from mer_bench.label import assign_quadrants
from mer_bench.plugin_manager import load_plugins
from mer_bench.results import RunFolder
from mer_bench.types import QUADRANTS
from mer_bench_plugins.datasets.bimodal import BiModal
from mer_bench_plugins.datasets.emomusic import EmoMusic
from mer_bench_plugins.datasets.fourq import FourQ
from mer_bench_plugins.datasets.pmemo import PMEmo
from tests import layouts
from tests.conftest import BUILTINS, run_cli

FOLDERS = {
    "4q": "MER_audio_taffc_dataset",
    "pmemo": "PMEmo2019",
    "emomusic": "emoMusic",
    "bimodal": "MER_bimodal_dataset",
}


@pytest.fixture(scope="session")
def paper_data(tmp_path_factory):
    """A data root with all four datasets under their archive folder names; do not modify."""
    root = tmp_path_factory.mktemp("paper-data")
    facts = {
        "4q": layouts.fourq(root / FOLDERS["4q"]),
        "pmemo": layouts.pmemo(root / FOLDERS["pmemo"]),
        "emomusic": layouts.emomusic(root / FOLDERS["emomusic"]),
        "bimodal": layouts.bimodal(root / FOLDERS["bimodal"]),
    }
    return root, facts


@pytest.fixture
def copy_of(paper_data, tmp_path):
    """A writable copy of one dataset's folder, for tests that damage it."""

    def make(name):
        target = tmp_path / FOLDERS[name]
        shutil.copytree(paper_data[0] / FOLDERS[name], target)
        return target

    return make


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(BUILTINS, entry_points=False)


def reasons(loaded):
    return {e.track_id: e.reason for e in loaded.excluded}


def test_4q_reads_crlf_cp1252_and_cross_checks_folders(paper_data):
    root, facts = paper_data
    loaded = FourQ().load(root / FOLDERS["4q"])
    tracks = loaded.tracks.set_index("track_id")
    assert len(tracks) == facts["4q"]["annotated"] - 1  # the conflicting song is left out
    assert reasons(loaded) == {facts["4q"]["conflict"]: "quadrant-conflict", facts["4q"]["unannotated"]: "no-annotation"}
    conflict = next(e for e in loaded.excluded if e.reason == "quadrant-conflict")
    assert conflict.detail == "annotations say A+V+, folder says A-V-"
    assert tracks.loc["MT0000000001", "artist"] == "Einstürzende Band 1"
    assert tracks.loc["MT0000000001", "quadrant"] == "A+V+" and tracks.loc["MT0000000007", "quadrant"] == "A+V-"
    missing = tracks.loc[facts["4q"]["missing"], "audio_path"]
    assert missing.parent.name == "Q4" and not missing.exists()


def test_pmemo_uses_annotated_clips_and_keeps_metadata_duration_as_information(paper_data, plugins):
    root, facts = paper_data
    loaded = PMEmo().load(root / FOLDERS["pmemo"])
    assert len(loaded.tracks) == facts["pmemo"]["annotated"]
    assert reasons(loaded) == {"1000": "no-annotation"}
    found = discover(plugins, ["pmemo"], root)
    labelled = assign_quadrants(found.tracks, plugins).set_index("track_id")
    assert labelled.loc["39", ["arousal", "valence"]].tolist() == [0.5, 0.5]
    assert labelled.loc["39", "quadrant"] == "A-V-"  # exactly 0.5 counts as low
    # What metadata states, kept as information: a little over what decodes, as in the real release.
    assert labelled.loc["3", "duration_s"] == 20.1
    twice = labelled[labelled["title"] == "Twice"]
    assert len(twice) == facts["pmemo"]["duplicates"] and twice["song_key"].nunique() == 1
    assert labelled.loc["9", "artist"] == "방탄소년단"


def test_pmemo_2018_layout_is_refused_with_a_message(tmp_path):
    (tmp_path / "Chorus").mkdir()
    (tmp_path / "A_static.csv").write_text("musicId,Arousal\n1,0.5\n")
    with pytest.raises(DatasetError, match="2018 PMEmo release.*reads the 2019 release"):
        PMEmo().load(tmp_path)


@pytest.mark.parametrize("annotations_dir", ["annotations", "Annotations"])
def test_emomusic_starts_from_annotation_ids_and_strips_tabs(tmp_path, annotations_dir):
    facts = layouts.emomusic(tmp_path, per_quadrant=2, annotations_dir=annotations_dir)
    loaded = EmoMusic().load(tmp_path)
    tracks = loaded.tracks.set_index("track_id")
    assert len(tracks) == 8 and reasons(loaded) == {"1": "no-annotation"}
    assert tracks.loc["3", "artist"] == "Artist 3" and tracks.loc["3", "title"] == "Title 3"
    assert set(tracks["genre"]) <= facts["genres"] and tracks.loc["3", "genre"] == "Blues"
    assert set(tracks["mediaeval_set"]) == {"development", "evaluation"}
    assert tracks.loc["3", "audio_path"] == tmp_path / "clips_45seconds" / "3.mp3"


@pytest.mark.parametrize("fmt", ["xlsx", "xls"])
def test_bimodal_reads_either_workbook_and_matches_audio_by_code(tmp_path, fmt):
    facts = layouts.bimodal(tmp_path, per_quadrant=2, fmt=fmt)
    loaded = BiModal().load(tmp_path)
    tracks = loaded.tracks.set_index("track_id")
    assert reasons(loaded) == {facts["no_audio"]: "audio-missing", facts["unannotated"]: "no-annotation"}
    assert len(tracks) == 7
    assert tracks.loc["A102", "audio_path"].name == "A102-Artist-Title.mp3"
    assert tracks.loc["A102", "valence"] == 3.1  # 3.0 + 0.1 stored as 3.1000000000000001


def test_quadrant_conflicts_in_the_bimodal_sheet_are_reported(tmp_path):
    from openpyxl import load_workbook

    layouts.bimodal(tmp_path, per_quadrant=2)
    book = load_workbook(tmp_path / "MER-Audio-dataset.xlsx")
    book["Folha2"]["D3"] = 3  # A102 has positive valence and arousal: Q1, not Q3
    book.save(tmp_path / "MER-Audio-dataset.xlsx")
    conflict = next(e for e in BiModal().load(tmp_path).excluded if e.reason == "quadrant-conflict")
    assert conflict.track_id == "A102" and conflict.detail == "sheet says Q3, valence/arousal signs say Q1"


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("4q", lambda r: (r / "panda_dataset_taffc_annotations.csv").unlink(), "panda_dataset_taffc_annotations.csv not found"),
        ("4q", lambda r: _edit(r / "panda_dataset_taffc_annotations.csv", ",Q2\r", ",Q5\r", 1), "unknown quadrant value.*Q5"),
        ("pmemo", lambda r: shutil.rmtree(r / "chorus"), "chorus not found"),
        ("pmemo", lambda r: _edit(r / "annotations" / "static_annotations.csv", "Valence(mean)", "Val"), r"lacks column\(s\) Valence\(mean\); found musicId, Arousal\(mean\), Val"),
        ("pmemo", lambda r: _edit(r / "annotations" / "static_annotations.csv", "\n3,0.8,", "\n3,,"), "Arousal.mean. is missing or not a number for musicId 3"),
        ("pmemo", lambda r: (r / "annotations" / "static_annotations.csv").write_text(""), "static_annotations.csv is empty"),
        ("emomusic", lambda r: shutil.rmtree(r / "clips_45seconds"), "clips_45seconds not found"),
        ("emomusic", lambda r: _append(r / "annotations" / "static_annotations.csv", "3,5.5,1,5.5,1\n"), "duplicate track ids: 3, 3"),
        ("bimodal", lambda r: (r / "MER-Audio-dataset.xlsx").unlink(), "neither .*MER-Audio-dataset.xlsx nor .*xls found"),
        ("bimodal", lambda r: (r / "MER-Audio-dataset.xlsx").write_bytes(b"not a workbook"), "not a readable .xls/.xlsx workbook"),
    ],
)
def test_damaged_archives_fail_with_a_message_naming_the_file(name, damage, message, copy_of, plugins):
    root = copy_of(name)
    damage(root)
    with pytest.raises(DatasetError, match=message):
        discover(plugins, [name], root.parent)


def _edit(path, old, new, count=-1):
    data = path.read_bytes().decode("utf-8")
    assert old in data
    path.write_bytes(data.replace(old, new, count).encode("utf-8"))


def _append(path, text):
    with open(path, "a") as f:
        f.write(text)


def test_verify_reports_counts_and_every_problem_as_json(paper_data, copy_of, tmp_path):
    root, facts = paper_data
    for name in ("pmemo", "emomusic", "bimodal"):
        copy_of(name)
    shutil.copytree(root / FOLDERS["4q"], tmp_path / "4q")  # the plugin name works as a folder name too
    corrupt = tmp_path / FOLDERS["pmemo"] / "chorus" / "6.mp3"
    corrupt.write_bytes(b"\xff\xfb" + b"garbage" * 50)
    (tmp_path / FOLDERS["emomusic"] / "clips_45seconds" / "5.mp3").write_bytes(b"")
    result = run_cli("datasets", "verify", "--datasets", "all", "--data-dir", str(tmp_path), "--json")
    assert result.returncode == 1  # missing and unreadable audio
    report = json.loads(result.stdout)
    assert list(report) == ["4q", "pmemo", "emomusic", "bimodal"]
    for name in report:
        assert {"tracks", "labelled", "missing_audio", "unreadable", "quadrants_raw", "quadrants_prepared", "problems"} <= set(report[name])
    fourq = report["4q"]
    assert (fourq["tracks"], fourq["labelled"], fourq["unlabelled"], fourq["missing_audio"]) == (25, 23, 1, 1)
    assert fourq["quadrants_raw"] == {"A+V+": 5, "A+V-": 6, "A-V-": 6, "A-V+": 6}
    assert fourq["excluded"]["too-short"] == 1
    # The paper preset keeps all of 4Q (23 labelled, one without audio, one too short).
    assert (fourq["selection"], fourq["prepared"], sum(fourq["quadrants_prepared"].values())) == ("none", 21, 21)
    assert any(p.startswith(f"4q/{facts['4q']['missing']}: audio-missing") for p in fourq["problems"])
    assert report["pmemo"]["unreadable"] == 1 and any(str(corrupt) in p for p in report["pmemo"]["problems"])
    assert report["emomusic"]["unreadable"] == 1
    assert report["bimodal"]["missing_audio"] == 1 and report["bimodal"]["unlabelled"] == 1
    equal = run_cli("datasets", "verify", "4q", "--data-dir", str(tmp_path), "--json", "--preset", "paper-balanced")
    fourq = json.loads(equal.stdout)["4q"]
    assert (fourq["selection"], fourq["prepared"]) == ("equalise", 16)  # four quadrants cut to the smallest, A+V+ with 4


def test_verify_says_a_missing_dataset_is_absent(tmp_path):
    result = run_cli("datasets", "verify", "pmemo", "--data-dir", str(tmp_path), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)["pmemo"]
    assert report["status"] == "absent" and "unpack it as pmemo or PMEmo2019" in report["problems"][0]


def test_run_all_stops_before_any_work_naming_every_missing_dataset(paper_data, tmp_path):
    root, _ = paper_data
    data = tmp_path / "data"
    data.mkdir()
    (data / FOLDERS["pmemo"]).symlink_to(root / FOLDERS["pmemo"])
    result = run_cli("run", "--model", "logmel-mlp", "--datasets", "all", "--data-dir", str(data),
                     "--runs-dir", str(tmp_path / "runs"), "--no-progress")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith("error: 3 of 4 datasets not found:") and "\n" not in line
    for name, folder in (("4q", "MER_audio_taffc_dataset"), ("emomusic", "emoMusic"), ("bimodal", "MER_bimodal_dataset")):
        assert f"dataset '{name}' not found: unpack it as {name} or {folder}" in line
    assert str(data) in line and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_run_over_all_four_datasets_completes_and_keeps_duplicate_songs_together(paper_data, tmp_path):
    root, _ = paper_data
    runs = tmp_path / "runs"
    result = run_cli("run", "--model", "logmel-mlp", "--datasets", "all", "--data-dir", str(root),
                     "--preset", "quick", "--runs-dir", str(runs), "--no-progress")
    assert result.returncode == 0, result.stderr
    (run_dir,) = list(runs.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["datasets"] == ["4q", "pmemo", "emomusic", "bimodal"] and summary["metrics"]["units"] == 5
    report = pd.read_csv(run_dir / "prep-report.csv", dtype={"track_id": str})
    too_short = set(zip(report.loc[report.reason == "too-short", "dataset"], report.loc[report.reason == "too-short", "track_id"]))
    assert ("4q", "MT0000000001") in too_short and ("pmemo", "3") in too_short
    splits = pd.read_csv(run_dir / "splits.csv", dtype={"track_id": str})
    # In every unit, the tracks of one song play one role.
    assert (splits.groupby(["unit", "song_key"])["role"].nunique() == 1).all()
    if summary["song_groups"]["groups"]:
        assert "songs appear under several ids" in result.stdout
    # Figure 2 has a panel per dataset; 4Q gives quadrants, not values, and says so.
    assert (run_dir / "figures" / "va-plane.png").is_file()
    panels = {ax.get_title().split(" (selection")[0]: ax for ax in va_plane(RunFolder(run_dir)).axes}
    assert sorted(panels) == ["4q", "bimodal", "emomusic", "pmemo"]
    kept_4q = pd.read_csv(run_dir / "tracks.csv").query("dataset == '4q'")["quadrant"].value_counts()
    (note,) = [t.get_text() for t in panels["4q"].texts]
    assert note.startswith("quadrants given,\nno valence/arousal values") and not panels["4q"].collections
    assert note.endswith("kept: " + ", ".join(f"{q} {kept_4q.get(q, 0)}" for q in QUADRANTS))
    assert panels["bimodal"].get_xlim() == (-4.0, 4.0) and not panels["pmemo"].texts
