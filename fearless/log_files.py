"""The files of an inference log, and reading them as Arrow tables without Python rows.

Layout: `<root>/<model>/<YYYY-MM-DD>/<segment>.jsonl` while a model API writes the segment,
`<segment>.parquet` once it is compacted (see `fearless.serving.inference_log`). A JSON line
file whose segment also has a Parquet file is a copy of it and is skipped; so are hidden files
(a Parquet file being written, a download in progress). Chunks fetched from S3 are named
`<segment>.<start>-<end>.jsonl` (byte offsets) and belong to their segment the same way.

Columns of what the readers return: the input columns by name, then `OUTPUT_COLUMNS`; a
file's own order of rows is kept.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from fearless.ids import checked_id

OUTPUT_COLUMNS = ["prediction", "score", "digest", "ts"]
INPUT_PREFIX = "inputs."
TS = pa.timestamp("us", tz="UTC")
CHUNK = re.compile(r"^(?P<segment>.+)\.(?P<start>\d{12})-(?P<end>\d{12})\.jsonl$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def segment_of(path: Path) -> str:
    """The segment a log file holds (all of it, or a chunk of it)."""
    if match := CHUNK.match(path.name):
        return match["segment"]
    return path.name.removesuffix(".parquet").removesuffix(".jsonl")


def log_files(root: Path, model: str, since: datetime | None = None) -> list[Path]:
    """The files holding `model`'s log under `root`, by day, each segment's rows once."""
    folder = Path(root) / checked_id(model, "model name")
    days = sorted(d for d in folder.iterdir() if DAY.match(d.name)) if folder.is_dir() else []
    if since is not None:
        days = [d for d in days if d.name >= f"{since:%Y-%m-%d}"]
    files = []
    for day in days:
        names = sorted(p for p in day.iterdir() if not p.name.startswith("."))
        compacted = {p.name.removesuffix(".parquet") for p in names if p.suffix == ".parquet"}
        files += [p for p in names if p.suffix == ".parquet"]
        files += [p for p in names if p.suffix == ".jsonl" and segment_of(p) not in compacted]
    return files


def complete_lines(path: Path) -> bytes:
    """A JSON line file up to its last newline: a line torn by a crash mid-write is dropped."""
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def parse_lines(data: bytes, inputs: dict[str, pa.DataType] | None = None) -> pa.Table:
    """JSON lines as the log writes them, as a table with flat `inputs.<name>` columns."""
    fields = [pa.field("ts", TS)]
    if inputs:
        fields.append(pa.field("inputs", pa.struct([pa.field(n, t) for n, t in inputs.items()])))
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema(fields), unexpected_field_behavior="infer"
    )
    if not data:
        return pa.table({"ts": pa.array([], TS)})
    return pa_json.read_json(io.BytesIO(data), parse_options=options).flatten()


def read_log_file(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One log file as stored (flat `inputs.<name>` columns); only `columns` where it has them."""
    if path.suffix == ".parquet":
        if columns is not None:
            present = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in present]
        return pq.read_table(path, columns=columns)
    table = parse_lines(complete_lines(path))
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table


def _since_utc(since: datetime | None) -> datetime | None:
    if since is not None and since.tzinfo is None:
        return since.replace(tzinfo=UTC)
    return since


def scan_inference_log(
    root: Path,
    model: str,
    since: datetime | None = None,
    columns: dict[str, pa.DataType] | None = None,
) -> Iterator[pa.Table]:
    """`model`'s log one file at a time (a segment: bounded memory), rows from `since` on.

    With `columns` ({input or output column: type}), each table has exactly those columns,
    cast to those types (absent ones all null); otherwise every column a file has.
    """
    since = _since_utc(since)
    stored = None
    if columns is not None:
        stored = [c if c in OUTPUT_COLUMNS else INPUT_PREFIX + c for c in columns] + ["ts"]
    for path in log_files(root, model, since):
        try:
            table = read_log_file(path, stored)
        except FileNotFoundError:  # compacted since it was listed: its rows are in Parquet now
            table = read_log_file(path.with_name(f"{segment_of(path)}.parquet"), stored)
        if since is not None and "ts" in table.column_names:
            first = pc.min(table["ts"]).as_py()
            if first is None or first < since:  # a segment wholly after `since` is kept whole
                table = table.filter(pc.greater_equal(table["ts"], pa.scalar(since, TS)))
        if table.num_rows:
            yield _named(table, columns)


def _named(table: pa.Table, columns: dict[str, pa.DataType] | None) -> pa.Table:
    """Input columns by their own names, then the outputs; cast to `columns` when given."""
    by_name = {
        name.removeprefix(INPUT_PREFIX): table[name]
        for name in table.column_names
        if name.startswith(INPUT_PREFIX)
    }
    by_name |= {c: table[c] for c in OUTPUT_COLUMNS if c in table.column_names}
    if columns is None:
        return pa.table(by_name)
    return pa.table(
        {
            name: by_name[name].cast(kind) if name in by_name else pa.nulls(table.num_rows, kind)
            for name, kind in columns.items()
        }
    )


def read_inference_log_table(
    root: Path, model: str, since: datetime | None = None
) -> pa.Table | None:
    """Every file of the scan in one table, types promoted across files; None when empty."""
    tables = list(scan_inference_log(root, model, since))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")
