"""The fault matrix: each test in `tests/faults/` breaks one thing at one step and records
one row of what happened, then asserts the row's zeros.

`bench/faults.py` runs these tests with `FEARLESS_FAULT_MATRIX` naming a JSONL file and prints
the rows as a table; without that variable a row is only checked, not written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FaultRow:
    fault: str  # what was broken, e.g. "worker SIGKILL"
    step: str  # where in the release (or which service), e.g. "load test"
    outcome: str  # how it ended, in the product's words, e.g. "resumed, Completed"
    leaked: int = 0  # resources left behind (processes, queues, environments, ports)
    lost_releases: int = 0  # releases that ended with no state naming what happened
    lost_rows: int = 0  # acknowledged inference rows not found afterwards
    recover_s: float | None = None  # from the fault to serving/progressing again

    def problems(self) -> list[str]:
        counts = ("leaked", "lost_releases", "lost_rows")
        return [f"{name}={getattr(self, name)}" for name in counts if getattr(self, name)]


def record(row: FaultRow) -> FaultRow:
    """Write the row where the bench collects it, then fail the test on any non-zero count."""
    path = os.environ.get("FEARLESS_FAULT_MATRIX")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(asdict(row)) + "\n")
    assert not row.problems(), f"{row.fault} at {row.step}: {', '.join(row.problems())}"
    return row
