"""Installs work: a plain one (imports, the registry file, the console entry point) and the
editable one, which is a plain path entry that tools can follow."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, pip_install_target


@pytest.mark.slow
def test_a_non_editable_install_imports_and_runs(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "registry.toml"):
        shutil.copy(REPO / name, source / name)
    for folder in ("harness", "plugins"):
        shutil.copytree(REPO / folder, source / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    pip_install_target(source, target)
    registry = target / "mer_bench" / "registry.toml"
    assert registry.is_file() and not registry.is_symlink()
    assert registry.read_text() == (REPO / "registry.toml").read_text()
    templates = sorted(p.name for p in (target / "mer_bench" / "templates").glob("*.j2"))
    assert templates == sorted(p.name for p in (REPO / "harness" / "mer_bench" / "templates").glob("*.j2"))
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import json, mer_bench, mer_bench_plugins.datasets.demo as d;"
        "from mer_bench.registry import load_registry;"
        "print(json.dumps([mer_bench.__file__, d.__file__, load_registry().builtins.plugins]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    core, plugin, builtins = json.loads(out.stdout)
    assert core.startswith(str(target)) and plugin.startswith(str(target))
    assert "mer_bench_plugins.models.mlp" in builtins
    listing = subprocess.run(
        [sys.executable, "-m", "mer_bench", "plugins", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert {p["name"] for p in json.loads(listing.stdout)["plugins"]} >= {"demo", "logmel-mlp", "logmel-stats"}
    assert (target / "bin" / "mer-bench").is_file()


def test_the_editable_install_is_a_plain_path_entry_with_files_named_as_their_modules():
    import mer_bench
    import mer_bench.cli
    import mer_bench_plugins.models.mlp

    # The packages live under their import names, so a traceback's file path reads like the module.
    assert Path(mer_bench.cli.__file__) == REPO / "harness" / "mer_bench" / "cli.py"
    assert Path(mer_bench_plugins.models.mlp.__file__) == REPO / "plugins" / "mer_bench_plugins" / "models" / "mlp.py"
    # No import hook: found by the ordinary path finder, from a sys.path entry a .pth file added.
    for module in (mer_bench, mer_bench_plugins.models.mlp):
        assert type(module.__spec__.loader).__name__ == "SourceFileLoader"
    assert str(REPO / "harness") in sys.path and str(REPO / "plugins") in sys.path
    hooks = [type(f).__module__ for f in sys.meta_path]
    assert not [h for h in hooks if "editable" in h], hooks
