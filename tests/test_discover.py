"""Finding a dataset's folder: plugin name, archive name, explicit path, and what to do when absent."""

import pytest

from mer_bench.discover import resolve_root
from mer_bench.errors import DatasetError
from mer_bench.types import DatasetInfo, Scale


class Archive:
    name = "pmemo"
    scale = Scale(0, 1)
    label_converter = "midpoint"
    folder_names = ("PMEmo2019",)

    def describe(self):
        return DatasetInfo("PMEmo", "https://example.org/pmemo", "chorus/*.mp3", "research", "Zhang 2018")

    def default_root(self):
        return None

    def load(self, root):  # pragma: no cover - not called here
        raise AssertionError

def test_the_archive_folder_name_is_accepted(tmp_path):
    (tmp_path / "PMEmo2019").mkdir()
    assert resolve_root(Archive(), tmp_path, None) == tmp_path / "PMEmo2019"
    (tmp_path / "pmemo").mkdir()
    assert resolve_root(Archive(), tmp_path, None) == tmp_path / "pmemo"

def test_an_explicit_path_wins_and_must_be_a_folder(tmp_path):
    (tmp_path / "pmemo").mkdir()
    (tmp_path / "elsewhere").mkdir()
    assert resolve_root(Archive(), tmp_path, tmp_path / "elsewhere") == tmp_path / "elsewhere"
    with pytest.raises(DatasetError, match="configured path .*nowhere is not a folder"):
        resolve_root(Archive(), tmp_path, tmp_path / "nowhere")

def test_a_missing_dataset_says_where_to_put_it(tmp_path):
    with pytest.raises(DatasetError) as info:
        resolve_root(Archive(), tmp_path, None)
    message = str(info.value)
    assert f"unpack it as pmemo or PMEmo2019 under {tmp_path}" in message
    assert "[paths] pmemo" in message and "https://example.org/pmemo" in message
    with pytest.raises(DatasetError, match=r"under the data directory \(--data-dir or MER_BENCH_DATA\)"):
        resolve_root(Archive(), None, None)
