"""`mer-bench run` draws figures; `report --html` and `leaderboard --html` write one
self-contained page each: every section and image there, nothing outside the file."""

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser

import pandas as pd
import pytest

from tests.conftest import TINY_DEMO, make_distribution, run_cli

SECTIONS = {"manifest", "table3", "test-set", "table4", "figures", "preparation"}
FIGURES = ["va-plane", "feature-examples", "split-counts", "training-curves", "confusion", "breakdown"]


class Page(HTMLParser):
    """Every element's tag and attributes, the text of each table cell, and the style text."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.cells: list[str] = []
        self.style = ""
        self._in: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in.append(tag)

    def handle_endtag(self, tag):
        if tag in self._in:
            del self._in[len(self._in) - 1 - self._in[::-1].index(tag) :]

    def handle_data(self, data):
        if self._in and self._in[-1] == "style":
            self.style += data
        elif self._in and self._in[-1] in ("td", "th"):
            self.cells.append(data.strip())

    def ids(self) -> set[str]:
        return {attrs["id"] for _, attrs in self.elements if "id" in attrs}

    def outside_references(self) -> list[str]:
        """Every URL-valued attribute that is not a data URI or a link within the page."""
        refs = [attrs[key] for _, attrs in self.elements for key in ("src", "href", "srcset", "data", "action") if key in attrs]
        return [r for r in refs if not (r.startswith("data:") or r.startswith("#"))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs of the tiny demo: logmel-mlp (with figures) and majority (without)."""
    tmp = tmp_path_factory.mktemp("html")
    site = make_distribution(tmp / "site", "mer-bench-tiny", "1.0", {"tiny_demo": TINY_DEMO}, {"tiny": "tiny_demo"})
    runs = tmp / "runs"
    common = ["--datasets", "demo-tiny", "--preset", "quick", "--folds", "2", "--no-progress", "--runs-dir", str(runs)]
    mlp = run_cli("run", "--model", "logmel-mlp", *common, site=site)
    assert mlp.returncode == 0, mlp.stderr[-3000:]
    majority = run_cli("run", "--model", "majority", "--no-figures", *common, site=site)
    assert majority.returncode == 0, majority.stderr[-3000:]
    folders = sorted(runs.iterdir(), key=lambda p: "majority" in p.name)
    # Read now: the figures command test draws the majority run's figures later.
    majority_out = majority.stdout + f"\nfigures folder: {(folders[1] / 'figures').exists()}"
    return site, runs, folders, mlp.stdout, majority_out


def test_a_run_draws_its_figures_unless_told_not_to(runs):
    _, _, (mlp, majority), mlp_out, majority_out = runs
    assert sorted(p.name for p in (mlp / "figures").iterdir()) == sorted(
        f"{n}.png" for n in FIGURES if n != "feature-examples"
    )
    assert f"figures: 5 drawn in {mlp / 'figures'}" in mlp_out
    assert "feature-examples: not drawn, the logmel-stats feature is a vector of 192 values, not an image" in mlp_out
    assert majority_out.endswith("\nfigures folder: False") and "figures: " not in majority_out


def test_the_figures_command_draws_a_finished_runs_figures_in_png_and_svg(runs):
    site, run_dir, (_, majority), _, _ = runs
    result = run_cli("figures", majority.name, "--svg", "--runs-dir", str(run_dir), site=site)
    assert result.returncode == 0, result.stderr
    assert "training-curves: not drawn, majority records no per-epoch loss (its history has: epoch, val_accuracy, kept)" in result.stdout
    names = {p.name for p in (majority / "figures").iterdir()}
    assert names == {f"{n}.{ext}" for n in ("va-plane", "split-counts", "confusion", "breakdown") for ext in ("png", "svg")}
    missing = run_cli("figures", "no-such-run", "--runs-dir", str(run_dir), site=site)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no run 'no-such-run'")


def test_the_run_report_is_one_self_contained_page(runs, tmp_path):
    site, run_dir, (mlp, _), _, _ = runs
    out = tmp_path / "report.html"
    result = run_cli("report", mlp.name, "--runs-dir", str(run_dir), "--html", str(out), site=site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    page = Page(out.read_text(encoding="utf-8"))

    assert SECTIONS | {f"figure-{n}" for n in FIGURES} <= page.ids()
    assert page.outside_references() == []
    tags = {tag for tag, _ in page.elements}
    assert not tags & {"script", "link", "iframe", "object", "embed"}
    assert "url(" not in page.style and "@import" not in page.style

    images = [attrs for tag, attrs in page.elements if tag == "img"]
    assert len(images) == 5  # every figure but the feature examples of a vector feature
    for attrs in images:
        header, data = attrs["src"].split(",", 1)
        assert header == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Not drawn for this run: the logmel-stats feature is a vector of 192 values, not an image." in out.read_text()

    # Table 3 carries each fold's accuracy as metrics.json has it, to three decimals.
    for fold in (1, 2):
        accuracy = json.loads((mlp / f"unit-{fold}" / "metrics.json").read_text())["accuracy"]
        assert f"{accuracy:.3f}" in page.cells
    manifest = json.loads((mlp / "manifest.json").read_text())
    assert f"<h1>Run {manifest['run_id']}</h1>" in out.read_text()
    settings = json.dumps(manifest["model"]["settings"], sort_keys=True)
    assert f"logmel-mlp {settings}" in page.cells
    # The preparation summary counts every excluded track.
    report = pd.read_csv(mlp / "prep-report.csv")
    assert f"{len(report)} excluded" in out.read_text()
    assert set(report["reason"]) <= set(page.cells)


def test_the_leaderboard_page_holds_the_table_and_a_figure_per_metric(runs, tmp_path):
    site, run_dir, _, _, _ = runs
    out = tmp_path / "leaderboard.html"
    result = run_cli("leaderboard", "--runs-dir", str(run_dir), "--html", str(out), site=site)
    assert result.returncode == 0, result.stderr
    page = Page(out.read_text(encoding="utf-8"))
    assert {"leaderboard", "figures", "figure-accuracy", "figure-macro_f1"} <= page.ids()
    assert page.outside_references() == []
    rows = [tag for tag, _ in page.elements if tag == "tr"]
    text = run_cli("leaderboard", "--runs-dir", str(run_dir), "--format", "json", site=site).stdout
    assert len(rows) == len(json.loads(text)) + 1  # and the header row
    assert "re-run" in page.cells and "published" in page.cells


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_chromium_renders_the_report_and_decodes_every_image(runs, tmp_path):
    """A real browser opens the file offline: every image decodes, nothing fails to load."""
    site, run_dir, (mlp, _), _, _ = runs
    out = tmp_path / "report.html"
    assert run_cli("report", mlp.name, "--runs-dir", str(run_dir), "--html", str(out), site=site).returncode == 0
    # A copy with a probe that writes what the browser made of the images into the title.
    probe = tmp_path / "probe.html"
    probe.write_text(
        out.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load', () => { const i = [...document.images];"
            " document.title = 'decoded ' + i.filter(x => x.complete && x.naturalWidth > 0).length + '/' + i.length; });"
            "</script></body>",
        )
    )
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*browser, "--enable-logging=stderr", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert "<title>decoded 5/5</title>" in dom.stdout, dom.stderr[-2000:]
    assert "net::ERR" not in dom.stderr and "Failed to load resource" not in dom.stderr
    shot = tmp_path / "report.png"
    subprocess.run([*browser, "--window-size=1280,2000", f"--screenshot={shot}", out.as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    low, high = pixels.getextrema()
    assert pixels.size == (1280, 2000) and high - low > 100  # a page was painted, not a blank
