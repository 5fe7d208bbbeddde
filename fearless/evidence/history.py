"""The figures the charts draw, read from the files the load test and drift check leave."""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel

from fearless.drift.verdict import ColumnDrift, DriftScores

HISTORY_COLUMNS = ("Timestamp", "User Count", "Name", "50%", "95%", "99%")
HISTORY_COLUMNS += ("Total Request Count", "Total Failure Count")


class LoadHistory(BaseModel):
    """One load test, second by second: latency percentiles (None before any response),
    throughput and users. `seconds` count from the run's first row."""

    seconds: list[float]
    users: list[int]
    p50_ms: list[float | None]
    p95_ms: list[float | None]
    p99_ms: list[float | None]
    rps: list[float]
    failures_per_s: list[float]


def history_path(csv_prefix: str) -> Path:
    """Where Locust's `--csv PREFIX` wrote its per-interval history."""
    return Path(f"{csv_prefix}_stats_history.csv")


def _latency(value: str) -> float | None:
    return None if value in ("", "N/A") else float(value)


def read_history(path: Path) -> LoadHistory | None:
    """The Aggregated rows of a Locust `_stats_history.csv`; None when the file does not exist.

    Throughput is the growth of the total request (and failure) count between rows, not
    Locust's own `Requests/s` column: that is a sliding average which reads 0 for the first
    seconds of a run, i.e. for the whole of a short one. The percentiles are Locust's, over
    its recent-responses window.
    """
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in HISTORY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not a Locust stats history: no column {missing}")
        rows = [row for row in reader if row["Name"] == "Aggregated"]
    history = LoadHistory(
        seconds=[], users=[], p50_ms=[], p95_ms=[], p99_ms=[], rps=[], failures_per_s=[]
    )
    start = previous = None
    for row in rows:
        try:
            at = float(row["Timestamp"])
            counts = (float(row["Total Request Count"]), float(row["Total Failure Count"]))
            latencies = [_latency(row[c]) for c in ("50%", "95%", "99%")]
            users = int(row["User Count"])
        except ValueError as exc:
            raise ValueError(f"{path}: bad row at {row.get('Timestamp')!r}: {exc}") from exc
        start = at if start is None else start
        if previous is not None and at <= previous[0]:
            continue  # two rows in the same second: keep the first
        interval = at - previous[0] if previous else None
        history.seconds.append(at - start)
        history.users.append(users)
        history.p50_ms.append(latencies[0])
        history.p95_ms.append(latencies[1])
        history.p99_ms.append(latencies[2])
        history.rps.append((counts[0] - previous[1][0]) / interval if interval else 0.0)
        history.failures_per_s.append((counts[1] - previous[1][1]) / interval if interval else 0.0)
        previous = (at, counts)
    return history


def drift_bars(scores: DriftScores) -> list[ColumnDrift]:
    """Every column's score against its threshold, then the candidate-vs-champion score drift."""
    return [*scores.columns, *([scores.prediction_drift] if scores.prediction_drift else [])]


def read_drift_scores(path: Path) -> DriftScores:
    """The drift check's `scores.json`, or a ValueError naming the file."""
    try:
        return DriftScores.model_validate_json(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a drift check's scores: {exc}") from exc
