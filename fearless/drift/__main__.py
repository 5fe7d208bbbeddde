"""Run the drift check in its own process: `python -m fearless.drift --reference R.parquet ...`.

Evidently costs ~11 s and ~300 MB to import and clashes with Locust's gevent in one process,
so the pipeline runs it here (see `fearless.drift.process`). Writes `scores.json` (DriftScores)
into --out and prints its path; known failures exit 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from fearless.drift.current import read_counts
from fearless.drift.engine import compute_drift
from fearless.drift.process import SCORES_JSON
from fearless.drift.verdict import DriftError
from fearless.spec import SpecError, load_spec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fearless.drift", description=__doc__)
    parser.add_argument("--reference", type=Path, required=True, help="reference data (parquet)")
    parser.add_argument("--current", type=Path, required=True, help="current data (parquet)")
    parser.add_argument("--spec", type=Path, required=True, help="fearless.yaml or its folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the reports")
    parser.add_argument("--candidate-predictions", type=Path, help="parquet: prediction, score")
    parser.add_argument("--champion-predictions", type=Path, help="parquet: prediction, score")
    return parser


def _read(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DriftError(f"{path}: cannot read parquet: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        spec = load_spec(args.spec)
        scores = compute_drift(
            _read(args.reference),
            _read(args.current),
            spec.input_schema,
            spec.drift,
            args.out,
            candidate_predictions=_read(args.candidate_predictions),
            champion_predictions=_read(args.champion_predictions),
            current_counts=read_counts(args.current),
        )
    except (SpecError, DriftError) as exc:
        print(f"drift check failed: {exc}", file=sys.stderr)
        return 2
    path = args.out / SCORES_JSON
    path.write_text(scores.model_dump_json(indent=2))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
