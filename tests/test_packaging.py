"""A plain (non-editable) install works: imports, the registry file, the console entry point."""

import json
import os
import shutil
import subprocess
import sys

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
    assert templates == sorted(p.name for p in (REPO / "harness" / "templates").glob("*.j2"))
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
