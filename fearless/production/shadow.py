"""Pair the two versions' predictions of the same live records: production and its shadow.

During a bake the front sends each request to production and a mirror of it to the previous
version, with the same `X-Request-ID`; both model APIs write one inference-log row per record
(`fearless.serving.inference_log`), keyed by that id. `ShadowPairs` reads the rows each side
appended since the last call (the JSON line segments of one process each,
`<root>/<model>/<date>/<pid>-<µs>.jsonl`)
and pairs a record of one side with the same record of the other (request id and inputs):
whether the predictions are equal, and how far the score (or a numeric prediction) moved.
Rows of one side still waiting for the other are kept up to `MAX_PENDING`, oldest dropped.
A segment is read while it is written (an open file stays readable once compacted and removed);
one written and compacted between two reads (64 MiB in a few seconds) would be skipped: the
comparison is of a sample, never a count clients depend on.

Where the rows come from S3 instead (ECS: every production task ships its own, see
`fearless.aws.inference_logs`), `Chunks` reads each immutable chunk fetched into a folder once,
keeping only one version's rows (production's prefix holds the previous version's rows too).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import orjson

from fearless.log_files import INPUT_PREFIX, read_log_file
from fearless.production.bake import Scrape, WindowReader
from fearless.production.front_log import _Tail

log = logging.getLogger(__name__)

MAX_PENDING = 100_000


class _Rows:
    """Rows appended by one process to its inference log files (a new file each UTC day)."""

    def __init__(self, root: Path, model: str, pid: int) -> None:
        self.folder, self.pid = root / model, pid
        self.tails: dict[Path, _Tail] = {}

    def read(self) -> list[dict[str, Any]]:
        found = [
            *self.folder.glob(f"*/{self.pid}-*.jsonl"),
            *self.folder.glob(f"*/{self.pid}.jsonl"),
        ]
        for path in sorted(found):
            if path not in self.tails:
                try:
                    self.tails[path] = _Tail(path.open("rb"))
                except FileNotFoundError:
                    continue  # compacted since it was listed
        return [row for tail in self.tails.values() for row in _parsed(tail.lines())]

    def close(self) -> None:
        for tail in self.tails.values():
            tail.file.close()


class Chunks:
    """Rows of one digest in what `fetch` brings into a folder (`<folder>/<day>/`): chunks,
    and a model API's segments compacted whole (a stopped task ships its last one so), each
    file read once, whole: a file gets its final name only once complete. A fetch that fails
    (S3 unreachable) leaves this read empty; the next one catches up."""

    def __init__(self, digest: str, fetch: Callable[[], Path]) -> None:
        self.digest, self.fetch = digest, fetch
        self.seen: set[Path] = set()

    def read(self) -> list[dict[str, Any]]:
        try:
            folder = self.fetch()
        except Exception as exc:  # noqa: BLE001 (a comparison of a sample waits a round)
            log.warning("cannot fetch inference log rows of %s: %s", self.digest, exc)
            return []
        found = {*folder.glob("*/*.jsonl"), *folder.glob("*/*.parquet")}
        rows = []
        for path in sorted(found - self.seen):
            self.seen.add(path)
            rows += [r for r in _file_rows(path) if r.get("digest") == self.digest]
        return rows

    def close(self) -> None:
        """Nothing is held open between reads."""


def _file_rows(path: Path) -> list[dict[str, Any]]:
    """A log file's rows as the model API wrote them (a compacted one's `inputs.<name>`
    columns folded back into `inputs`)."""
    if path.suffix == ".parquet":
        rows = []
        for flat in read_log_file(path).to_pylist():
            names = [k for k in flat if k.startswith(INPUT_PREFIX)]
            inputs = {k.removeprefix(INPUT_PREFIX): flat.pop(k) for k in names}
            rows.append({**flat, "inputs": inputs})
        return rows
    return _parsed(path.read_bytes().splitlines())


def _parsed(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    """The rows among JSON lines (a torn or foreign line is no row)."""
    rows = []
    for line in lines:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


class RowSource(Protocol):
    def read(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def _key(row: dict[str, Any]) -> tuple[str, bytes] | None:
    request = row.get("request_id")
    if not isinstance(request, str) or "inputs" not in row:
        return None
    inputs = row["inputs"]
    if isinstance(inputs, dict):  # an absent input and a null one are the same record
        inputs = {name: value for name, value in inputs.items() if value is not None}
    return request, orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)


def _number(row: dict[str, Any]) -> float | None:
    for field in ("score", "prediction"):
        value = row.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) else None
    return None


class ShadowPairs:
    """Cumulative counts of the records both sides scored: compared, agreed, sum of shifts."""

    def __init__(self, live: RowSource, shadow: RowSource) -> None:
        self.sides = (live, shadow)
        self.pending: tuple[OrderedDict, OrderedDict] = (OrderedDict(), OrderedDict())
        self.compared = self.agreed = 0
        self.shift = 0.0

    @classmethod
    def of(cls, model: str, live: tuple[Path, int], shadow: tuple[Path, int]) -> ShadowPairs:
        """Pair the rows of process `live[1]` under log root `live[0]` with the shadow's."""
        return cls(_Rows(live[0], model, live[1]), _Rows(shadow[0], model, shadow[1]))

    def read(self) -> tuple[int, int, float]:
        for side, source in enumerate(self.sides):
            for row in source.read():
                self._pair(side, row)
        return self.compared, self.agreed, self.shift

    def _pair(self, side: int, row: dict[str, Any]) -> None:
        key = _key(row)
        if key is None:
            return
        other = self.pending[1 - side].pop(key, None)
        if other is None:
            mine = self.pending[side]
            mine[key] = row
            if len(mine) > MAX_PENDING:
                mine.popitem(last=False)
            return
        self.compared += 1
        self.agreed += row.get("prediction") == other.get("prediction")
        a, b = _number(row), _number(other)
        if a is not None and b is not None:
            self.shift += abs(a - b)

    def close(self) -> None:
        for source in self.sides:
            source.close()


class ShadowStart:
    """The shadow, started beside the bake's watch rather than before it: a model API takes a
    second (a process) to minutes (an ECS task) to be ready, and the window (production's
    figures) need not wait for it. Its comparison counts what was mirrored once it was."""

    def __init__(self) -> None:
        self.pairs: ShadowPairs | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self, mirror: Callable[[], ShadowPairs | None]) -> None:
        def run() -> None:
            try:
                self.pairs = mirror()
            except BaseException as exc:  # noqa: BLE001 (raised where the window ends)
                self.error = exc

        self.thread = threading.Thread(target=run, name="bake-shadow", daemon=True)
        self.thread.start()

    def settled(self) -> bool:
        """No shadow is starting: it compares (or never will)."""
        return self.thread is None or not self.thread.is_alive()

    def reader(self, scrape: Callable[[], Scrape]) -> WindowReader:
        """`scrape` with the comparison so far (none until the shadow answers), and whether a
        comparison may still begin."""

        def read() -> Scrape:
            seen = scrape()
            if self.pairs is None:
                return seen
            compared, agreed, shift = self.pairs.read()
            return seen.model_copy(update={"compared": compared, "agreed": agreed, "shift": shift})

        return WindowReader(read=read, settled=self.settled)

    def join(self, timeout_s: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout_s)
