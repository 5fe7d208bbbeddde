"""The evidence as sections of text, tables and chart slots, rendered to markdown and to HTML.

Both renderings come from these sections, so the page and the Prefect artifact always show
the same figures. Text uses markdown's inline marks only (`code`, **bold**, [report](link)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fearless.evidence.history import drift_bars
from fearless.evidence.links import RelativeLink, ReportLinks, report_link
from fearless.evidence.model import Evidence
from fearless.loadtest.simulation import SimulationOutcome


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Chart:
    """Where the HTML page draws a chart (`load`, `drift`, `simulation-<n>`); markdown skips it."""

    key: str


Block = str | Table | Bullets | Chart


@dataclass
class Section:
    title: str
    level: int = 2
    blocks: list[Block] = field(default_factory=list)


def _ok(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _state(passed: bool, inconclusive: bool = False) -> str:
    return "inconclusive" if inconclusive else "passed" if passed else "FAILED"


def _checks(checks) -> Table:
    return Table(
        ["check", "observed", "limit", "ok"],
        [[c.name, f"{c.observed:.4g}", f"{c.limit:.4g}", _ok(c.ok)] for c in checks],
    )


def _figures(r, report: str) -> str:
    cpu = f"{r.generator_cpu_pct:.0f}%" if r.generator_measured else "not measured (ECS tasks)"
    if r.held_share is not None:
        load = f"{r.target_rps:g} req/s asked ({r.profile}), {r.held_share:.0%} of it sent: "
    else:
        load = f"{r.users} users as fast as answered ({r.profile}): "
    return load + (
        f"{r.requests} requests, {r.rps:.1f} req/s, errors {r.error_rate:.2%}, "
        f"p50/p95/p99 {r.p50_ms:.0f}/{r.p95_ms:.0f}/{r.p99_ms:.0f} ms, "
        f"generator CPU {cpu}. Report: {report}"
    )


def summary_section(ev: Evidence, links: ReportLinks) -> Section:
    env = ev.envs.candidate
    items = [
        f"candidate: `{ev.candidate_digest}`, built from "
        + (ev.source.describe() if ev.source else "an unrecorded source"),
        f"champion: `{ev.champion_digest or 'none (first release)'}`",
        f"test environment: {env.url} (expires {env.expires_at:%Y-%m-%d %H:%M} UTC)",
        (
            f"approving moves `{ev.model}:production` to the candidate and switches the "
            "production service to it; the champion becomes `previous`."
        ),
    ]
    items.append(f"this evidence with charts: {report_link('evidence.html', ev.release_id, links)}")
    return Section(f"Release {ev.release_id}: {ev.model}", 1, [Bullets(items)])


def load_sections(ev: Evidence, links: ReportLinks) -> list[Section]:
    load = ev.load
    main = Section(f"Load test: {_state(load.passed, load.inconclusive)}")
    report = report_link(load.result.report_html, ev.release_id, links)
    main.blocks += [_figures(load.result, report), _checks(load.verdict.checks)]
    if load.reasons:
        main.blocks.append(Bullets(load.reasons))
    hosts = [
        f"during the {role} run, {r.host.describe()}"
        for role, r in (("candidate", load.result), ("champion", load.champion))
        if r is not None and r.host is not None
    ]
    if load.notes or load.down or load.slot or hosts or ev.host_waits:
        slot = [load.slot.describe()] if load.slot else []
        lines = [*load.notes, *ev.host_waits, *slot, *hosts]
        lines += [f"{d.describe()}; its last log lines: `{d.log_tail[-500:]}`" for d in load.down]
        main.blocks.append(Bullets(lines))
    main.blocks.append(Chart("load"))
    if load.regression is None:
        return [main]
    verdict = load.regression
    state = _state(verdict.passed, verdict.inconclusive)
    versus = Section(f"Against the champion, same load (margin {verdict.margin:.0%}): {state}", 3)
    versus.blocks.append(
        Table(
            ["check", "candidate", "champion", "limit", "ok"],
            [
                [c.name, f"{c.candidate:.4g}", f"{c.champion:.4g}", f"{c.limit:.4g}", _ok(c.ok)]
                for c in verdict.checks
            ],
        )
    )
    if verdict.notes:
        versus.blocks.append(Bullets(verdict.notes))
    if load.champion is not None:
        report = report_link(load.champion.report_html, ev.release_id, links)
        versus.blocks.append(f"Champion: {_figures(load.champion, report)}")
    return [main, versus]


def drift_section(ev: Evidence, links: ReportLinks) -> Section:
    scores, verdict = ev.drift.scores, ev.drift.verdict
    section = Section(f"Drift: {_state(verdict.passed)}")
    section.blocks += [
        (
            f"{scores.drifted_share:.0%} of columns drifted on {scores.current_rows} served "
            f"records. Report: {report_link(scores.report_html, ev.release_id, links)}"
        ),
        _checks(verdict.checks),
    ]
    if verdict.reasons:
        section.blocks.append(Bullets(verdict.reasons))
    if verdict.notes or ev.drift.notes:
        section.blocks.append(Bullets([*verdict.notes, *ev.drift.notes]))
    if scores.agreement is not None:
        section.blocks.append(
            f"Candidate agrees with the champion on {scores.agreement:.1%} of "
            f"{scores.compared_rows} records."
        )
    section.blocks.append(Chart("drift"))
    rows = [
        [c.column, c.method, f"{c.score:.4g}", f"{c.threshold:g}", "**yes**" if c.drifted else "no"]
        for c in drift_bars(scores)
    ]
    section.blocks.append(Table(["column", "method", "score", "threshold", "drifted"], rows))
    return section


def simulations_section(
    ev: Evidence, simulations: list[SimulationOutcome], links: ReportLinks
) -> Section:
    section = Section("Simulations")
    if not simulations:
        section.blocks.append(
            f"None yet: `fearless simulate {ev.release_id} --profile spike` adds one."
        )
        return section
    rows = []
    for s in simulations:
        r, v = s.result, s.verdict
        rows.append(
            [str(s.number), r.profile, s.request.scenario or "-", s.request.traffic, str(r.users),
             f"{r.duration_s:.0f} s", str(r.requests), f"{r.rps:.1f}", f"{r.error_rate:.2%}",
             f"{r.p50_ms:.0f}/{r.p95_ms:.0f}/{r.p99_ms:.0f}", _state(v.passed, v.inconclusive),
             report_link(r.report_html, ev.release_id, links)]
        )  # fmt: skip
    header = ["#", "profile", "scenario", "traffic", "users", "duration", "requests", "req/s"]
    section.blocks.append(Table([*header, "errors", "p50/p95/p99 ms", "verdict", "report"], rows))
    for s in simulations:
        section.blocks.append(f"**Simulation {s.number}** against {s.target}:")
        section.blocks += [
            Bullets(s.verdict.reasons or ["all SLOs met"]),
            Chart(f"simulation-{s.number}"),
        ]
    return section


def cost_section(ev: Evidence) -> Section:
    section = Section("Cost")
    if ev.costs is None:
        section.blocks.append(
            ev.cost_note or f"Does not apply on the {ev.backend} backend: nothing is billed."
        )
        return section
    rows = [
        [line.role, "so far" if line.until == "now" else "if kept until it expires",
         f"{line.cost.size.vcpu:g} vCPU / {line.cost.size.memory_gb:g} GB", f"{line.cost.hours:.2f}",
         f"{line.cost.vcpu_hours:.3f}", f"{line.cost.gb_hours:.3f}", f"${line.cost.usd:.4f}"]
        for line in ev.costs
    ]  # fmt: skip
    header = ["environment", "until", "task size", "hours", "vCPU-hours", "GB-hours", "USD"]
    written = f"{ev.created_at:%Y-%m-%d %H:%M} UTC"
    section.blocks += [
        Table(header, rows),
        f"At on-demand Fargate list prices (USD); 'so far' is when this evidence was written, {written}.",
    ]
    return section


def parity_section(ev: Evidence) -> Section:
    section = Section("Parity")
    if ev.parity is None:
        section.blocks.append(
            "Does not apply on the local backend: test and production run the same local process."
            if ev.backend == "local"
            else "No production service to compare with."
        )
    elif not ev.parity:
        section.blocks.append("The test environment matches the production service.")
    else:
        section.blocks += ["The test environment differs from production:", Bullets(ev.parity)]
    return section


def evidence_sections(
    ev: Evidence, simulations: list[SimulationOutcome], links: ReportLinks = RelativeLink
) -> list[Section]:
    """Every report is named by its link (`links`), never by where the worker wrote it."""
    return [
        summary_section(ev, links),
        *load_sections(ev, links),
        drift_section(ev, links),
        simulations_section(ev, simulations, links),
        cost_section(ev),
        parity_section(ev),
    ]
