"""Production traffic for the drift check, streamed from the inference log: data quality
counted on every row, and a uniform random sample kept for the scores, so a day of logs never
sits in memory (one segment at a time, plus the sample).

The sample is what the engine would have drawn (`SAMPLE_ROWS` rows, uniformly, seeded): each
row gets a random key and the rows with the smallest keys are kept (bottom-k sampling).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fearless.drift.frames import SAMPLE_SEED, as_labels, kind_of
from fearless.drift.quality import MAX_NEW_CATEGORIES, Quality
from fearless.log_files import scan_inference_log
from fearless.spec import Column, ColumnType

COUNTS_KEY = b"fearless.current"  # the Parquet metadata key of a sample's every-row counts
MAX_UNKNOWN_KEPT = 100_000  # distinct unknown categories remembered per column


@dataclass(frozen=True)
class CurrentCounts:
    """What was counted on every current row, beside a sample of them."""

    rows: int
    quality: Quality

    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, **self.quality._asdict()})

    @classmethod
    def from_json(cls, text: str | bytes) -> CurrentCounts:
        data = json.loads(text)
        return cls(data.pop("rows"), Quality(**data))


@dataclass(frozen=True)
class CurrentSample:
    sample: pd.DataFrame
    counts: CurrentCounts

    def write(self, path: Path) -> Path:
        """The sample as Parquet, the every-row counts in its metadata (see `read_counts`)."""
        table = pa.Table.from_pandas(self.sample, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), COUNTS_KEY: self.counts.to_json().encode()}
        pq.write_table(table.replace_schema_metadata(metadata), path)
        return path


def read_counts(path: Path) -> CurrentCounts | None:
    """The every-row counts stored beside a sample by `CurrentSample.write`, if any."""
    metadata = pq.read_schema(path).metadata or {}
    return CurrentCounts.from_json(metadata[COUNTS_KEY]) if COUNTS_KEY in metadata else None


def scan_types(schema: list[Column]) -> dict[str, pa.DataType]:
    """What each schema column is read as: numbers as floats, categories as text."""
    kinds = {ColumnType.category: pa.string(), ColumnType.bool: pa.bool_()}
    return {c.name: kinds.get(c.type, pa.float64()) for c in schema}


class _QualityCounter:
    """`measure_quality`'s figures, added up one table at a time."""

    def __init__(self, reference: pd.DataFrame, schema: list[Column]) -> None:
        self.schema, self.rows = schema, 0
        self.missing = dict.fromkeys((c.name for c in schema), 0)
        self.outside = dict.fromkeys((c.name for c in schema if kind_of(c) == "numeric"), 0)
        self.present = dict.fromkeys(self.outside, 0)
        ranges = reference[list(self.outside)]
        self.low, self.high = ranges.min(), ranges.max()
        self.known = {
            c.name: set(reference[c.name].dropna()) | set(c.values or [])
            for c in schema
            if kind_of(c) == "categorical"
        }
        self.unknown: dict[str, set] = {name: set() for name in self.known}

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for name in self.missing:
            column = table[name]
            absent = column.null_count
            if name in self.outside:
                absent += pc.sum(pc.is_nan(column)).as_py() or 0
                self.present[name] += len(column) - absent
                self._ranges(name, column)
            self.missing[name] += absent
        for name, known in self.known.items():
            values = pc.unique(table[name]).drop_null().to_pandas()
            if len(self.unknown[name]) < MAX_UNKNOWN_KEPT:
                self.unknown[name] |= set(as_labels(values).dropna()) - known

    def _ranges(self, name: str, column: pa.ChunkedArray) -> None:
        """Values outside the reference's range (a null is no value; NaN compares false)."""
        low, high = self.low[name], self.high[name]
        if not pd.isna(low):
            low, high = float(low), float(high)
            outside = pc.or_(pc.less(column, low), pc.greater(column, high))
            self.outside[name] += pc.sum(outside).as_py() or 0

    def quality(self) -> Quality:
        return Quality(
            missing_share={n: m / self.rows if self.rows else 0.0 for n, m in self.missing.items()},
            out_of_range_share={
                n: self.outside[n] / self.present[n]
                for n in self.outside
                if self.present[n] and not pd.isna(self.low[n])
            },
            new_categories={
                n: sorted(found)[:MAX_NEW_CATEGORIES] for n, found in self.unknown.items() if found
            },
        )


class _Sampler:
    """A uniform random sample of at most `size` rows of a stream of tables."""

    def __init__(self, size: int, seed: int = SAMPLE_SEED) -> None:
        self.size, self.random = size, np.random.default_rng(seed)
        self.kept: pa.Table | None = None
        self.keys = np.empty(0)

    def add(self, table: pa.Table) -> None:
        keys = self.random.random(table.num_rows)
        if len(self.keys) >= self.size:  # only rows that beat the largest key kept can enter
            entering = np.flatnonzero(keys < self.keys.max())
            table, keys = table.take(entering), keys[entering]
        keys = np.concatenate([self.keys, keys])
        both = table if self.kept is None else pa.concat_tables([self.kept, table])
        if len(keys) > self.size:
            chosen = np.sort(np.argpartition(keys, self.size - 1)[: self.size])
            both, keys = both.take(chosen), keys[chosen]
        self.kept, self.keys = both.combine_chunks(), keys


def sample_current(
    root: Path,
    model: str,
    since: datetime | None,
    schema: list[Column],
    reference: pd.DataFrame,
    sample_rows: int,
) -> CurrentSample:
    """`model`'s logged inputs since `since`: a sample of `sample_rows` and every-row counts.

    `reference` is the reference data as the engine types it (`frames.prepared`).
    """
    types = scan_types(schema)
    counter, sampler = _QualityCounter(reference, schema), _Sampler(sample_rows)
    for table in scan_inference_log(root, model, since, types):
        counter.add(table)
        sampler.add(table)
    empty = pa.table({n: pa.array([], t) for n, t in types.items()})
    sample = (sampler.kept or empty).to_pandas()
    return CurrentSample(sample, CurrentCounts(counter.rows, counter.quality()))
