"""The two gates a candidate must pass before a person is asked: load and drift.

Each gate gathers its inputs, runs the measurement in its own process (Locust, Evidently),
and hands the figures to a plain verdict function.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml
from pydantic import BaseModel

from fearless.drift.verdict import DriftScores, DriftVerdict, evaluate_drift
from fearless.loadtest.compare import RegressionVerdict, compare_to_champion
from fearless.loadtest.runner import LoadTestResult
from fearless.loadtest.verdict import LoadTestVerdict, evaluate_load_test
from fearless.release.candidate import Candidate, TestEnvironments

TRAFFIC_RECORDS = 2000
SCORING_BATCH = 500


class LoadTestOutcome(BaseModel):
    result: LoadTestResult
    verdict: LoadTestVerdict
    champion: LoadTestResult | None = None
    regression: RegressionVerdict | None = None

    @property
    def inconclusive(self) -> bool:
        return self.verdict.inconclusive or bool(self.regression and self.regression.inconclusive)

    @property
    def passed(self) -> bool:
        return self.verdict.passed and (self.regression is None or self.regression.passed)

    @property
    def reasons(self) -> list[str]:
        return self.verdict.reasons + (self.regression.reasons if self.regression else [])


class DriftOutcome(BaseModel):
    scores: DriftScores
    verdict: DriftVerdict


def run_load_test_gate(
    candidate: Candidate, envs: TestEnvironments, out_dir: Path
) -> LoadTestOutcome:
    """Drive the candidate's API with traffic drawn from its reference data; judge the SLOs."""
    from fearless.bundles.bundle import read_reference
    from fearless.loadtest.paired import run_paired_load_test
    from fearless.loadtest.runner import run_load_test
    from fearless.loadtest.traffic import synthesize_traffic, write_traffic

    bundle = candidate.bundle()
    reference = read_reference(bundle.spec, bundle.reference_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    traffic_path = out_dir / "traffic.jsonl"
    write_traffic(
        synthesize_traffic(reference, candidate.spec, TRAFFIC_RECORDS, seed=0), traffic_path
    )
    slos = candidate.spec.slos
    if envs.champion is None or slos.max_regression is None:
        result = run_load_test(envs.candidate.url, candidate.spec.load, traffic_path, out_dir)
        return LoadTestOutcome(result=result, verdict=evaluate_load_test(result, slos))
    paired = run_paired_load_test(
        envs.candidate.url, envs.champion.url, candidate.spec.load, traffic_path, out_dir
    )
    return LoadTestOutcome(
        result=paired.candidate,
        verdict=evaluate_load_test(paired.candidate, slos),
        champion=paired.champion,
        regression=compare_to_champion(paired.candidate, paired.champion, slos.max_regression),
    )


def score_records(url: str, records: list[dict]) -> list[dict]:
    """Predictions of the model API at `url` for `records`, in order."""
    predictions: list[dict] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for start in range(0, len(records), SCORING_BATCH):
            response = client.post(
                "/predict", json={"records": records[start : start + SCORING_BATCH]}
            )
            response.raise_for_status()
            predictions += response.json()["predictions"]
    return predictions


def run_drift_gate(
    candidate: Candidate, envs: TestEnvironments, served_log_dir: Path, out_dir: Path, launcher=None
) -> DriftOutcome:
    """Compare what the candidate served with its reference data, and with the champion."""
    import pandas as pd

    from fearless.drift.process import run_drift_subprocess
    from fearless.serving.inference_log import read_inference_log

    spec = candidate.spec
    out_dir.mkdir(parents=True, exist_ok=True)
    served = read_inference_log(served_log_dir, spec.name)
    served = served.reindex(columns=[*spec.column_names, "prediction", "score"])
    current_path = out_dir / "current.parquet"
    served[spec.column_names].to_parquet(current_path)
    spec_path = out_dir / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False))
    kwargs = {}
    if envs.champion is not None and len(served):
        inputs = (
            served[spec.column_names].astype(object).where(served[spec.column_names].notna(), None)
        )
        champion = pd.DataFrame(score_records(envs.champion.url, inputs.to_dict("records")))
        kwargs["candidate_predictions_path"] = out_dir / "candidate_predictions.parquet"
        kwargs["champion_predictions_path"] = out_dir / "champion_predictions.parquet"
        served[["prediction", "score"]].reset_index(drop=True).to_parquet(
            kwargs["candidate_predictions_path"]
        )
        champion[["prediction", "score"]].to_parquet(kwargs["champion_predictions_path"])
    scores = run_drift_subprocess(
        candidate.bundle().reference_path,
        current_path,
        spec_path,
        out_dir,
        launcher=launcher,
        **kwargs,
    )
    return DriftOutcome(scores=scores, verdict=evaluate_drift(scores, spec.drift))
