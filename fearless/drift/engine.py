"""Measure drift with Evidently: current data against reference, candidate against champion.

Evidently costs ~11 s and ~300 MB to import, so it is imported inside `_run_report` only, and
the pipeline runs this in its own process (`python -m fearless.drift`). Methods are fixed
(normalised Wasserstein for numbers, Jensen-Shannon for categories) rather than left to
Evidently, whose defaults switch tests at 1000 reference rows. A lean report of one `ValueDrift`
per column avoids `DataDriftPreset`, which computes each column three times.

Large inputs are sampled before Evidently sees them: each side keeps a uniform random sample of
`SAMPLE_ROWS` rows (fixed seed). A score's sampling error shrinks as 1/sqrt(n): at 100k rows it
was measured at <= 0.006 (notes) and 0.0095 (max of 20 columns, bench/drift.py) against the
default 0.1 threshold; `SAMPLE_TOLERANCE` (0.02) is the bound the tests hold it to, so a column
scoring within 0.02 of its threshold may fall either side. The bound assumes no score is carried
by a handful of extreme values (a sample may miss them); those show in the data quality, which
is counted on every row.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from fearless.drift.current import CurrentCounts
from fearless.drift.frames import Kind, as_numbers, kind_of, prepared, sample
from fearless.drift.quality import measure_quality
from fearless.drift.verdict import ColumnDrift, DriftError, DriftScores
from fearless.spec import Column, DriftThresholds

NUMERIC_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"
NO_VALUES_METHOD = "no-values"
PREDICTION_SCORE = "prediction_score"
PREDICTION_COLUMNS = ("prediction", "score")
SAMPLE_ROWS = 100_000
SAMPLE_TOLERANCE = 0.02
REPORT_HTML = "report.html"
SNAPSHOT_JSON = "snapshot.json"


class _Comparison(NamedTuple):
    column: str
    kind: Kind
    method: str
    threshold: float


def _drift(comparison: _Comparison, score: float) -> ColumnDrift:
    drifted = score >= comparison.threshold
    return ColumnDrift(**comparison._asdict(), score=score, drifted=drifted)


def _no_values(comparison: _Comparison, reference: pd.Series, current: pd.Series) -> ColumnDrift:
    """Evidently raises on a column with no values: empty on one side only is full drift."""
    drifted = reference.notna().any() != current.notna().any()
    return ColumnDrift(
        **comparison._replace(method=NO_VALUES_METHOD)._asdict(),
        score=1.0 if drifted else 0.0,
        drifted=drifted,
    )


def _prediction_scores(
    candidate: pd.DataFrame, champion: pd.DataFrame
) -> tuple[pd.Series, pd.Series, float | None]:
    """Both models' scores and their agreement: the share of records given the same prediction."""
    for side, frame in (("candidate", candidate), ("champion", champion)):
        absent = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
        if absent:
            raise DriftError(f"{side} predictions lack columns: {', '.join(absent)}")
    if len(candidate) != len(champion):
        raise DriftError(
            f"candidate and champion scored different records: {len(candidate)} against "
            f"{len(champion)} rows (expected the same records in the same order)"
        )
    candidate, champion = candidate.reset_index(drop=True), champion.reset_index(drop=True)
    same = candidate["prediction"].eq(champion["prediction"])
    agreement = float(same.mean()) if len(same) else None
    return (
        as_numbers(candidate["score"], "candidate").rename(PREDICTION_SCORE),
        as_numbers(champion["score"], "champion").rename(PREDICTION_SCORE),
        agreement,
    )


def _scores_from_snapshot(snapshot: dict) -> dict[str, float]:
    """{column: score} of each ValueDrift in `snap.json()`; 0.7.23 writes `{"metrics": [{"config":
    {"type": "evidently:metric_v2:ValueDrift", "column": c, ...}, "value": score}, ...]}`."""
    scores = {}
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        value = metric.get("value")
        if isinstance(value, dict):
            value = value.get("value")
        is_drift = str(config.get("type", "")).endswith(":ValueDrift")
        if is_drift and isinstance(value, (int, float)) and not math.isnan(value):
            scores[config["column"]] = float(value)
    return scores


def _run_report(
    current: pd.DataFrame, reference: pd.DataFrame, comparisons: list[_Comparison], out_dir: Path
) -> dict[str, float]:
    """Run Evidently, keep its HTML and JSON snapshot in out_dir, and return the scores."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(
        numerical_columns=[c.column for c in comparisons if c.kind == "numeric"],
        categorical_columns=[c.column for c in comparisons if c.kind == "categorical"],
        text_columns=[], datetime_columns=[], unknown_columns=[], list_columns=[],
    )  # fmt: skip
    metrics = [
        ValueDrift(column=c.column, method=c.method, threshold=c.threshold) for c in comparisons
    ]
    columns = [c.column for c in comparisons]
    snapshot = Report(metrics, include_tests=True).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    snapshot.save_html(str(out_dir / REPORT_HTML))  # a Path is silently ignored: str only
    text = snapshot.json()
    (out_dir / SNAPSHOT_JSON).write_text(text)
    scores = _scores_from_snapshot(json.loads(text))
    unscored = [c.column for c in comparisons if c.column not in scores]
    if unscored:
        raise DriftError(f"Evidently's snapshot has no drift score for: {', '.join(unscored)}")
    return scores


def _plan(schema: list[Column], thresholds: DriftThresholds) -> list[_Comparison]:
    """One comparison per schema column; `per_column` overrides `column_threshold`."""
    unknown = sorted(set(thresholds.per_column) - {c.name for c in schema})
    if unknown:
        raise DriftError(f"drift.per_column names columns not in the schema: {', '.join(unknown)}")
    if PREDICTION_SCORE in {c.name for c in schema}:
        raise DriftError(f"schema column {PREDICTION_SCORE!r} clashes with the prediction score")
    return [
        _Comparison(
            c.name,
            kind_of(c),
            NUMERIC_METHOD if kind_of(c) == "numeric" else CATEGORICAL_METHOD,
            thresholds.per_column.get(c.name, thresholds.column_threshold),
        )
        for c in schema
    ]


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: list[Column],
    thresholds: DriftThresholds,
    out_dir: Path,
    *,
    candidate_predictions: pd.DataFrame | None = None,
    champion_predictions: pd.DataFrame | None = None,
    sample_rows: int | None = SAMPLE_ROWS,
    current_counts: CurrentCounts | None = None,
) -> DriftScores:
    """Score each schema column's drift, and the candidate's scores against the champion's.

    A column counts as drifted at or above its threshold. Prediction frames hold `prediction`
    and `score` for the same records in the same order; give both or neither. Writes
    `report.html` and `snapshot.json` into out_dir (not when there is nothing to compare).
    Evidently scores a sample of at most `sample_rows` rows per side (None: every row).
    `current_counts`: when `current` is already a sample of the served rows, their number and
    data quality, counted on every one (see `fearless.drift.current`).
    Raises DriftError on unusable inputs.
    """
    if (candidate_predictions is None) != (champion_predictions is None):
        raise DriftError("give both candidate and champion predictions, or neither")
    planned = _plan(schema, thresholds)
    ref, cur = prepared(reference, schema, "reference"), prepared(current, schema, "current")
    planned = planned if len(ref) and len(cur) else []
    numeric = [c.name for c in schema if kind_of(c) == "numeric"]
    declared = {c.name: c.values or [] for c in schema if kind_of(c) == "categorical"}
    quality = measure_quality(ref, cur, numeric, declared)
    current_rows = len(current)
    if current_counts is not None:
        quality, current_rows = current_counts.quality, current_counts.rows

    agreement = compared_rows = None
    if candidate_predictions is not None and champion_predictions is not None:
        cand_scores, champ_scores, agreement = _prediction_scores(
            candidate_predictions, champion_predictions
        )
        compared_rows = len(cand_scores)
        threshold = thresholds.prediction_threshold
        planned.append(_Comparison(PREDICTION_SCORE, "numeric", NUMERIC_METHOD, threshold))
        # One report for both: the score column rides along, padded with NaN; Evidently drops
        # missing values per column, so the two samples stay independent of the data's.
        cur = pd.concat([cur, cand_scores], axis=1)
        ref = pd.concat([ref, champ_scores], axis=1)

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    scorable = [p for p in planned if ref[p.column].notna().any() and cur[p.column].notna().any()]
    sampled = sample_rows is not None and max(len(ref), len(cur)) > sample_rows
    sample_cur, sample_ref = sample(cur, sample_rows), sample(ref, sample_rows)
    if current_rows > len(cur):  # sampled already, from every served row
        sampled, sample_rows = True, min(len(cur), sample_rows or len(cur))
    scores = _run_report(sample_cur, sample_ref, scorable, out_dir) if scorable else {}
    drifts = {
        p.column: _drift(p, scores[p.column])
        if p.column in scores
        else _no_values(p, ref[p.column], cur[p.column])
        for p in planned
    }
    prediction_drift = drifts.pop(PREDICTION_SCORE, None)
    columns = [c.model_copy(update=quality.of(c.column)) for c in drifts.values()]
    return DriftScores(
        columns=columns,
        drifted_share=sum(c.drifted for c in columns) / len(columns) if columns else 0.0,
        reference_rows=len(reference),
        current_rows=current_rows,
        prediction_drift=prediction_drift,
        agreement=agreement,
        compared_rows=compared_rows,
        report_html=str(out_dir / REPORT_HTML) if scores else None,
        snapshot_json=str(out_dir / SNAPSHOT_JSON) if scores else None,
        missing_share=quality.missing_share,
        out_of_range_share=quality.out_of_range_share,
        new_categories=quality.new_categories,
        sample_rows=sample_rows if sampled else None,
    )
