"""The drift check's inputs as frames Evidently will not misread: schema columns only, typed as
declared (numbers as floats, categories as strings), and sampled when large."""

from __future__ import annotations

from typing import Literal

import pandas as pd

from fearless.drift.verdict import DriftError
from fearless.spec import Column, ColumnType

SAMPLE_SEED = 0

Kind = Literal["numeric", "categorical"]


def kind_of(column: Column) -> Kind:
    return "numeric" if column.type in (ColumnType.int, ColumnType.float) else "categorical"


def as_numbers(series: pd.Series, side: str) -> pd.Series:
    try:
        return pd.to_numeric(series).astype(float, copy=False)
    except (ValueError, TypeError) as exc:
        raise DriftError(f"{side} column {series.name!r} should hold numbers: {exc}") from None


def as_labels(series: pd.Series) -> pd.Series:
    """Categories as strings, so 1, 1.0 and "1" are one category; missing stays missing."""
    values = series
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")
    return values.astype(str).where(series.notna())


def prepared(frame: pd.DataFrame, schema: list[Column], side: str) -> pd.DataFrame:
    """The schema's columns only, typed as declared, so Evidently never guesses.

    Float columns are shared with `frame`, not copied: at 1M rows a copy costs ~8 MB a column.
    """
    absent = [c.name for c in schema if c.name not in frame.columns]
    if absent and len(frame) == 0:
        frame = frame.reindex(columns=[c.name for c in schema])
    elif absent:
        raise DriftError(f"{side} data lacks schema columns: {', '.join(absent)}")
    typed = {
        c.name: (
            as_numbers(frame[c.name], side) if kind_of(c) == "numeric" else as_labels(frame[c.name])
        ).to_numpy()
        for c in schema
    }
    return pd.DataFrame(typed, copy=False)


def sample(frame: pd.DataFrame, rows: int | None) -> pd.DataFrame:
    if rows is None or len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=SAMPLE_SEED).reset_index(drop=True)
