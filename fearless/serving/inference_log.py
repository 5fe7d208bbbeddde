"""What the model API served, one row per record: the drift check's view of live traffic.

A process appends JSON lines to a segment of its own, `<root>/<model>/<YYYY-MM-DD>/<pid>-<µs>.jsonl`
(UTC dates), held under an exclusive lock while it writes. The lines of a batch go to the OS in
one write before any of its answers is sent (group commit): a killed process loses no
acknowledged row, and a prediction that could not be logged is not served (503). A batch the
disk took only part of is cut off again, so no half line sits before a later one. A machine
crash can still lose what the OS had not yet put on disk.

A segment is compacted into `<segment>.parquet` (`fearless.serving.log_compaction`) in a
background thread once it holds `segment_bytes`, its day ends or the log closes; a segment
whose process died is compacted by the model's next writer. Readers: `fearless.log_files`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fearless.serving.log_compaction import Compactor, input_types

if TYPE_CHECKING:
    import pandas as pd

    from fearless.spec import Column

SEGMENT_BYTES = 64 * 2**20  # ~130k rows of the example: one Parquet row group
PROBE_BYTES = 64 * 2**10


class InferenceLog:
    """Appends scored records under `root` for one model and digest.

    `failure` is the last write's error while writes fail (None once one succeeds); the
    model API is not ready meanwhile (see `writable`).
    """

    def __init__(
        self,
        root: Path,
        model: str,
        digest: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schema: list[Column] | None = None,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.root = Path(root)
        self.model = model
        self.digest = digest
        self.clock = clock
        self.segment_bytes = segment_bytes
        self.failure: OSError | None = None
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._compactor = Compactor(
            self.root / model, input_types(schema) if schema is not None else None
        )

    def append(
        self,
        request_id: str,
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        latency_ms: float,
    ) -> Path:
        """Write one line per record; any OSError reaches the caller."""
        return self.append_batch([(request_id, inputs, outputs)], latency_ms)

    def append_batch(
        self,
        requests: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]],
        latency_ms: float,
    ) -> Path:
        """Write the lines of several requests (id, inputs, outputs) scored together in one
        write; the segment written. Any OSError reaches the caller, the batch not logged."""
        now = self.clock()
        ts, latency = now.isoformat(), round(latency_ms, 3)
        lines = b"".join(
            orjson.dumps(
                {
                    "ts": ts,
                    "request_id": request_id,
                    "model": self.model,
                    "digest": self.digest,
                    "latency_ms": latency,
                    "inputs": record,
                    **output,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for request_id, inputs, outputs in requests
            for record, output in zip(inputs, outputs, strict=True)
        )
        with self._lock:  # request threads share the segment; keep each batch contiguous
            try:
                self._write(self.root / self.model / f"{now:%Y-%m-%d}", lines)
            except OSError as exc:
                self.failure = exc
                raise
            self.failure = None
            return self._path

    def _write(self, day: Path, lines: bytes) -> None:
        if self._fd is not None and (self._path.parent != day or self._size >= self.segment_bytes):
            self._seal()
        if self._fd is None:
            self._open(day)
        start = self._size
        try:
            view = memoryview(lines)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._seal()  # the torn line stays last in its file, where readers drop it
            raise
        self._size = start + len(lines)

    def _open(self, day: Path) -> None:
        """A new segment, locked before readers or sweepers can see its name."""
        day.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{time.time_ns() // 1000}.jsonl"
        hidden = day / f".{name}"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(hidden, day / name)
        except OSError:
            os.close(fd)
            hidden.unlink(missing_ok=True)
            raise
        first = self._path is None
        self._fd, self._path, self._size = fd, day / name, 0
        if first:
            self._compactor.sweep_soon()  # segments left by a process that died

    def _seal(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None
        self._compactor.sweep_soon()

    def writable(self) -> bool:
        """Whether the log can take rows: yes unless the last write failed and a probe write
        of PROBE_BYTES beside the log still fails (e.g. the disk is still full)."""
        if self.failure is None:
            return True
        probe = self.root / self.model / f".probe-{os.getpid()}"
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            with open(probe, "wb") as f:
                f.write(b"\0" * PROBE_BYTES)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        with self._lock:
            self.failure = None
        return True

    def close(self) -> None:
        """Seal the open segment and wait until every segment is compacted (or failed to)."""
        with self._lock:
            if self._fd is not None:
                self._seal()
        self._compactor.stop()


def read_inference_log(root: Path, model: str, since: datetime | None = None) -> pd.DataFrame:
    """Every record `model` served under `root` (optionally from `since` on), oldest first.

    Columns: the input columns, then `prediction`, `score`, `digest` and `ts` (UTC). An empty
    frame with just those four columns when nothing was logged. For small logs (a load
    test's); the nightly check streams instead (`fearless.log_files`).
    """
    import pandas as pd

    from fearless.log_files import OUTPUT_COLUMNS, read_inference_log_table

    table = read_inference_log_table(root, model, since)
    if table is None:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    frame = table.to_pandas()
    inputs = [c for c in frame.columns if c not in OUTPUT_COLUMNS]
    frame = frame.reindex(columns=inputs + OUTPUT_COLUMNS)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)
