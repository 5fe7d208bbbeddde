"""Traffic for a load test: records typed as the API expects, from one of three sources.

- synthetic: drawn from the reference data (`synthesize_traffic`);
- replay: what the production model actually received, in order, with the recorded relative
  timing kept beside the records (`replay_traffic`, `read_replay`);
- a drift scenario applied to either (`simulations.scenarios.apply_scenario`).

Locust sends these records from a JSONL file, so they must already be plain JSON values:
ints for int columns, floats for float columns, strings for categories, None for missing.
A replay's offsets go to a sidecar file (`offsets_path`) that the locustfile reads when a
timed replay is asked for (FEARLESS_REPLAY_SPEED).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class Replay:
    """Records in the order production received them, and each one's offset from the first (s)."""

    records: list[dict]
    offsets_s: list[float]


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _typed_records(frame: pd.DataFrame, spec: ModelSpec) -> list[dict]:
    columns = [(c.name, _CASTS[c.type]) for c in spec.input_schema]
    return [
        {name: None if _is_missing(row[name]) else cast(row[name]) for name, cast in columns}
        for row in frame[spec.column_names].astype(object).to_dict("records")
    ]


def _check_columns(frame: pd.DataFrame, spec: ModelSpec, source: str) -> None:
    missing = [name for name in spec.column_names if name not in frame.columns]
    if missing:
        raise ValueError(f"{source} lacks schema columns: {', '.join(missing)}")


def synthesize_traffic(reference: pd.DataFrame, spec: ModelSpec, n: int, seed: int) -> list[dict]:
    """`n` records sampled with replacement from the reference rows (same seed, same records).

    Only the schema's columns are kept, in schema order; the values are JSON-safe Python types.
    """
    if n < 1:
        raise ValueError(f"need at least one traffic record, asked for {n}")
    _check_columns(reference, spec, "reference data")
    if reference.empty:
        raise ValueError("reference data has no rows to draw traffic from")
    rows = reference[spec.column_names].sample(n=n, replace=True, random_state=seed)
    return _typed_records(rows, spec)


def replay_traffic(log: pd.DataFrame, spec: ModelSpec, limit: int | None = None) -> Replay:
    """The records of an inference log (as `read_inference_log` returns it), oldest first.

    `limit` keeps the most recent `limit` records. Offsets count from the first kept record.
    """
    if log.empty:
        raise ValueError(f"the inference log of {spec.name!r} has no records to replay")
    _check_columns(log, spec, "the inference log")
    log = log.sort_values("ts", kind="stable")
    if limit is not None:
        log = log.tail(limit)
    ts = pd.to_datetime(log["ts"], utc=True)
    offsets = ((ts - ts.iloc[0]).dt.total_seconds()).round(6).tolist()
    return Replay(records=_typed_records(log, spec), offsets_s=offsets)


def read_replay(
    root: Path, spec: ModelSpec, since: datetime | None = None, limit: int | None = None
) -> Replay:
    """Replay traffic from the inference logs under `root` (production: `<state>/inference`)."""
    from fearless.serving.inference_log import read_inference_log

    return replay_traffic(read_inference_log(root, spec.name, since), spec, limit)


def offsets_path(traffic_path: Path) -> Path:
    """Where the offsets of a replayed traffic file live: `traffic.jsonl` -> `traffic.offsets.json`."""
    return traffic_path.with_suffix(".offsets.json")


def write_traffic(records: list[dict], path: Path, offsets_s: list[float] | None = None) -> Path:
    """Write records as JSONL, one per line, the format the locustfile reads.

    With `offsets_s` (one per record) they are written to `offsets_path(path)`; without, any
    stale offsets file there is removed so a later timed run cannot pair it with new records.
    """
    if offsets_s is not None and len(offsets_s) != len(records):
        raise ValueError(f"{len(offsets_s)} offsets for {len(records)} records")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for record in records:
            out.write(json.dumps(record, allow_nan=False) + "\n")
    if offsets_s is None:
        offsets_path(path).unlink(missing_ok=True)
    else:
        offsets_path(path).write_text(json.dumps(offsets_s))
    return path


def write_replay(replay: Replay, path: Path) -> Path:
    """Write a replay's records and offsets (see `write_traffic`)."""
    return write_traffic(replay.records, path, replay.offsets_s)
