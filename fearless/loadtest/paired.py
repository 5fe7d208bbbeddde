"""The same load against champion and candidate, back to back, for a regression verdict."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from fearless.loadtest.runner import LoadTestResult, run_load_test
from fearless.spec import LoadProfile

if TYPE_CHECKING:
    from fearless.loadtest.fleet import LoadGenerator


class PairedLoadTest(BaseModel):
    candidate: LoadTestResult
    champion: LoadTestResult


def run_paired_load_test(
    candidate_url: str,
    champion_url: str,
    load: LoadProfile,
    traffic_path: Path,
    out_dir: Path,
    *,
    processes: int = 0,
    replay_speed: float | None = None,
    generator: LoadGenerator | None = None,
) -> PairedLoadTest:
    """Drive the champion, then the candidate, with the identical profile and traffic file.

    Reports go to `out_dir/champion` and `out_dir/candidate`. The champion goes first so the
    candidate, the one being judged, never runs on a machine still busy from a previous test.
    Feed the result to `compare_to_champion`. A `generator` (the release's) drives both, else
    `run_load_test` here with `processes` and `replay_speed`.
    """
    if generator is None:
        options = {"processes": processes, "replay_speed": replay_speed}
        champion = run_load_test(champion_url, load, traffic_path, out_dir / "champion", **options)
        candidate = run_load_test(
            candidate_url, load, traffic_path, out_dir / "candidate", **options
        )
    else:
        champion = generator.run(champion_url, load, traffic_path, out_dir / "champion")
        candidate = generator.run(candidate_url, load, traffic_path, out_dir / "candidate")
    return PairedLoadTest(candidate=candidate, champion=champion)
