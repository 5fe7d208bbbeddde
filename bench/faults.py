"""The fault matrix as a table: runs the tests in tests/faults/ (each breaks one thing at one
step and records a row) and prints every row they recorded.

    uv run --frozen python bench/faults.py              # the whole matrix
    uv run --frozen python bench/faults.py -k worker    # some rows (pytest's -k)

A failed test still records its row first: the table shows what went wrong, and the exit
status is pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Rows whose tests live with the release tests they belong to.
ELSEWHERE = [
    "tests/e2e/test_release.py::test_approval_timeout_rejects_and_tears_down",
    (
        "tests/e2e/test_release.py::"
        "test_bad_decisions_are_refused_then_cancelling_the_waiting_release_tears_it_down"
    ),
    (
        "tests/e2e/test_postgres.py::"
        "test_releases_on_postgres_wait_for_the_pool_then_finish_leaving_nothing"
    ),
]
COLUMNS = ("fault", "step", "outcome", "leaked", "lost_releases", "lost_rows", "recover_s")


def table(rows: list[dict]) -> str:
    cells = [
        [str(row[c]) if c != "recover_s" or row[c] is None else f"{row[c]:.1f}" for c in COLUMNS]
        for row in rows
    ]
    header = ["fault", "step", "outcome", "leaked", "lost releases", "lost rows", "recover s"]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        env = {**os.environ, "FEARLESS_FAULT_MATRIX": str(rows_file)}
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/faults",
                *ELSEWHERE,
                "-q",
                "-p",
                "no:cacheprovider",
                *argv,
            ],
            cwd=ROOT,
            env=env,
            check=False,
        ).returncode
        rows = (
            [json.loads(line) for line in rows_file.read_text().splitlines()]
            if rows_file.exists()
            else []
        )
    print()
    print(table(rows) if rows else "no rows recorded")
    bad = sum(1 for r in rows if r["leaked"] or r["lost_releases"] or r["lost_rows"])
    print(f"\n{len(rows)} rows; {bad} with a leak or a loss; pytest exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
