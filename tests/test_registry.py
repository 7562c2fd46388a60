"""The published rows say exactly what was published, in words and in fields."""

import tomllib

import pytest

from mer_bench.errors import ConfigError
from mer_bench.registry import load_registry, registry_path


def published(reference: str, metric: str):
    (row,) = [p for p in load_registry().published if p.reference == reference and p.metric == metric]
    return row


def test_the_papers_own_rows_are_the_mean_over_folds_of_a_held_out_test_set():
    for metric in ("accuracy", "f1"):
        row = published("Cazzaniga et al. 2024", metric)
        m = row.measured
        assert (m.validation, m.folds, m.test_size, m.aggregation, m.selection) == (
            "holdout+kfold", 5, 0.1, "mean over folds", "validation"
        )
        assert row.value == 0.64 and "section 5" in row.source and "Table 5" in row.source
    assert published("Cazzaniga et al. 2024", "f1").measured.averaging == "not stated"


def test_cnn10_is_one_fold_and_cnn6_comes_from_section_2_not_table_5():
    rows = {p.model: p for p in load_registry().published if p.reference == "Sung & Wei 2021"}
    cnn10, cnn6 = rows["cnn10"], rows["cnn6"]
    assert (cnn10.value, cnn10.measured.fold, cnn10.measured.aggregation) == (0.6292, 1, "one fold")
    assert "first fold" in cnn10.source and "Table 5" in cnn10.source
    assert "section 2" in cnn6.source and "not in Table 5" in cnn6.source
    for row in (cnn10, cnn6):
        assert (row.measured.averaging, row.measured.selection) == ("micro", "test")  # optimistic


def test_panda_2018_cites_its_own_source_and_its_repeated_cross_validation():
    row = published("Panda et al. 2018", "f1")
    assert row.source.startswith("Panda et al. 2018") and "not in Cazzaniga et al. 2024" in row.source
    assert (row.measured.validation, row.measured.folds, row.measured.repeats) == ("repeated-kfold", 10, 20)


def test_every_row_states_where_it_is_printed_and_how_it_was_measured():
    raw = tomllib.loads(registry_path().read_text(encoding="utf-8"))
    for row in raw["published"]:
        assert row["source"] and "validation" in row["measured"], row["system"]


def test_the_paper_presets_describe_what_they_do():
    presets = load_registry().presets
    assert "232" in presets["paper"].description and "346" in presets["paper"].description
    assert "smallest" in presets["paper-balanced"].description
    assert "the protocol of Cazzaniga et al." not in presets["paper"].description


def test_a_published_row_without_its_protocol_fields_is_refused(tmp_path, monkeypatch):
    text = registry_path().read_text(encoding="utf-8")
    start = text.index("\n[published.measured]\n")
    broken = text[:start] + "\n" + text[text.index("[[published]]", start):]
    path = tmp_path / "registry.toml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match="measured"):
        load_registry(path)
