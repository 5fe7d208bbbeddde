"""Compaction of an inference log's JSON line segments into Parquet (zstd, one row group).

The Parquet file is written under a hidden name, synced and renamed, and only then is the
JSON line file removed: a reader never sees half a file, and every row is in one or the other.
A segment is compacted only under its exclusive lock, so never while a live writer holds it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from fearless.spec import Column

log = logging.getLogger(__name__)


def input_types(schema: list[Column]) -> dict[str, pa.DataType]:
    """The Arrow type each input column is stored as."""
    import pyarrow as pa

    from fearless.spec import ColumnType

    kinds = {
        ColumnType.int: pa.int64(),
        ColumnType.float: pa.float64(),
        ColumnType.category: pa.string(),
        ColumnType.bool: pa.bool_(),
    }
    return {c.name: kinds[c.type] for c in schema}


def write_parquet(table: pa.Table, target: Path) -> None:
    """`table` as `target`, complete or not at all: written hidden, synced, then renamed."""
    import pyarrow.parquet as pq

    hidden = target.with_name(f".{target.name}.tmp")
    try:
        pq.write_table(
            table,
            hidden,
            row_group_size=max(table.num_rows, 1),
            compression="zstd",
            compression_level=9,
            use_byte_stream_split=[
                c for c, t in zip(table.column_names, table.schema.types) if t == "double"
            ],
        )
        with open(hidden, "rb") as f:
            os.fsync(f.fileno())
        os.replace(hidden, target)
    except BaseException:
        hidden.unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def compact_segment(path: Path, inputs: dict[str, pa.DataType] | None = None) -> Path | None:
    """Turn a JSON line segment nobody writes into Parquet; its Parquet path, or None when a
    live writer holds it or it is gone. Only complete lines are kept."""
    from fearless.log_files import complete_lines, parse_lines

    target = path.with_name(path.name.removesuffix(".jsonl") + ".parquet")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        if not path.exists():  # compacted by another process while we opened it
            return None
        data = complete_lines(path)
        if data and not target.exists():
            write_parquet(parse_lines(data, inputs), target)
        path.unlink()
        return target if data else None
    finally:
        os.close(fd)


class Compactor:
    """One background thread compacting the segments nobody writes, so no request waits."""

    def __init__(self, folder: Path, inputs: dict[str, pa.DataType] | None) -> None:
        self.folder, self.inputs = folder, inputs
        self.jobs: queue.Queue[bool] = queue.Queue()
        self.thread: threading.Thread | None = None

    def sweep_soon(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="log-compactor", daemon=True)
            self.thread.start()
        self.jobs.put(True)

    def stop(self) -> None:
        """Finish the sweeps asked for, then end the thread (a later sweep starts another)."""
        if self.thread is not None:
            self.jobs.put(False)
            self.thread.join()
            self.thread = None

    def _run(self) -> None:
        while self.jobs.get():
            # A hidden segment is one being opened (empty until its writer locks it)
            for path in sorted(self.folder.glob("*/[!.]*.jsonl")):
                try:
                    compact_segment(path, self.inputs)
                except Exception:  # its JSON lines stay; the next sweep tries again
                    log.exception("compacting the inference log segment %s failed", path)
