"""Data quality of the current data against the reference: missing, out-of-range, new values.

Plain pandas over every row (cheap, exact), on frames already typed by the engine: numeric
columns as floats, categories as strings with missing values kept missing.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

MAX_NEW_CATEGORIES = 20


class Quality(NamedTuple):
    missing_share: dict[str, float]
    out_of_range_share: dict[str, float]
    new_categories: dict[str, list[str]]

    def of(self, column: str) -> dict:
        """One column's figures, as the matching `ColumnDrift` fields."""
        return {
            "missing_share": self.missing_share.get(column, 0.0),
            "out_of_range_share": self.out_of_range_share.get(column),
            "new_categories": self.new_categories.get(column, []),
        }


def new_categories(reference: pd.Series, current: pd.Series, declared: list[str]) -> list[str]:
    """Current categories neither seen in the reference nor declared in the spec (first 20)."""
    known = set(reference.dropna()) | set(declared)
    return sorted(set(current.dropna()) - known)[:MAX_NEW_CATEGORIES]


def out_of_range_share(reference: pd.Series, current: pd.Series) -> float | None:
    """Share of current values outside the reference's [min, max]; None if either is empty."""
    present = current.dropna()
    if reference.notna().sum() == 0 or present.empty:
        return None
    outside = (present < reference.min()) | (present > reference.max())
    return float(outside.mean())


def measure_quality(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    declared: dict[str, list[str]],
) -> Quality:
    """`numeric` names the numeric columns; `declared` maps each category column to the
    categories its spec declares (possibly none)."""
    missing = {c: float(current[c].isna().mean()) if len(current) else 0.0 for c in current.columns}
    ranges = {
        c: share
        for c in numeric
        if (share := out_of_range_share(reference[c], current[c])) is not None
    }
    new = {
        c: found
        for c, values in declared.items()
        if (found := new_categories(reference[c], current[c], values))
    }
    return Quality(missing, ranges, new)
