"""Helpers for dataset plugins reading official archives: tolerant lookups, strict columns.

Archives differ in small ways between copies (folder case, CRLF or LF, UTF-8 or cp1252);
these helpers absorb those differences and turn everything else into a DatasetError that
names the file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_bench.errors import DatasetError


def child(folder: Path, *names: str) -> Path | None:
    """The first entry of ``folder`` matching one of ``names``, ignoring case; None if none does."""
    if not folder.is_dir():
        return None
    entries = {p.name.lower(): p for p in sorted(folder.iterdir())}
    for name in names:
        if (folder / name).exists():
            return folder / name
        if name.lower() in entries:
            return entries[name.lower()]
    return None


def require(folder: Path, dataset: str, *names: str) -> Path:
    """Like :func:`child`, but a missing entry is a DatasetError saying what was expected where."""
    found = child(folder, *names)
    if found is None:
        raise DatasetError(f"{dataset}: {folder / names[0]} not found (is {folder} the unpacked archive?)")
    return found


def read_csv(path: Path, dataset: str, **kwargs) -> pd.DataFrame:
    """Read a CSV as UTF-8, falling back to cp1252; header names and text cells are stripped.

    Stripping removes the spaces and tabs some archives pad their fields with.
    """
    for encoding in ("utf-8", "cp1252"):
        try:
            table = pd.read_csv(path, encoding=encoding, **kwargs)
            break
        except UnicodeDecodeError:
            continue
        except FileNotFoundError:
            raise DatasetError(f"{dataset}: {path} not found") from None
        except pd.errors.EmptyDataError:
            raise DatasetError(f"{dataset}: {path} is empty") from None
        except pd.errors.ParserError as exc:
            raise DatasetError(f"{dataset}: {path} is not a readable CSV: {exc}") from None
    else:
        raise DatasetError(f"{dataset}: {path} is neither UTF-8 nor cp1252 text")
    return strip_table(table)


def strip_table(table: pd.DataFrame) -> pd.DataFrame:
    """Strip whitespace (tabs included) from header names and from every text cell."""
    table = table.rename(columns=lambda c: str(c).strip())
    for column in table.columns:
        if table[column].dtype == object or pd.api.types.is_string_dtype(table[column]):
            table[column] = table[column].map(lambda v: v.strip() if isinstance(v, str) else v)
    return table


def require_columns(table: pd.DataFrame, columns: list[str], path: Path, dataset: str) -> None:
    """A DatasetError naming the file, the missing columns and the columns found."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{dataset}: {path} lacks column(s) {', '.join(missing)}; found {', '.join(map(str, table.columns))}"
        )


def numeric(table: pd.DataFrame, columns: list[str], path: Path, dataset: str, id_column: str) -> pd.DataFrame:
    """Parse ``columns`` as numbers; a NaN or non-number is a DatasetError naming the rows."""
    out = table.copy()
    for column in columns:
        values = pd.to_numeric(out[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            ids = ", ".join(out.loc[bad, id_column].astype(str).head(10))
            raise DatasetError(f"{dataset}: {path}: {column} is missing or not a number for {id_column} {ids}")
        out[column] = values.astype(float)
    return out
