"""Other people's plugins failing inside `mer-bench run`: one line naming the plugin, the run,
the fold or clip and the resume command; the run folder stays resumable."""

import json
import re

import pytest

from tests.conftest import TINY_DEMO, make_distribution, run_cli

#: A nearest-centroid model whose ``mode`` setting breaks it on purpose, on fold 2 only and
#: only while the ``poison`` file exists, and a feature that cannot read one clip.
BROKEN = """
import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from mer_bench import hookimpl
from mer_bench.types import ModelFactory
from mer_bench_plugins.features.logmel_stats import LogmelStats


class Settings(BaseModel):
    mode: str = "ok"
    poison: str = ""
    fold_seed: int = -1


class Centroids:
    def __init__(self, settings, seed, centres=None):
        self.settings, self.seed, self.centres = settings, seed, centres

    def _broken(self):
        return self.seed == self.settings.fold_seed and Path(self.settings.poison).exists()

    def fit(self, train, val):
        x = np.asarray(train.x)
        self.centres = np.stack([x[train.y == k].mean(axis=0) for k in range(4)])
        if self.settings.mode == "raise-fit" and self._broken():
            raise RuntimeError("the centroids diverged")
        return [{"epoch": 1}]

    def predict_proba(self, x):
        d = -((np.asarray(x)[:, None, :] - self.centres[None]) ** 2).sum(axis=2)
        p = np.exp(d - d.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        if self._broken() and self.settings.mode == "nan-proba":
            p[0] = np.nan
        if self._broken() and self.settings.mode == "wrong-shape":
            p = p[:, :3]
        return p

    def save(self, folder):
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "centres.npy", self.centres)
        (folder / "settings.json").write_text(self.settings.model_dump_json())


class Factory(ModelFactory):
    name = "centroids"
    feature = "logmel-stats"
    settings_model = Settings

    def build(self, settings, n_classes, seed):
        return Centroids(settings, seed)

    def load(self, folder):
        settings = Settings.model_validate_json((folder / "settings.json").read_text())
        return Centroids(settings, -2, np.load(folder / "centres.npy"))


class Unreadable(LogmelStats):
    name = "unreadable"

    def extract(self, clip, settings):
        if clip.uid.endswith("D0005"):
            raise ValueError("this extractor cannot read " + clip.audio_path.name)
        return super().extract(clip, settings)


class UnreadableFactory(Factory):
    name = "centroids-unreadable"
    feature = "unreadable"


@hookimpl
def mer_bench_models():
    return [Factory(), UnreadableFactory()]


@hookimpl
def mer_bench_feature_extractors():
    return [Unreadable()]
"""

RUN = ["--datasets", "demo-tiny", "--preset", "quick", "--seed", "3", "--folds", "3", "--no-progress"]


@pytest.fixture
def site(tmp_path):
    return make_distribution(
        tmp_path / "site", "mer-bench-broken", "1.0", {"tiny_demo": TINY_DEMO, "broken": BROKEN},
        {"tiny": "tiny_demo", "broken": "broken"},
    )


def fold_seed(fold: int) -> int:
    from mer_bench.pipeline import unit_seed as seed_of

    return seed_of(3, fold)


def error_line(result) -> str:
    """The one line the command printed, checked to be the only one."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    return lines[0]


def run_id_in(line: str) -> str:
    return re.search(r"Run (\S+) is kept", line).group(1)


def test_a_model_that_raises_in_fit_stops_with_one_line_and_the_run_resumes(site, tmp_path):
    poison = tmp_path / "poison"
    poison.touch()
    runs = tmp_path / "runs"
    settings = ["--set", "mode=raise-fit", "--set", f"poison={poison}", "--set", f"fold_seed={fold_seed(2)}"]
    first = run_cli("run", "--model", "centroids", *RUN, *settings, "--runs-dir", str(runs), site=site)
    line = error_line(first)
    run_id = run_id_in(line)
    assert line.startswith(
        f"error: model plugin 'centroids' failed in fit on unit 2 (Fold 2) of run {run_id}: RuntimeError: the centroids diverged"
    )
    assert f"`mer-bench run --resume {run_id} --runs-dir {runs}` continues it" in line
    folder = runs / run_id
    assert (folder / "unit-1" / "metrics.json").is_file() and not (folder / "unit-2").exists()
    kept = (folder / "unit-1" / "metrics.json").stat().st_mtime_ns

    verbose = run_cli("--verbose", "run", "--resume", run_id, "--runs-dir", str(runs), "--no-progress", site=site)
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr and 'raise RuntimeError("the centroids diverged")' in verbose.stderr

    poison.unlink()  # the cause fixed
    done = run_cli("run", "--resume", run_id, "--runs-dir", str(runs), "--no-progress", site=site)
    assert done.returncode == 0, done.stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["units"]) == 3 and all((folder / f"unit-{k}" / "metrics.json").is_file() for k in (1, 2, 3))
    assert (folder / "unit-1" / "metrics.json").stat().st_mtime_ns == kept


@pytest.mark.parametrize(
    "mode, message",
    [
        ("nan-proba", r"predict_proba returned NaN or infinite probabilities for 1 of \d+ tracks"),
        ("wrong-shape", r"predict_proba returned shape \((\d+), 3\); expected \(\1, 4\)"),
    ],
)
def test_probabilities_that_are_not_probabilities_stop_the_fold(site, tmp_path, mode, message):
    poison = tmp_path / "poison"
    poison.touch()
    settings = ["--set", f"mode={mode}", "--set", f"poison={poison}", "--set", f"fold_seed={fold_seed(1)}"]
    result = run_cli("run", "--model", "centroids", *RUN, *settings, "--runs-dir", str(tmp_path / "runs"), site=site)
    line = error_line(result)
    assert re.search(rf"error: model plugin 'centroids' \(unit 1 \(Fold 1\) of run \S+\): {message}", line), line
    assert not (tmp_path / "runs" / run_id_in(line) / "unit-1").exists()  # nothing scored


def test_a_feature_that_raises_names_the_clip(site, tmp_path):
    result = run_cli("run", "--model", "centroids-unreadable", *RUN, "--runs-dir", str(tmp_path / "runs"), site=site)
    line = error_line(result)
    assert line.startswith(
        "error: feature plugin 'unreadable' failed in extract on clip demo-tiny/D0005 ("
    ), line
    assert "D0005.flac): ValueError: this extractor cannot read D0005.flac. Run " in line
    assert "mer-bench run --resume" in line
