"""Traffic for a load test: records drawn from the reference data, typed as the API expects.

Locust replays these records from a JSONL file, so they must already be plain JSON values:
ints for int columns, floats for float columns, strings for categories, None for missing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from fearless.spec import ColumnType, ModelSpec

_CASTS = {
    ColumnType.int: int,
    ColumnType.float: float,
    ColumnType.category: str,
    ColumnType.bool: bool,
}


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def synthesize_traffic(reference: pd.DataFrame, spec: ModelSpec, n: int, seed: int) -> list[dict]:
    """`n` records sampled with replacement from the reference rows (same seed, same records).

    Only the schema's columns are kept, in schema order; the values are JSON-safe Python types.
    """
    if n < 1:
        raise ValueError(f"need at least one traffic record, asked for {n}")
    missing = [name for name in spec.column_names if name not in reference.columns]
    if missing:
        raise ValueError(f"reference data lacks schema columns: {', '.join(missing)}")
    if reference.empty:
        raise ValueError("reference data has no rows to draw traffic from")
    rows = reference[spec.column_names].sample(n=n, replace=True, random_state=seed)
    columns = [(c.name, _CASTS[c.type]) for c in spec.input_schema]
    return [
        {name: None if _is_missing(row[name]) else cast(row[name]) for name, cast in columns}
        for row in rows.astype(object).to_dict("records")
    ]


def write_traffic(records: list[dict], path: Path) -> Path:
    """Write records as JSONL, one per line, the format the locustfile reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for record in records:
            out.write(json.dumps(record, allow_nan=False) + "\n")
    return path
