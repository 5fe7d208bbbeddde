"""Run the drift check in a child process and read back its scores.

The child (`python -m fearless.drift`) pays Evidently's ~11 s, ~300 MB import and exits, so the
Prefect worker never imports Evidently (nor risks its clash with Locust's gevent).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from fearless.drift.verdict import DriftError, DriftScores

SCORES_JSON = "scores.json"
STDERR_TAIL_CHARS = 3000


def run_drift_subprocess(
    reference_path: Path | str,
    current_path: Path | str,
    spec_path: Path | str,
    out_dir: Path | str,
    candidate_predictions_path: Path | str | None = None,
    champion_predictions_path: Path | str | None = None,
    timeout_s: float = 600,
) -> DriftScores:
    """Compute drift in its own process; raises DriftError with the child's stderr tail."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_path = out_dir / SCORES_JSON
    scores_path.unlink(missing_ok=True)  # never read a previous run's scores
    argv = [sys.executable, "-m", "fearless.drift"]
    argv += ["--reference", str(reference_path), "--current", str(current_path)]
    argv += ["--spec", str(spec_path), "--out", str(out_dir)]
    if candidate_predictions_path is not None:
        argv += ["--candidate-predictions", str(candidate_predictions_path)]
    if champion_predictions_path is not None:
        argv += ["--champion-predictions", str(champion_predictions_path)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise DriftError(
            f"the drift check ran past {timeout_s:g} s; killed.\n{_tail(exc.stderr)}"
        ) from None
    if done.returncode != 0:
        raise DriftError(
            f"the drift check failed (exit code {done.returncode}):\n{_tail(done.stderr)}"
        )
    try:
        return DriftScores.model_validate_json(scores_path.read_text())
    except (OSError, ValidationError) as exc:
        raise DriftError(f"the drift check left no usable {scores_path}: {exc}") from None


def _tail(stderr: str | bytes | None) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    return (stderr or "")[-STDERR_TAIL_CHARS:]
