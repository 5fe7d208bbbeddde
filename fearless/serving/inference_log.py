"""What the model API served, one JSON line per record: the drift check's view of live traffic.

Layout: `<root>/<model>/<YYYY-MM-DD>/<pid>.jsonl` (UTC dates; one file per process, so
several API processes can share a root without interleaving). The lines of a batch are
written and flushed to the OS in one go before any of its answers is sent (group commit): a
killed process loses no acknowledged row, and a prediction that could not be logged is not
served (503). A machine crash can still lose what the OS had not yet put on disk.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fearless.ids import checked_id

if TYPE_CHECKING:
    import pandas as pd

OUTPUT_COLUMNS = ["prediction", "score", "digest", "ts"]


class InferenceLog:
    """Appends scored records under `root` for one model and digest."""

    def __init__(
        self,
        root: Path,
        model: str,
        digest: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.root = Path(root)
        self.model = model
        self.digest = digest
        self.clock = clock
        self._lock = threading.Lock()

    def path_for(self, when: datetime) -> Path:
        return self.root / self.model / when.strftime("%Y-%m-%d") / f"{os.getpid()}.jsonl"

    def append(
        self,
        request_id: str,
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        latency_ms: float,
    ) -> Path:
        """Write one line per record and flush; any OSError reaches the caller."""
        return self.append_batch([(request_id, inputs, outputs)], latency_ms)

    def append_batch(
        self,
        requests: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]],
        latency_ms: float,
    ) -> Path:
        """Write the lines of several requests (id, inputs, outputs) scored together in one
        write, and flush; any OSError reaches the caller."""
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
        path = self.path_for(now)
        with self._lock:  # request threads share the file; keep each batch contiguous
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as f:
                f.write(lines)
                f.flush()
        return path


def _lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    # The last piece is "" after a complete file, or a line torn by a crash mid-write.
    return [json.loads(line) for line in lines[:-1] if line]


def read_inference_log(root: Path, model: str, since: datetime | None = None) -> pd.DataFrame:
    """Every record `model` served under `root` (optionally from `since` on), oldest first.

    Columns: the input columns, then `prediction`, `score`, `digest` and `ts` (UTC). An empty
    frame with just those four columns when nothing was logged.
    """
    import pandas as pd

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    folder = Path(root) / checked_id(model, "model name")
    rows: list[dict[str, Any]] = []
    for day in sorted(folder.iterdir()) if folder.is_dir() else []:
        if since is not None and day.name < since.strftime("%Y-%m-%d"):
            continue
        for path in sorted(day.glob("*.jsonl")):
            rows += [
                {**line["inputs"], **{c: line[c] for c in OUTPUT_COLUMNS}} for line in _lines(path)
            ]
    if not rows:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    if since is not None:
        frame = frame[frame["ts"] >= pd.Timestamp(since)]
    inputs = [c for c in frame.columns if c not in OUTPUT_COLUMNS]
    return frame[inputs + OUTPUT_COLUMNS].sort_values("ts", kind="stable").reset_index(drop=True)
