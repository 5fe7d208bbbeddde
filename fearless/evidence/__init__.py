"""The page an approver decides from: what was tested, how it did, what approving changes.

`write_evidence` saves a release's inputs (`evidence.json`) and renders them twice: markdown
(`evidence.md`, the Prefect artifact, the approval form) and a self-contained HTML page with
charts (`evidence.html`). `rebuild_evidence` renders again from the saved inputs, adding the
simulations run since. Reports (the page itself, Locust's, Evidently's) are named by the links
`links` gives (`functools.partial(reports.url, release_id)`): an approver on another machine
follows them; a path on the worker's disk is never written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fearless.evidence.links import RelativeLink, ReportLinks
from fearless.evidence.model import (
    CostLine,
    Evidence,
    EvidenceError,
    environment_costs,
    load_evidence,
    read_simulations,
    save_evidence,
    write_atomically,
)

__all__ = [
    "CostLine",
    "Evidence",
    "EvidenceError",
    "EvidenceFiles",
    "environment_costs",
    "evidence_files",
    "find_evidence",
    "rebuild_evidence",
    "write_evidence",
]


@dataclass(frozen=True)
class EvidenceFiles:
    json: Path
    markdown: Path
    html: Path


def evidence_files(run_dir: Path) -> EvidenceFiles:
    """Where a run's evidence lives (whether or not it has been written)."""
    return EvidenceFiles(
        run_dir / "evidence.json", run_dir / "evidence.md", run_dir / "evidence.html"
    )


def render_evidence(
    run_dir: Path, evidence: Evidence, links: ReportLinks = RelativeLink
) -> EvidenceFiles:
    """Write evidence.md and evidence.html from the saved inputs and the run's simulations."""
    from fearless.evidence.markdown import render_markdown
    from fearless.evidence.page import build_charts, render_html
    from fearless.evidence.sections import evidence_sections

    files = evidence_files(run_dir)
    simulations = read_simulations(run_dir)
    sections = evidence_sections(evidence, simulations, links)
    write_atomically(files.markdown, render_markdown(sections))
    title = f"Evidence: release {evidence.release_id} ({evidence.model})"
    page = render_html(sections, build_charts(evidence, simulations), title)
    write_atomically(files.html, page)
    return files


def write_evidence(
    run_dir: Path, evidence: Evidence, links: ReportLinks = RelativeLink
) -> EvidenceFiles:
    """Save and render the evidence; an EvidenceError naming the folder and why it could not
    be written (a full disk, no permission): an approver must never decide without it."""
    try:
        save_evidence(run_dir, evidence)
        return render_evidence(run_dir, evidence, links)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise EvidenceError(f"the evidence could not be written to {run_dir}: {why}") from exc


def rebuild_evidence(run_dir: Path, links: ReportLinks = RelativeLink) -> EvidenceFiles:
    """Render again from `evidence.json` (an EvidenceError when the run has none yet)."""
    return render_evidence(run_dir, load_evidence(run_dir), links)


def find_evidence(runs_root: Path, run_id: str) -> EvidenceFiles:
    """A run's evidence files, or an EvidenceError naming the run and what is missing."""
    if not run_id or Path(run_id).name != run_id or run_id in (".", ".."):
        raise EvidenceError(f"{run_id!r} is not a release id")
    run_dir = runs_root / run_id
    if not run_dir.is_dir():
        raise EvidenceError(f"no run {run_id} (no folder {run_dir})")
    files = evidence_files(run_dir)
    if not (files.html.is_file() or files.markdown.is_file()):
        raise EvidenceError(
            f"run {run_id} has no evidence yet: it is written once the load-test and drift "
            f"gates have passed ({files.html} does not exist)"
        )
    return files
