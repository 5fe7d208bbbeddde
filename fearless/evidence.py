"""The page an approver decides from: what was tested, how it did, what approving changes."""

from __future__ import annotations

from fearless.candidate import Candidate, TestEnvironments
from fearless.gates import DriftOutcome, LoadTestOutcome


def _checks_table(checks) -> list[str]:
    rows = ["| check | observed | limit | ok |", "|---|---|---|---|"]
    for check in checks:
        rows.append(
            f"| {check.name} | {check.observed:.4g} | {check.limit:.4g} | {'yes' if check.ok else '**no**'} |"
        )
    return rows


def _regression_lines(load: LoadTestOutcome) -> list[str]:
    """The candidate beside the champion under the identical load, when the spec asks for it."""
    if load.regression is None:
        return []
    verdict = load.regression
    state = "inconclusive" if verdict.inconclusive else ("passed" if verdict.passed else "FAILED")
    rows = [
        "",
        f"### Against the champion, same load (margin {verdict.margin:.0%}): {state}",
        "| check | candidate | champion | limit | ok |",
        "|---|---|---|---|---|",
    ]
    for c in verdict.checks:
        ok = "yes" if c.ok else "**no**"
        rows.append(f"| {c.name} | {c.candidate:.4g} | {c.champion:.4g} | {c.limit:.4g} | {ok} |")
    return rows


def evidence_markdown(
    release_id: str,
    candidate: Candidate,
    envs: TestEnvironments,
    load: LoadTestOutcome,
    drift: DriftOutcome,
    champion_digest: str | None,
) -> str:
    r, scores = load.result, drift.scores
    lines = [
        f"# Release {release_id}: {candidate.name}",
        "",
        f"- candidate: `{candidate.digest}`",
        f"- champion: `{champion_digest or 'none (first release)'}`",
        f"- test environment: {envs.candidate.url} (expires {envs.candidate.expires_at:%Y-%m-%d %H:%M} UTC)",
        (
            f"- approving moves `{candidate.name}:production` to the candidate and switches the "
            "production service to it; the champion becomes `previous`."
        ),
        "",
        f"## Load test: {'passed' if load.passed else 'FAILED'}",
        (
            f"{r.requests} requests, {r.rps:.1f} req/s, errors {r.error_rate:.2%}, "
            f"p50/p95/p99 {r.p50_ms:.0f}/{r.p95_ms:.0f}/{r.p99_ms:.0f} ms, "
            f"generator CPU {r.generator_cpu_pct:.0f}%. Report: `{r.report_html}`"
        ),
        "",
        *_checks_table(load.verdict.checks),
        *_regression_lines(load),
        "",
        f"## Drift: {'passed' if drift.verdict.passed else 'FAILED'}",
        (
            f"{scores.drifted_share:.0%} of columns drifted on {scores.current_rows} served records. "
            f"Report: `{scores.report_html}`"
        ),
        "",
        *_checks_table(drift.verdict.checks),
        *([""] + [f"- {note}" for note in drift.verdict.notes] if drift.verdict.notes else []),
    ]
    if scores.agreement is not None:
        lines += [
            "",
            (
                f"Candidate agrees with the champion on {scores.agreement:.1%} of "
                f"{scores.compared_rows} records."
            ),
        ]
    return "\n".join(lines) + "\n"
