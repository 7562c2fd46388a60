"""Stage 2, label: give every track a quadrant with the converter its dataset names."""

from __future__ import annotations

import pandas as pd

from mer_bench.errors import DatasetError
from mer_bench.plugin_calls import plugin_call
from mer_bench.plugin_manager import PluginSet
from mer_bench.types import QUADRANTS


def assign_quadrants(tracks: pd.DataFrame, plugins: PluginSet) -> pd.DataFrame:
    """Return ``tracks`` with ``quadrant`` filled in by each dataset's label converter."""
    out = tracks.copy()
    for name, rows in out.groupby("dataset", sort=False):
        loader = plugins.dataset(name)
        converter = plugins.label_converter(loader.label_converter)
        with plugin_call("label", converter.name, "convert", f"dataset {name}", keep=(DatasetError,)):
            quadrants = pd.Series(converter.convert(rows, loader.scale), index=rows.index)
        bad = ~quadrants.isin(QUADRANTS)
        if bad.any():
            ids = ", ".join(rows.loc[bad, "track_id"].astype(str).head(10))
            raise DatasetError(f"label converter {converter.name!r} gave no quadrant for {name} rows: {ids}")
        out.loc[rows.index, "quadrant"] = quadrants
    return out
