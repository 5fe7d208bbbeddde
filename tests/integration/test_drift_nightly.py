"""The nightly check end to end on one machine: real bundles in a real registry, an inference
log written (and compacted into Parquet) by the model API's own writer, and the drift check in
its own process."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from fearless.bundles.bundle import build_bundle, read_reference
from fearless.drift.nightly import check_production_drift
from fearless.drift.process import run_drift_subprocess
from fearless.registry.local import LocalRegistry
from fearless.serving.inference_log import InferenceLog


def put_in_production(project: Path, registry: LocalRegistry, name: str, into: Path):
    """A copy of the trained example named `name`, bundled and aliased as production."""
    copy = Path(shutil.copytree(project, into / name))
    spec = yaml.safe_load((copy / "fearless.yaml").read_text())
    (copy / "fearless.yaml").write_text(yaml.safe_dump({**spec, "name": name}))
    bundle = build_bundle(copy, registry)
    registry.set_alias(name, "production", bundle.digest, expected=None, actor="t", reason="t")
    return bundle


def serve_records(logs: Path, bundle, rows: int, drifted: bool = False) -> None:
    """Log `rows` reference records as the production API would have; drifted: with income
    and loan amount tripled and every applicant 20 years older (3 of 7 columns moved)."""
    records = read_reference(bundle.spec, bundle.reference_path).sample(rows, random_state=1)
    if drifted:
        records[["income", "loan_amount"]] *= 3
        records["age"] += 20
    inputs = records.astype(object).where(records.notna(), None).to_dict("records")
    outputs = [{"prediction": 0, "score": 0.3} for _ in inputs]
    # As the model API: its spec's types, and the segment compacted into Parquet at shutdown
    log = InferenceLog(logs, bundle.name, bundle.digest, schema=bundle.spec.input_schema)
    half = rows // 2
    log.append("r1", inputs[:half], outputs[:half], latency_ms=2.0)
    log.append("r2", inputs[half:], outputs[half:], latency_ms=2.0)
    log.close()
    assert [p.suffix for p in (logs / bundle.name).glob("*/*.*")] == [".parquet"]


def test_nightly_check_on_real_logs(credit_project, tmp_path):
    registry, logs = LocalRegistry(tmp_path / "registry"), tmp_path / "inference"
    quiet = put_in_production(credit_project, registry, "quiet", tmp_path / "projects")
    moved = put_in_production(credit_project, registry, "moved", tmp_path / "projects")
    put_in_production(credit_project, registry, "silent", tmp_path / "projects")
    serve_records(logs, quiet, 800)
    serve_records(logs, moved, 800, drifted=True)
    since = datetime.now(UTC) - timedelta(days=1)

    results = {
        r.model: r
        for r in check_production_drift(
            registry, logs, tmp_path / "drift", since, run_drift_subprocess
        )
    }

    assert results["quiet"].status == "passed", results["quiet"].reasons
    assert results["quiet"].rows == 800
    assert results["moved"].status == "drifted"
    assert "3 of 7 columns drifted" in results["moved"].reasons[0]
    assert "income (wasserstein" in results["moved"].reasons[0]
    income = next(c for c in results["moved"].scores.columns if c.column == "income")
    assert income.out_of_range_share > 0.1  # tripled incomes leave the reference range
    assert Path(results["moved"].scores.report_html).is_file()
    assert results["silent"].status == "no-logs" and results["silent"].scores is None
    assert (
        pd.read_parquet(Path(results["quiet"].scores.report_html).parent / "current.parquet")[
            "income"
        ]
        .notna()
        .all()
    )
