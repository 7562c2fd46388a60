"""The command line as a user meets it: subprocesses, exit codes, one-line errors, output formats."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.conftest import make_distribution, run_cli

SLOW_MODEL = """
import time
from mer_bench import hookimpl
from mer_bench_plugins.models.mlp import MLP, MLPFactory

class SlowMLP(MLP):
    def fit(self, train, val):
        time.sleep(0.6)  # long enough for a test to stop the run between folds
        return super().fit(train, val)

class SlowFactory(MLPFactory):
    def build(self, settings, n_classes, seed):
        return SlowMLP(settings, n_classes, seed)

@hookimpl
def mer_bench_models():
    return [SlowFactory("slow-mlp", "logmel-stats")]
"""
TINY_RUN = ["--datasets", "demo-tiny", "--preset", "quick", "--seed", "3", "--no-progress"]


def test_help_starts_without_heavy_libraries():
    code = (
        "import sys; from click.testing import CliRunner; from mer_bench.cli import cli;"
        "r = CliRunner().invoke(cli, ['plugins']); assert r.exit_code == 0, r.output;"
        "print(sorted(m for m in ('librosa', 'tensorflow', 'torch', 'sklearn', 'soxr') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_plugin_is_one_line_and_exit_1():
    result = run_cli("run", "--model", "effnet", "--datasets", "demo", "--no-progress")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: unknown model plugin 'effnet'; known model plugins: chance, cnn10, cnn6, effnetb3, logmel-mlp, majority, mean, musicnn-mlp, openl3-mlp, opensmile-svm, sarkar-vgg, svm-handcrafted"
    verbose = run_cli("--verbose", "run", "--model", "effnet", "--datasets", "demo", "--no-progress")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_all_means_the_four_paper_datasets(tmp_path):
    result = run_cli("run", "--model", "logmel-mlp", "--datasets", "all", "--no-progress", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: 4 of 4 datasets not found")
    for name in ("'4q'", "'pmemo'", "'emomusic'", "'bimodal'"):
        assert f"dataset {name} not found" in result.stderr
    assert "deam" not in result.stderr  # DEAM is not one of the paper's four
    unknown = run_cli("run", "--model", "logmel-mlp", "--datasets", "demo,dmeo", "--no-progress")
    assert unknown.stderr.strip() == (
        "error: unknown dataset plugin 'dmeo'; known dataset plugins: 4q, bimodal, deam, demo, demo-live, demo-lofi, emomusic, pmemo"
    )


def test_a_bad_config_file_is_one_clear_line(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('model = "logmel-mlp"\ndatasets = ["demo"]\nfold = 3\n')
    result = run_cli("run", "--config", str(config), "--no-progress")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: invalid run configuration: fold: Extra inputs are not permitted"
    config.write_text('model = "logmel-mlp"\ndatasets = ["demo"]\n[selection]\npmeno = "none"\n')
    result = run_cli("run", "--config", str(config), "--no-progress")
    assert result.stderr.strip().startswith("error: [selection] names 'pmeno', which is no dataset plugin (known: ")
    config.write_text('model = "logmel-mlp"\ndatasets = ["demo"]\n[model_settings]\nepochs = 0\n')
    result = run_cli("run", "--config", str(config), "--no-progress")
    assert "error: invalid settings for model 'logmel-mlp': epochs: Input should be greater than 0" in result.stderr


def test_set_reaches_the_model_and_its_feature_and_names_the_plugin_on_a_wrong_key(tiny_site, tmp_path):
    runs = tmp_path / "runs"
    args = ["run", "--model", "logmel-mlp", *TINY_RUN, "--folds", "2", "--no-figures", "--runs-dir", str(runs)]
    done = run_cli(*args, "--set", "epochs=7", "--set", "model.hidden=[16]", "--set", "feature.n_mels=32", site=tiny_site)
    assert done.returncode == 0, done.stderr
    (run,) = runs.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert (manifest["model"]["settings"]["epochs"], manifest["model"]["settings"]["hidden"]) == (7, [16])
    assert manifest["feature"] == {"name": "logmel-stats", "settings": {**manifest["feature"]["settings"], "n_mels": 32}}
    wrong = run_cli(*args, "--set", "feature.n_mel=32", site=tiny_site)
    assert wrong.stderr.strip() == (
        "error: invalid settings for feature 'logmel-stats': n_mel: feature 'logmel-stats' has no such setting "
        "(its settings: sample_rate, n_mels, n_fft, hop_length)"
    )
    target = run_cli(*args, "--set", "protocl.folds=3", site=tiny_site)
    assert target.stderr.strip().startswith("error: --set protocl.folds: 'protocl' is not something --set configures")
    protocol = run_cli(*args, "--protocol", "lodo", "--set", "protocol.folds=3", site=tiny_site)
    assert protocol.stderr.strip() == (
        "error: invalid settings for protocol 'lodo': folds: protocol 'lodo' has no such setting (its settings: val_size)"
    )


def test_plugins_json_lists_third_party_plugins_and_reports_broken_ones(tiny_site):
    make_distribution(tiny_site, "mer-bench-broken", "0.3.1", {"broken_plugin": "import no_such_module"}, {"broken": "broken_plugin"})
    result = run_cli("plugins", "--json", site=tiny_site)
    assert result.returncode == 0
    listing = json.loads(result.stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert by_name["demo-tiny"]["kind"] == "dataset"
    assert by_name["demo-tiny"]["source"] == {
        "plugin": "tiny",
        "distribution": "mer-bench-tiny",
        "version": "1.0",
        "builtin": False,
    }
    assert by_name["logmel-mlp"]["source"]["builtin"] is True
    (failure,) = listing["failures"]
    assert failure["distribution"] == "mer-bench-broken" and "No module named 'no_such_module'" in failure["error"]
    assert "warning: plugin broken (entry point, mer-bench-broken 0.3.1) failed to load" in result.stderr
    strict = run_cli("--strict-plugins", "plugins", site=tiny_site)
    assert strict.returncode == 1 and strict.stderr.startswith("error: plugin broken")


def _only_run(runs):
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.slow
def test_a_run_killed_between_folds_resumes_to_the_same_result(tiny_site, tmp_path):
    (tiny_site / "slow_model.py").write_text(SLOW_MODEL)
    with open(next(tiny_site.glob("*.dist-info")) / "entry_points.txt", "a") as f:
        f.write("slow = slow_model\n")
    env = {**os.environ, "PYTHONPATH": str(tiny_site)}
    full = run_cli("run", "--model", "slow-mlp", *TINY_RUN, "--runs-dir", str(tmp_path / "full"), site=tiny_site)
    assert full.returncode == 0, full.stderr

    runs = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mer_bench", "run", "--model", "slow-mlp", *TINY_RUN, "--runs-dir", str(runs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (runs.exists() and any(runs.glob("*/unit-2/metrics.json"))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = _only_run(runs)
    assert not (run_dir / "summary.json").exists()
    finished = sorted(p.name for p in run_dir.glob("unit-?"))
    assert "unit-1" in finished and "unit-5" not in finished
    before = (run_dir / "unit-1" / "metrics.json").read_bytes()

    resumed = run_cli("run", "--resume", run_dir.name, "--runs-dir", str(runs), "--no-progress", site=tiny_site)
    assert resumed.returncode == 0, resumed.stderr
    assert "Table 3" in resumed.stdout
    assert (run_dir / "unit-1" / "metrics.json").read_bytes() == before
    full_summary = json.loads((_only_run(tmp_path / "full") / "summary.json").read_text())
    resumed_summary = json.loads((run_dir / "summary.json").read_text())
    assert resumed_summary["metrics"] == full_summary["metrics"]
    assert (run_dir / "splits.csv").read_bytes() == (_only_run(tmp_path / "full") / "splits.csv").read_bytes()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, cache_root):
    """One tiny run made through the CLI, shared by the report tests."""
    site = make_distribution(
        tmp_path_factory.mktemp("site"), "mer-bench-tiny", "1.0", {"tiny_demo": _tiny()}, {"tiny": "tiny_demo"}
    )
    runs = tmp_path_factory.mktemp("runs")
    result = run_cli(
        "run", "--model", "logmel-mlp", *TINY_RUN, "--runs-dir", str(runs),
        site=site, env={"MER_BENCH_CACHE": str(cache_root)},
    )
    assert result.returncode == 0, result.stderr
    for table in ("Table 3", "Table 4", "Table 5"):
        assert table in result.stdout
    return runs, _only_run(runs).name


def _tiny():
    from tests.conftest import TINY_DEMO

    return TINY_DEMO


def test_report_formats(finished_run):
    runs, run_id = finished_run
    as_json = run_cli("report", run_id, "--runs-dir", str(runs), "--format", "json")
    data = json.loads(as_json.stdout)
    assert [row["Metric"] for row in data["table3"]] == ["Accuracy", "F1-score (macro)"]
    assert {"Fold 1", "Fold 5", "All Folds", "Std"} <= set(data["table3"][0])
    assert [row["Class"] for row in data["table4"]] == ["A+V+", "A+V-", "A-V-", "A-V+"]
    folds = [data["table3"][0][f"Fold {k}"] for k in range(1, 6)]
    assert data["table3"][0]["All Folds"] == pytest.approx(sum(folds) / 5)
    held = data["test_set"]
    assert held["accuracy_mean_over_folds"]["value"] == pytest.approx(data["table3"][0]["All Folds"])
    low, high = held["fold_ensemble"]["accuracy_interval"]
    assert low <= held["fold_ensemble"]["accuracy"] <= high and held["confidence"] == 0.95
    markdown = run_cli("report", run_id, "--runs-dir", str(runs), "--format", "markdown").stdout
    assert "| Metric " in markdown and "| A-V+ " in markdown
    assert f"The test set: {held['tracks']} tracks" in markdown and "| Fold ensemble (mean of the fold models" in markdown
    latex = run_cli("report", run_id, "--runs-dir", str(runs), "--format", "latex").stdout
    assert latex.count("\\begin{tabular}") == 3 and "\\toprule" in latex
    missing = run_cli("report", "nope", "--runs-dir", str(runs))
    assert missing.returncode == 1 and missing.stderr.startswith("error: no run 'nope'")


def test_leaderboard_puts_published_and_rerun_rows_together(finished_run):
    runs, run_id = finished_run
    result = run_cli("leaderboard", "--runs-dir", str(runs), "--format", "csv")
    table = pd.read_csv(pd.io.common.StringIO(result.stdout))
    published = table[table.Kind == "published"]
    assert ("Cazzaniga et al. 2024", "accuracy", 0.64) in set(zip(published.Source, published.Metric, published.Value))
    rerun = table[table.Kind == "re-run"]
    assert set(rerun.Metric) == {"accuracy", "macro_f1"} and (rerun.Source == f"run {run_id}").all()
    assert rerun.Std.notna().all()


def test_datasets_verify_names_the_unreadable_file_and_a_wrong_header(tiny_site, tmp_path, cache_root):
    data = tmp_path / "copy"
    from mer_bench_plugins.datasets.demo import DemoDataset

    shutil.copytree(DemoDataset(name="demo-tiny", tracks_per_quadrant=12, seed=11).default_root(), data)
    ok_config = tmp_path / "paths.toml"
    ok_config.write_text(f'[paths]\ndemo-tiny = "{data}"\n')
    good = run_cli("datasets", "verify", "demo-tiny", "--config", str(ok_config), site=tiny_site)
    assert good.returncode == 0, good.stdout + good.stderr
    victim = sorted((data / "audio").glob("*.mp3"))[0]
    victim.write_bytes(b"not an mp3 at all" * 100)
    # A float WAV can hold NaN: it decodes, and every feature of it would be NaN.
    annotations = data / "annotations.csv"
    table = pd.read_csv(annotations, dtype={"track_id": str})
    nan_audio = data / "audio" / f"{table.track_id[1]}.wav"
    sf.write(nan_audio, np.full(16000 * 30, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    table.loc[1, "file"] = nan_audio.name
    table.to_csv(annotations, index=False)
    bad = run_cli("datasets", "verify", "demo-tiny", "--config", str(ok_config), site=tiny_site)
    assert bad.returncode == 1
    assert f"problem: demo-tiny/{victim.stem}: decode-error: {victim}: cannot decode" in bad.stdout
    assert f"problem: demo-tiny/{table.track_id[1]}: non-finite-audio: {nan_audio}: samples are NaN" in bad.stdout
    as_json = json.loads(run_cli("datasets", "verify", "demo-tiny", "--config", str(ok_config), "--json", site=tiny_site).stdout)
    assert as_json["demo-tiny"]["status"] == "problems" and len(as_json["demo-tiny"]["problems"]) == 2
    annotations.write_text(annotations.read_text().replace("valence", "valance", 1))
    header = run_cli("datasets", "verify", "demo-tiny", "--config", str(ok_config), site=tiny_site)
    assert header.returncode == 1
    assert f"problem: demo-tiny: demo dataset: {annotations} lacks column(s) valence" in header.stdout
    run = run_cli("run", "--model", "logmel-mlp", "--config", str(ok_config), *TINY_RUN, site=tiny_site)
    assert run.returncode == 1 and run.stderr.strip().endswith("lacks column(s) valence")


def test_predict_gives_each_files_quadrant_from_one_fold_or_all(finished_run, tmp_path):
    from tests.conftest import write_tone

    runs, run_id = finished_run
    files = [str(write_tone(tmp_path / f"{f}.wav", 26.0, freq=f)) for f in (220, 880)]
    mean = run_cli("predict", "--run", run_id, "--runs-dir", str(runs), "--json", *files)
    assert mean.returncode == 0, mean.stderr
    rows = json.loads(mean.stdout)["predictions"]
    assert [r["file"] for r in rows] == files
    one = json.loads(run_cli("predict", "--run", run_id, "--runs-dir", str(runs), "--unit", "1", "--json", *files).stdout)
    # The mean over five folds is not fold 1 alone, and each is a distribution.
    for r in rows + one["predictions"]:
        assert sum(r[f"p_{q}"] for q in ("A+V+", "A+V-", "A-V-", "A-V+")) == pytest.approx(1.0)
    assert [r["p_A+V+"] for r in rows] != [r["p_A+V+"] for r in one["predictions"]]
    table = run_cli("predict", "--run", run_id, "--runs-dir", str(runs), *files)
    assert table.returncode == 0 and f"predictions of run {run_id}" in table.stdout
    missing = run_cli("predict", "--run", run_id, "--runs-dir", str(runs), str(tmp_path / "gone.mp3"))
    assert missing.returncode == 1 and "gone.mp3: audio-missing" in missing.stderr
    bad_fold = run_cli("predict", "--run", run_id, "--runs-dir", str(runs), "--unit", "7", *files)
    assert bad_fold.returncode == 1 and "has units 1 to 5; there is no unit 7" in bad_fold.stderr
