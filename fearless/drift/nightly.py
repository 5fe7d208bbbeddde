"""Drift of what production served against each model's reference data: the nightly check.

For every model with a `production` alias, the records its API logged since `since` are
compared with the reference data of the bundle the alias points at. A model with no logged
records is reported as `no-logs`, never as a pass; one whose check could not run as `error`.
The log is streamed (`fearless.drift.current`): data quality is counted on every row and the
drift scores use a uniform sample, so a day at production volume fits in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from fearless.drift.verdict import DriftError, DriftScores, DriftVerdict, evaluate_drift
from fearless.ids import checked_id
from fearless.registry import Registry

PRODUCTION = "production"
DRIFT_EVENT = "fearless.drift.detected"

Status = Literal["passed", "drifted", "no-logs", "error"]
DriftRunner = Callable[..., DriftScores]
# A folder of logs, or (model, since) -> the folder after fetching them (e.g. from S3).
LogSource = Path | Callable[[str, datetime], Path]


class ModelDrift(BaseModel):
    """One model's nightly result; `scores`/`verdict` exist only when the check ran."""

    model: str
    digest: str
    status: Status
    rows: int
    since: datetime
    reasons: list[str]
    scores: DriftScores | None = None
    verdict: DriftVerdict | None = None

    def row(self) -> dict:
        """A line of the nightly table artifact."""
        drifted = [c.column for c in self.scores.columns if c.drifted] if self.scores else []
        return {
            "model": self.model,
            "digest": self.digest.removeprefix("sha256:")[:12],
            "status": self.status,
            "rows": self.rows,
            "drifted_share": self.scores.drifted_share if self.scores else None,
            "drifted_columns": ", ".join(drifted),
            "reasons": "; ".join(self.reasons),
            "report": self.scores.report_html if self.scores else None,
        }


def drift_event(result: ModelDrift) -> dict:
    """`emit_event` arguments announcing a drifted model: the model as resource, scores as payload."""
    return {
        "event": DRIFT_EVENT,
        "resource": {
            "prefect.resource.id": f"fearless.model.{result.model}",
            "prefect.resource.name": result.model,
        },
        "payload": {
            "digest": result.digest,
            "since": result.since.isoformat(),
            "rows": result.rows,
            "reasons": result.reasons,
            "scores": result.scores.model_dump(mode="json") if result.scores else None,
        },
    }


def _run_dir(out_root: Path, model: str, now: datetime) -> Path:
    return out_root / checked_id(model, "model name") / now.strftime("%Y%m%dT%H%M%SZ")


def check_model_drift(
    registry: Registry,
    inference_logs: LogSource,
    model: str,
    since: datetime,
    out_dir: Path,
    run_drift: DriftRunner,
) -> ModelDrift:
    """Compare `model`'s production traffic since `since` with its production bundle's reference."""
    from fearless.bundles.bundle import BundleError, read_reference
    from fearless.drift.current import sample_current
    from fearless.drift.engine import SAMPLE_ROWS
    from fearless.drift.frames import prepared

    digest = registry.get_alias(model, PRODUCTION)
    if digest is None:
        raise DriftError(f"{model} has no {PRODUCTION} alias: nothing serves it")
    result = {"model": model, "digest": digest, "since": since}
    try:
        bundle = registry.get_bundle(model, digest)
        if callable(inference_logs):
            inference_logs = inference_logs(model, since)
        schema = bundle.spec.input_schema
        reference = prepared(
            read_reference(bundle.spec, bundle.reference_path), schema, "reference"
        )
        served = sample_current(inference_logs, model, since, schema, reference, SAMPLE_ROWS)
    except (OSError, ValueError, BundleError, DriftError) as exc:
        return ModelDrift(**result, status="error", rows=0, reasons=[f"cannot read inputs: {exc}"])
    rows = served.counts.rows
    if rows == 0:
        reason = f"no inference logs for {model} since {since.isoformat()} under {inference_logs}"
        return ModelDrift(**result, status="no-logs", rows=0, reasons=[reason])
    out_dir.mkdir(parents=True, exist_ok=True)
    current_path = served.write(out_dir / "current.parquet")
    try:
        scores = run_drift(bundle.reference_path, current_path, bundle.spec_path, out_dir)
    except DriftError as exc:
        return ModelDrift(**result, status="error", rows=rows, reasons=[str(exc)])
    verdict = evaluate_drift(scores, bundle.spec.drift)
    status = "passed" if verdict.passed else "drifted"
    return ModelDrift(
        **result,
        status=status,
        rows=rows,
        reasons=verdict.reasons,
        scores=scores,
        verdict=verdict,
    )


def check_production_drift(
    registry: Registry,
    inference_logs: LogSource,
    out_root: Path,
    since: datetime,
    run_drift: DriftRunner,
    models: list[str] | None = None,
) -> list[ModelDrift]:
    """Check every model with a production alias (or just `models`); one result per model.

    `run_drift(reference_path, current_path, spec_path, out_dir)` computes the scores, e.g.
    `fearless.drift.process.run_drift_subprocess`. Reports go under `out_root/<model>/<time>/`.
    `inference_logs` may fetch each model's logs first (`Services.production_logs`); a fetch
    that fails is that model's `error`.
    """
    now = datetime.now(UTC)
    names = models if models is not None else registry.models()
    return [
        check_model_drift(
            registry, inference_logs, name, since, _run_dir(out_root, name, now), run_drift
        )
        for name in names
        if models is not None or registry.get_alias(name, PRODUCTION) is not None
    ]
