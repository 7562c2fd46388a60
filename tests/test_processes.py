"""A run's processes and files: pool workers end with the run however it ends, SIGTERM stops
it like Ctrl-C, files follow the umask, and run folders are created atomically."""

import os
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from mer_bench.results import RunFolder
from tests.conftest import TINY_DEMO, make_distribution, run_cli

#: A feature that takes a second per clip in pool workers (never in the run's own process,
#: which extracts the first clip itself), leaving a file named for each worker's pid.
SLOW = """
import multiprocessing
import os
import time
from pathlib import Path

from mer_bench import hookimpl
from mer_bench_plugins.features.logmel_stats import LogmelStats
from mer_bench_plugins.models.mlp import MLPFactory


class SlowStats(LogmelStats):
    name = "slow-stats"

    def extract(self, clip, settings):
        markers = os.environ.get("SLOW_MARKERS")
        if markers and multiprocessing.parent_process() is not None:
            (Path(markers) / str(os.getpid())).touch()
            time.sleep(1.0)
        return super().extract(clip, settings)


@hookimpl
def mer_bench_feature_extractors():
    return [SlowStats()]


@hookimpl
def mer_bench_models():
    return [MLPFactory("slow-stats-mlp", "slow-stats")]
"""

RUN = ["run", "--model", "slow-stats-mlp", "--datasets", "demo-tiny", "--preset", "quick", "--folds", "2",
       "--jobs", "2", "--no-progress", "--no-figures"]


@pytest.fixture
def site(tmp_path):
    return make_distribution(
        tmp_path / "site", "mer-bench-slow", "1.0", {"tiny_demo": TINY_DEMO, "slow": SLOW},
        {"tiny": "tiny_demo", "slow": "slow"},
    )


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def start_and_wait_for_workers(site, tmp_path, runs: Path) -> tuple[subprocess.Popen, list[int]]:
    """``mer-bench run`` started, and the pids of its two pool workers once both extract.

    Its stderr goes to ``stderr.txt``, not a pipe, which orphaned workers would hold open.
    """
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "SLOW_MARKERS": str(markers)}
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mer_bench", *RUN, "--runs-dir", str(runs)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(markers.iterdir())) < 2 and proc.poll() is None:
        time.sleep(0.05)
    workers = [int(p.name) for p in markers.iterdir()]
    assert len(workers) == 2 and all(alive(pid) for pid in workers), proc.poll()
    return proc, workers


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.time() + seconds
    while time.time() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_die_with_a_run_killed_by_sigkill(site, tmp_path):
    proc, workers = start_and_wait_for_workers(site, tmp_path, tmp_path / "runs")
    proc.kill()
    proc.wait()
    # Each worker has ~40 clips of a second each ahead of it: alive, they would be seen here.
    assert wait_gone(workers, 5.0) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_a_run_like_ctrl_c_and_it_resumes(site, tmp_path):
    runs = tmp_path / "runs"
    proc, workers = start_and_wait_for_workers(site, tmp_path, runs)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 1
    (line,) = (tmp_path / "stderr.txt").read_text().strip().splitlines()
    (run,) = runs.iterdir()
    assert line == f"error: interrupted. Run {run.name} is kept: `mer-bench run --resume {run.name} --runs-dir {runs}` continues it"
    assert wait_gone(workers, 5.0) == []
    assert not list(run.rglob("*.tmp"))  # no half-written file left behind
    resumed = run_cli("run", "--resume", run.name, "--runs-dir", str(runs), "--no-progress", "--no-figures", site=site)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "summary.json").is_file()


def test_run_and_cache_files_follow_the_umask(site, tmp_path):
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(site), "MER_BENCH_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-m", "mer_bench", "run", "--model", "majority", "--datasets", "demo-tiny", "--preset", "quick",
         "--folds", "2", "--no-progress", "--no-figures", "--runs-dir", str(runs)],
        env=env, capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(0o027),
    )
    assert result.returncode == 0, result.stderr
    files = [p for p in [*runs.rglob("*"), *cache.rglob("*")] if p.is_file()]
    modes = {oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    # What open() gives under umask 027; mkstemp alone would have given 0o600.
    assert modes == {oct(0o640)}, sorted((oct(stat.S_IMODE(p.stat().st_mode)), str(p)) for p in files)[:5]
    assert any(p.name == "splits.csv" for p in files) and any(p.suffix == ".npy" for p in files)


def _create(runs_dir: str) -> str:
    return RunFolder.create(Path(runs_dir), "same-id").run_id


def test_runs_started_at_the_same_moment_get_folders_of_their_own(tmp_path):
    with ProcessPoolExecutor(8) as pool:
        ids = list(pool.map(_create, [str(tmp_path)] * 40))
    assert len(set(ids)) == 40 and "same-id" in ids
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ids)
