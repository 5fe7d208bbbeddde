"""Run the drift check in a child process and read back its scores.

The child (`python -m fearless.drift`) pays Evidently's ~11 s, ~300 MB import and exits, so the
Prefect worker never imports Evidently (nor risks its clash with Locust's gevent). Given a
`Launcher` with a preloaded drift parent, the child is forked with Evidently already imported.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydantic import ValidationError

from fearless.drift.verdict import DriftError, DriftScores
from fearless.platform.preload import Launcher

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
    launcher: Launcher | None = None,
) -> DriftScores:
    """Compute drift in its own process; raises DriftError with the child's stderr tail."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_path = out_dir / SCORES_JSON
    scores_path.unlink(missing_ok=True)  # never read a previous run's scores
    argv = ["--reference", str(reference_path), "--current", str(current_path)]
    argv += ["--spec", str(spec_path), "--out", str(out_dir)]
    if candidate_predictions_path is not None:
        argv += ["--candidate-predictions", str(candidate_predictions_path)]
    if champion_predictions_path is not None:
        argv += ["--champion-predictions", str(champion_predictions_path)]
    log_path = out_dir / "drift.log"
    log_path.unlink(missing_ok=True)
    try:
        code = (launcher or Launcher()).run("fearless.drift", argv, log_path, timeout_s)
    except subprocess.TimeoutExpired:
        raise DriftError(
            f"the drift check ran past {timeout_s:g} s; killed.\n{_tail(log_path)}"
        ) from None
    if code != 0:
        raise DriftError(f"the drift check failed (exit code {code}):\n{_tail(log_path)}")
    try:
        return DriftScores.model_validate_json(scores_path.read_text())
    except (OSError, ValidationError) as exc:
        raise DriftError(f"the drift check left no usable {scores_path}: {exc}") from None


def _tail(log_path: Path) -> str:
    try:
        return log_path.read_text(errors="replace")[-STDERR_TAIL_CHARS:]
    except OSError:
        return ""
