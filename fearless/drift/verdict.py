"""Has the data, or the candidate's behaviour, moved too far to ship without a human looking?

The scores are measured elsewhere (`fearless.drift.engine`, in its own process because Evidently
is heavy); this module only holds their shape and the plain decision over them, so it imports
nothing heavy and is unit-tested at its boundaries.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from fearless.spec import DriftThresholds


class DriftError(RuntimeError):
    """The drift check could not be run (bad inputs, Evidently failed); no scores exist."""


class ColumnDrift(BaseModel):
    """One column's drift score, and the quality of its current values (counted on every row).

    `out_of_range_share` is the share of current values outside the reference's [min, max]
    (numeric columns with values on both sides, else None).
    """

    column: str
    kind: Literal["numeric", "categorical"]
    method: str
    score: float
    threshold: float
    drifted: bool
    missing_share: float = 0.0
    out_of_range_share: float | None = None
    new_categories: list[str] = []


class DriftScores(BaseModel):
    """What the drift check measured: current data against reference, candidate against champion.

    `prediction_drift`, `agreement` and `compared_rows` are None when no champion predictions
    were given (a first release). `report_html`/`snapshot_json` are None when there was nothing
    to compare (no current rows). `sample_rows` is the per-side sample Evidently scored when
    the inputs were larger (None: every row); data quality is always counted on every row.
    """

    columns: list[ColumnDrift]
    drifted_share: float
    reference_rows: int
    current_rows: int
    prediction_drift: ColumnDrift | None = None
    agreement: float | None = None
    compared_rows: int | None = None
    report_html: str | None = None
    snapshot_json: str | None = None
    missing_share: dict[str, float] = {}
    out_of_range_share: dict[str, float] = {}
    new_categories: dict[str, list[str]] = {}
    sample_rows: int | None = None


class DriftCheck(BaseModel):
    name: str
    observed: float
    limit: float
    ok: bool


class DriftVerdict(BaseModel):
    """`notes` are data-quality findings shown to the reviewer; they do not fail the gate."""

    passed: bool
    reasons: list[str]
    checks: list[DriftCheck]
    notes: list[str] = []


def describe_quality(scores: DriftScores) -> list[str]:
    """One line per column with missing values, out-of-range values or new categories."""
    notes = []
    for c in scores.columns:
        found = []
        if c.missing_share:
            found.append(f"{c.missing_share:.1%} missing")
        if c.out_of_range_share:
            found.append(f"{c.out_of_range_share:.1%} outside the reference range")
        if c.new_categories:
            found.append("new categories " + ", ".join(c.new_categories))
        if found:
            notes.append(f"{c.column}: " + "; ".join(found))
    return notes


def _share_check(scores: DriftScores, thresholds: DriftThresholds) -> DriftCheck:
    share, limit = scores.drifted_share, thresholds.max_drifted_share
    # A limit of 0 means "no drifted column at all", not "always fail".
    ok = share < limit or share == 0
    return DriftCheck(name="drifted_share", observed=share, limit=limit, ok=ok)


def _share_reason(scores: DriftScores, check: DriftCheck) -> str:
    drifted = [c for c in scores.columns if c.drifted]
    details = ", ".join(
        f"{c.column} ({c.method} {c.score:.3f} >= {c.threshold:g})" for c in drifted
    )
    return (
        f"{len(drifted)} of {len(scores.columns)} columns drifted (share {check.observed:.3g}), "
        f"at or above the limit of {check.limit:g}: {details}"
    )


def evaluate_drift(scores: DriftScores, thresholds: DriftThresholds) -> DriftVerdict:
    """Judge the scores against the spec's thresholds.

    Every limit is "at or above fails", as the spec words it: the data gate fails when
    `drifted_share >= max_drifted_share` (a limit of 0 fails on any drifted column), the
    prediction gate when the candidate-vs-champion score drift `>= prediction_threshold`.
    Agreement is a minimum: it fails only when `agreement < min_agreement`, so exactly at the
    limit passes. With no current rows, or no records scored by both models, there is nothing
    to judge on, and that fails. Missing values, out-of-range values and new categories are
    evidence for the reviewer (`notes`; they already move the column scores), not gates of
    their own: the spec has no thresholds for them.
    """
    checks = [_share_check(scores, thresholds)]
    reasons = [] if checks[0].ok else [_share_reason(scores, checks[0])]

    drift = scores.prediction_drift
    if drift is not None:
        limit = thresholds.prediction_threshold
        check = DriftCheck(
            name="prediction_drift", observed=drift.score, limit=limit, ok=drift.score < limit
        )
        checks.append(check)
        if not check.ok:
            reasons.append(
                f"the candidate's scores drifted from the champion's: {drift.method} "
                f"{drift.score:.3f}, at or above the limit of {limit:g}"
            )

    if scores.agreement is not None:
        limit = thresholds.min_agreement
        check = DriftCheck(
            name="agreement", observed=scores.agreement, limit=limit, ok=scores.agreement >= limit
        )
        checks.append(check)
        if not check.ok:
            reasons.append(
                f"candidate and champion agree on a share of {scores.agreement:g} of "
                f"{scores.compared_rows} records, under the minimum of {limit:g}"
            )
    if scores.compared_rows == 0:
        reasons.append("no records were scored by both candidate and champion: nothing to compare")

    if scores.current_rows == 0:
        reasons.insert(
            0,
            f"no current rows to compare with the {scores.reference_rows} reference rows: "
            "the drift check has nothing to judge (did the load test log any inferences?)",
        )
    elif scores.reference_rows == 0:
        reasons.insert(0, "the reference data has no rows: the drift check has nothing to compare")
    notes = describe_quality(scores)
    return DriftVerdict(passed=not reasons, reasons=reasons, checks=checks, notes=notes)
