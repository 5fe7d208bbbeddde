"""The two gates a candidate must pass before a person is asked: load and drift.

Each gate gathers its inputs, runs the measurement in its own process (Locust, Evidently),
and hands the figures to a plain verdict function.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Self

import httpx
import yaml
from pydantic import BaseModel

from fearless.drift.verdict import DriftScores, DriftVerdict, evaluate_drift
from fearless.environments import Environment, EnvironmentBackend, EnvironmentDown
from fearless.loadtest.compare import RegressionVerdict, compare_to_champion
from fearless.loadtest.fleet import LoadGenerator, LocalLocust
from fearless.loadtest.runner import LoadTestError, LoadTestResult
from fearless.loadtest.verdict import LoadTestVerdict, evaluate_load_test
from fearless.platform.slots import SlotWait
from fearless.release.candidate import Candidate, TestEnvironments

TRAFFIC_RECORDS = 2000
SCORING_BATCH = 500
WATCH_EVERY_S = 1.0


class LoadTestOutcome(BaseModel):
    """The load-test gate. `result` is None only when the candidate's model API was down
    before Locust measured anything; `down` lists the model APIs that stopped meanwhile."""

    result: LoadTestResult | None
    verdict: LoadTestVerdict | None
    champion: LoadTestResult | None = None
    regression: RegressionVerdict | None = None
    down: list[EnvironmentDown] = []
    notes: list[str] = []
    slot: SlotWait | None = None

    @property
    def candidate_down(self) -> EnvironmentDown | None:
        return next((d for d in self.down if d.role == "candidate"), None)

    @property
    def inconclusive(self) -> bool:
        if self.candidate_down is not None or self.verdict is None:
            return False
        return self.verdict.inconclusive or bool(self.regression and self.regression.inconclusive)

    @property
    def passed(self) -> bool:
        if self.candidate_down is not None or self.verdict is None:
            return False
        return self.verdict.passed and (self.regression is None or self.regression.passed)

    @property
    def reasons(self) -> list[str]:
        crashed = [self.candidate_down.describe()] if self.candidate_down else []
        judged = self.verdict.reasons if self.verdict else []
        return crashed + judged + (self.regression.reasons if self.regression else [])


class Watch:
    """Polls test environments from another thread while a step runs: the first time each
    model API is seen down, how it ended, and how far into the step that was."""

    def __init__(self, backend: EnvironmentBackend, envs: list[Environment], step: str) -> None:
        self.backend, self.envs, self.step = backend, envs, step
        self.down: dict[str, EnvironmentDown] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._started = time.monotonic()

    def look(self) -> None:
        for env in self.envs:
            if env.role in self.down:
                continue
            try:
                down = self.backend.check(env)
            except Exception as exc:  # noqa: BLE001 - a failed look (an API hiccup) is no verdict
                logging.getLogger(__name__).warning("could not check %s: %s", env.role, exc)
                continue
            if down is not None:
                seconds = time.monotonic() - self._started
                self.down[env.role] = down.model_copy(
                    update={"during": f"{seconds:.0f} s into the {self.step}"}
                )

    def _poll(self) -> None:
        while not self._stop.wait(WATCH_EVERY_S):
            self.look()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.look()  # one that died in the last moments


class DriftOutcome(BaseModel):
    """The drift gate; `down` lists the model APIs that stopped meanwhile."""

    scores: DriftScores
    verdict: DriftVerdict
    down: list[EnvironmentDown] = []
    notes: list[str] = []

    @property
    def candidate_down(self) -> EnvironmentDown | None:
        return next((d for d in self.down if d.role == "candidate"), None)

    @property
    def passed(self) -> bool:
        return self.verdict.passed and self.candidate_down is None

    @property
    def reasons(self) -> list[str]:
        crashed = [self.candidate_down.describe()] if self.candidate_down else []
        return crashed + self.verdict.reasons


def run_load_test_gate(
    candidate: Candidate,
    envs: TestEnvironments,
    out_dir: Path,
    backend: EnvironmentBackend,
    generator: LoadGenerator | None = None,
) -> LoadTestOutcome:
    """Drive the candidate's API with traffic drawn from its reference data; judge the SLOs.

    `generator` is the release's (`Services.load_generator`): Locust here, sized to the rate,
    or a fleet of ECS tasks; by default one Locust process here.

    A candidate whose model API stops meanwhile fails the gate, named; a champion that stops
    leaves the candidate judged on its own, without the comparison.
    """
    watched = [env for env in (envs.candidate, envs.champion) if env is not None]
    failure: LoadTestError | None = None
    with Watch(backend, watched, "load test") as watch:
        try:
            outcome = _measure_load(candidate, envs, out_dir, watch, generator or LocalLocust())
        except LoadTestError as exc:  # Locust could not measure: was the target gone?
            failure = exc
    if failure is not None:
        if "candidate" not in watch.down:
            raise failure
        outcome = LoadTestOutcome(result=None, verdict=None)
    outcome.down = list(watch.down.values())
    if "champion" in watch.down and envs.champion is not None:
        outcome.regression = None
        outcome.notes.append(
            f"comparison with the champion skipped: {watch.down['champion'].describe()}"
        )
    return outcome


def _measure_load(
    candidate: Candidate,
    envs: TestEnvironments,
    out_dir: Path,
    watch: Watch,
    generator: LoadGenerator,
) -> LoadTestOutcome:
    from fearless.bundles.bundle import read_reference
    from fearless.loadtest.paired import run_paired_load_test
    from fearless.loadtest.traffic import synthesize_traffic, write_traffic

    bundle = candidate.bundle()
    reference = read_reference(bundle.spec, bundle.reference_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    traffic_path = out_dir / "traffic.jsonl"
    write_traffic(
        synthesize_traffic(reference, candidate.spec, TRAFFIC_RECORDS, seed=0), traffic_path
    )
    slos, load = candidate.spec.slos, candidate.spec.load
    alone = envs.champion is None or slos.max_regression is None
    if not alone:
        try:
            paired = run_paired_load_test(
                envs.candidate.url, envs.champion.url, load, traffic_path, out_dir,
                generator=generator,
            )  # fmt: skip
        except LoadTestError:
            watch.look()
            if "champion" not in watch.down:
                raise
            alone = True  # the champion is gone: judge the candidate on its own
    if alone:
        reports = (
            out_dir
            if envs.champion is None or slos.max_regression is None
            else out_dir / "candidate"
        )
        result = generator.run(envs.candidate.url, load, traffic_path, reports)
        return LoadTestOutcome(result=result, verdict=evaluate_load_test(result, slos))
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
    candidate: Candidate,
    envs: TestEnvironments,
    served_log_dir: Path,
    out_dir: Path,
    backend: EnvironmentBackend,
    launcher=None,
) -> DriftOutcome:
    """Compare what the candidate served with its reference data, and with the champion.

    A candidate whose model API stops meanwhile fails the gate, named; a champion that is
    down leaves the drift of served traffic judged without the comparison.
    """
    watched = [env for env in (envs.candidate, envs.champion) if env is not None]
    with Watch(backend, watched, "drift check") as watch:
        outcome = _measure_drift(candidate, envs, served_log_dir, out_dir, launcher, watch)
    outcome.down = list(watch.down.values())
    if "champion" in watch.down:
        outcome.notes.append(
            f"comparison with the champion skipped: {watch.down['champion'].describe()}"
        )
    return outcome


def _champion_predictions(envs: TestEnvironments, records: list[dict], watch: Watch):
    """The champion's predictions for `records`, or None when its model API is down."""
    watch.look()
    if envs.champion is None or "champion" in watch.down:
        return None
    try:
        return score_records(envs.champion.url, records)
    except httpx.HTTPError:
        watch.look()
        if "champion" in watch.down:
            return None
        raise


def _measure_drift(candidate, envs, served_log_dir, out_dir, launcher, watch) -> DriftOutcome:
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
    inputs = served[spec.column_names].astype(object).where(served[spec.column_names].notna(), None)
    predictions = (
        _champion_predictions(envs, inputs.to_dict("records"), watch) if len(served) else None
    )
    if predictions is not None:
        champion = pd.DataFrame(predictions)
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
