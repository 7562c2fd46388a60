"""The paper's model at full size and through whole runs: the slow half of its tests.

The 300x300 step runs in its own process, which hands its ~10 GB back when it ends.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.mark.slow
def test_one_training_step_at_the_papers_300x300x3():
    code = textwrap.dedent(
        """
        import numpy as np
        from mer_bench.types import FoldData
        from mer_bench_plugins.models.effnetb3 import EffNetB3Factory, EffNetB3Settings
        rng = np.random.default_rng(0)
        data = FoldData(rng.integers(0, 256, (4, 300, 300, 3), dtype=np.uint8), np.arange(4), list("abcd"))
        model = EffNetB3Factory().build(EffNetB3Settings(weights="none", epochs=1, batch_size=4), 4, 0)
        history = model.fit(data, data)
        proba = model.predict_proba(data.x)
        print(len(history), np.isfinite(history[0]["loss"]), proba.shape, np.allclose(proba.sum(1), 1, atol=1e-5))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["1", "True", "(4,", "4)", "True"]


@pytest.mark.slow
def test_run_and_predict_through_the_cli(tiny_site, tmp_path):
    """The quick preset on the tiny demo at 32x32 over two folds and two epochs, then predictions from its models."""
    import json

    from tests.conftest import run_cli, write_tone

    config = tmp_path / "run.toml"
    config.write_text("[feature_settings]\nsize = 32\n")
    runs = tmp_path / "runs"
    result = run_cli(
        "run", "--model", "effnetb3", "--datasets", "demo-tiny", "--preset", "quick", "--folds", "2",
        "--config", str(config), "--set", "batch_size=8", "--epochs", "2", "--no-progress", "--runs-dir", str(runs),
        site=tiny_site, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Table 3" in result.stdout and "Table 4" in result.stdout
    (run,) = runs.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["model"]["settings"]["weights"] == "none"  # asked for by the preset, and recorded
    assert manifest["model"]["settings"]["batch_size"] == 8
    assert manifest["model"]["settings"]["epochs"] == 2
    assert (manifest["model"]["settings"]["calibrate_batchnorm"], manifest["model"]["settings"]["train_backbone"]) == (256, False)
    assert manifest["model"]["settings"]["readout"] == "stages"
    assert manifest["feature"]["settings"]["size"] == 32
    for fold in (1, 2):
        folder = run / f"unit-{fold}"
        assert (folder / "model" / "model.keras").is_file()
        assert json.loads((folder / "model" / "effnetb3.json").read_text())["weights"]["kind"] == "none"
        history = (folder / "history.csv").read_text().splitlines()
        assert history[0] == "epoch,phase,loss,accuracy,val_loss,val_accuracy,kept"
        assert len(history) == 3 and all(line.split(",")[1] == "frozen" for line in history[1:])  # two head-only epochs
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["kept_epoch"] in (1, 2)

    song = write_tone(tmp_path / "song.wav", 30.0, freq=220.0)
    short = write_tone(tmp_path / "short.wav", 5.0)
    predicted = run_cli(
        "predict", "--run", run.name, "--runs-dir", str(runs), "--json", str(song), str(short), site=tiny_site
    )
    assert predicted.returncode == 1  # one file could not be used
    out = json.loads(predicted.stdout)
    (row,) = out["predictions"]
    assert row["file"] == str(song)
    probabilities = [row[f"p_{q}"] for q in ("A+V+", "A+V-", "A-V-", "A-V+")]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert row["quadrant"] == ("A+V+", "A+V-", "A-V-", "A-V+")[int(np.argmax(probabilities))]
    assert out["failed"] == [{"file": str(short), "reason": "too-short", "detail": "5.00 s decoded < 24 s"}]
