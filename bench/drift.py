"""Fearless's drift check against plain scipy Wasserstein on 1M rows x 20 columns.

Writes a reference and a current set (6 of the 20 current columns shifted) as parquet, then
runs each side in a fresh process of its own, one after the other:

- fearless: `python -m fearless.drift`'s `main` (read parquet, Evidently report on a sample,
  data quality on every row, HTML + JSON snapshot written), after importing Evidently;
- scipy: read the same parquet, normalised Wasserstein per column on every row
  (`wasserstein_distance / std(reference)`, Evidently's own formula).

Each process reports its phases and its peak RSS (`ru_maxrss`). The table ends with the largest
score difference between Fearless's (sampled) scores and scipy's full ones, and the last line is
`ratio: X`: Fearless's check time over scipy's, both from reading the parquet to the scores,
imports excluded (the drift process is forked from a parent that already imported Evidently).

    .venv/bin/python bench/drift.py [--rows 1000000] [--columns 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIFTED_EVERY = 3  # columns 0, 3, 6, ... of the current set are shifted


def _write_data(folder: Path, rows: int, columns: int) -> None:
    import numpy as np
    import pandas as pd
    import yaml

    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(columns)]
    pd.DataFrame({n: rng.normal(0, 1, rows) for n in names}).to_parquet(folder / "ref.parquet")
    shift = {n: 0.3 if i % SHIFTED_EVERY == 0 else 0.0 for i, n in enumerate(names)}
    pd.DataFrame({n: rng.normal(shift[n], 1, rows) for n in names}).to_parquet(
        folder / "cur.parquet"
    )
    spec = {
        "name": "bench",
        "model": "model.joblib",
        "reference_data": "ref.parquet",
        "schema": {n: "float" for n in names},
        "drift": {"max_drifted_share": 0.5},
    }
    (folder / "fearless.yaml").write_text(yaml.safe_dump(spec))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _fearless(folder: Path) -> dict:
    start = time.perf_counter()
    import evidently  # noqa: F401 - paid once by the preloaded drift parent in production

    from fearless.drift.__main__ import main

    imported = time.perf_counter()
    out = folder / "fearless-out"
    argv = ["--reference", str(folder / "ref.parquet"), "--current", str(folder / "cur.parquet")]
    code = main([*argv, "--spec", str(folder / "fearless.yaml"), "--out", str(out)])
    done = time.perf_counter()
    scores = json.loads((out / "scores.json").read_text())
    return {
        "exit": code,
        "import_s": imported - start,
        "check_s": done - imported,
        "scores": {c["column"]: c["score"] for c in scores["columns"]},
        "sample_rows": scores["sample_rows"],
        "peak_rss_mb": _peak_rss_mb(),
    }


def _scipy(folder: Path) -> dict:
    start = time.perf_counter()
    import numpy as np
    import pandas as pd
    from scipy.stats import wasserstein_distance

    imported = time.perf_counter()
    ref, cur = pd.read_parquet(folder / "ref.parquet"), pd.read_parquet(folder / "cur.parquet")
    scores = {
        c: float(wasserstein_distance(ref[c], cur[c]) / max(float(np.std(ref[c])), 0.001))
        for c in ref.columns
    }
    done = time.perf_counter()
    return {
        "exit": 0,
        "import_s": imported - start,
        "check_s": done - imported,
        "scores": scores,
        "sample_rows": None,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run_part(part: str, folder: Path) -> dict:
    argv = [sys.executable, __file__, "--part", part, "--dir", str(folder)]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{part} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--part", choices=["fearless", "scipy"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps((_fearless if args.part == "fearless" else _scipy)(args.dir)))
        return

    with tempfile.TemporaryDirectory(prefix="fearless-bench-drift-") as tmp:
        folder = Path(tmp)
        _write_data(folder, args.rows, args.columns)
        results = {part: _run_part(part, folder) for part in ("fearless", "scipy")}

    fearless, scipy = results["fearless"], results["scipy"]
    diff = max(abs(fearless["scores"][c] - scipy["scores"][c]) for c in scipy["scores"])
    shifted = sum(s >= 0.1 for s in fearless["scores"].values())
    print(f"{args.rows:,} rows x {args.columns} columns (timings on a shared machine: rough)")
    print(f"{'':<10} {'import_s':>9} {'check_s':>9} {'wall_s':>9} {'peak_rss_mb':>12}")
    for part, r in results.items():
        print(
            f"{part:<10} {r['import_s']:>9.1f} {r['check_s']:>9.1f} {r['wall_s']:>9.1f} "
            f"{r['peak_rss_mb']:>12.0f}"
        )
    print(f"fearless sample per side: {fearless['sample_rows']} rows (data quality on every row)")
    print(f"columns drifted (score >= 0.1): {shifted} of {args.columns}")
    from fearless.drift.engine import SAMPLE_TOLERANCE

    within = "within" if diff <= SAMPLE_TOLERANCE else "OUTSIDE"
    print(f"max |fearless score - scipy full score|: {diff:.4f} ({within} {SAMPLE_TOLERANCE})")
    print(f"ratio: {fearless['check_s'] / scipy['check_s']:.2f}")


if __name__ == "__main__":
    main()
