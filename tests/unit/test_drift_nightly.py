"""The nightly drift check over real inference log files, with the drift engine faked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from fearless.commands.drift import parse_since
from fearless.drift.nightly import DRIFT_EVENT, check_production_drift, drift_event
from fearless.drift.verdict import ColumnDrift, DriftError, DriftScores
from fearless.serving.inference_log import InferenceLog
from fearless.spec import ModelSpec

SPEC = ModelSpec.model_validate(
    {
        "name": "credit",
        "model": "model.joblib",
        "reference_data": "reference.parquet",
        "schema": {"income": "float"},
    }
)


class FakeRegistry:
    """Models, their production digests, and bundles that carry a spec and reference data."""

    def __init__(self, production: dict[str, str | None], root: Path) -> None:
        self.production, self.root = production, root

    def models(self) -> list[str]:
        return sorted(self.production)

    def get_alias(self, model: str, alias: str) -> str | None:
        return self.production[model] if alias == "production" else None

    def get_bundle(self, model: str, digest: str):
        spec = SPEC.model_copy(update={"name": model})
        folder = self.root / "bundles" / model
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"income": [1.0, 60_000.0]}).to_parquet(folder / "reference.parquet")
        return SimpleNamespace(
            spec=spec, reference_path=folder / "reference.parquet", spec_path=folder / "f.yaml"
        )


class FakeDrift:
    """Records what it was asked to compare; scores income drift as given."""

    def __init__(self, score: float = 0.0, error: str | None = None) -> None:
        self.score, self.error, self.calls = score, error, []

    def __call__(self, reference_path, current_path, spec_path, out_dir) -> DriftScores:
        self.calls.append(pd.read_parquet(current_path))
        if self.error:
            raise DriftError(self.error)
        drifted = self.score >= 0.1
        column = ColumnDrift(
            column="income",
            kind="numeric",
            method="wasserstein",
            score=self.score,
            threshold=0.1,
            drifted=drifted,
        )
        return DriftScores(
            columns=[column], drifted_share=float(drifted), reference_rows=10, current_rows=2
        )


def log_records(root: Path, model: str, incomes: list[float]) -> None:
    log = InferenceLog(root, model, "sha256:abc")
    outputs = [{"prediction": 0, "score": 0.2} for _ in incomes]
    log.append("req-1", [{"income": i} for i in incomes], outputs, latency_ms=1.0)


SINCE = datetime.now(UTC) - timedelta(days=1)


def test_each_production_model_gets_its_own_status(tmp_path):
    logs = tmp_path / "inference"
    log_records(logs, "quiet", [50_000.0, 51_000.0])
    log_records(logs, "moved", [90_000.0])
    registry = FakeRegistry(
        {"quiet": "sha256:q", "moved": "sha256:m", "silent": "sha256:s"}, tmp_path
    )
    registry.production["retired"] = None

    quiet = check_production_drift(
        registry, logs, tmp_path / "out", SINCE, FakeDrift(0.02), models=["quiet"]
    )
    moved = check_production_drift(
        registry, logs, tmp_path / "out", SINCE, FakeDrift(0.5), models=["moved"]
    )
    silent = FakeDrift()
    every = check_production_drift(registry, logs, tmp_path / "out", SINCE, silent)

    assert (quiet[0].status, quiet[0].rows, quiet[0].reasons) == ("passed", 2, [])
    assert moved[0].status == "drifted" and "income" in moved[0].reasons[0]
    assert [r.model for r in every] == ["moved", "quiet", "silent"]  # no alias: not checked
    no_logs = every[2]
    assert (no_logs.status, no_logs.rows, no_logs.scores) == ("no-logs", 0, None)
    assert "no inference logs for silent" in no_logs.reasons[0]
    assert no_logs.row()["status"] == "no-logs"


def test_only_the_schema_columns_of_records_since_the_cutoff_are_compared(tmp_path):
    logs = tmp_path / "inference"
    log_records(logs, "credit", [1.0, 2.0])
    drift = FakeDrift()

    check_production_drift(
        FakeRegistry({"credit": "sha256:c"}, tmp_path),
        logs,
        tmp_path,
        SINCE,
        drift,
        models=["credit"],
    )
    later = check_production_drift(
        FakeRegistry({"credit": "sha256:c"}, tmp_path),
        logs,
        tmp_path,
        datetime.now(UTC) + timedelta(minutes=1),
        drift,
        models=["credit"],
    )

    assert list(drift.calls[0].columns) == ["income"]
    assert drift.calls[0]["income"].tolist() == [1.0, 2.0]
    assert later[0].status == "no-logs" and len(drift.calls) == 1


def test_a_failed_check_is_an_error_not_a_pass(tmp_path):
    logs = tmp_path / "inference"
    log_records(logs, "credit", [1.0])

    (result,) = check_production_drift(
        FakeRegistry({"credit": "sha256:c"}, tmp_path),
        logs,
        tmp_path,
        SINCE,
        FakeDrift(error="boom"),
    )

    assert (result.status, result.reasons) == ("error", ["boom"])


def test_asking_for_a_model_without_production_is_an_error(tmp_path):
    with pytest.raises(DriftError, match="no production alias"):
        check_production_drift(
            FakeRegistry({"credit": None}, tmp_path),
            tmp_path,
            tmp_path,
            SINCE,
            FakeDrift(),
            ["credit"],
        )


def test_the_event_names_the_model_and_carries_the_scores(tmp_path):
    logs = tmp_path / "inference"
    log_records(logs, "credit", [90_000.0])
    (result,) = check_production_drift(
        FakeRegistry({"credit": "sha256:c"}, tmp_path), logs, tmp_path, SINCE, FakeDrift(0.5)
    )

    event = drift_event(result)

    assert event["event"] == DRIFT_EVENT == "fearless.drift.detected"
    assert event["resource"] == {
        "prefect.resource.id": "fearless.model.credit",
        "prefect.resource.name": "credit",
    }
    assert event["payload"]["scores"]["columns"][0]["score"] == 0.5
    assert event["payload"]["rows"] == 1 and event["payload"]["digest"] == "sha256:c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("2d", datetime(2025, 12, 31, 12, tzinfo=UTC)),
        ("2025-12-30", datetime(2025, 12, 30, tzinfo=UTC)),
        ("2025-12-30T08:00+01:00", datetime(2025, 12, 30, 7, tzinfo=UTC)),
    ],
)
def test_since_takes_a_duration_or_a_date(text, expected):
    assert parse_since(text, now=datetime(2026, 1, 2, 12, tzinfo=UTC)) == expected


def test_since_refuses_anything_else():
    import typer

    with pytest.raises(typer.BadParameter, match="expected e.g. 24h"):
        parse_since("yesterday")
