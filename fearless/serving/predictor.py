"""The loaded model, wrapped so the API scores a batch with one pass through its features."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from fearless.serving import runtimes
from fearless.serving.fastpath import Scored, Unsupported, check_fast_path, compile_model
from fearless.spec import Column

logger = logging.getLogger(__name__)

FAST, PANDAS = "numpy", "pandas"  # and the name of a runtime (`runtimes.RUNTIME`)


class Predictor:
    """Scores validated records; `score` is the positive class's probability (binary), the
    winning class's probability (multiclass), or None (regressors, classifiers without
    probabilities).

    Scoring goes through the model itself (a DataFrame in, `predict`/`predict_proba` out)
    until `use_fast_path` has shown the compiled model answers the same; `path` says which:
    "pandas", "numpy" (compiled, the final estimator's own predict) or "onnxruntime" (compiled,
    the final estimator on ONNX Runtime).
    """

    def __init__(self, model: Any, schema: list[Column]) -> None:
        from sklearn.pipeline import Pipeline

        self.model = model
        self.schema = list(schema)
        self.columns = [c.name for c in self.schema]
        # Transform once, then ask the final step for labels and probabilities: half the cost
        # of calling predict and predict_proba on the whole pipeline, same answers.
        if isinstance(model, Pipeline) and len(model.steps) > 1:
            self._features, self._estimator = model[:-1], model[-1]
        else:
            self._features, self._estimator = None, model
        self._has_proba = hasattr(self._estimator, "predict_proba")
        self._fast = None
        self.path, self.path_detail = PANDAS, "not checked against a reference sample"

    @classmethod
    def load(
        cls,
        path: Path,
        schema: list[Column],
        *,
        trust_pickle: bool = False,
        trusted_types: list[str] | tuple[str, ...] = (),
    ) -> Predictor:
        """Load the model file safely (see `fearless.bundles.model_files`); `trusted_types`
        are the spec's."""
        from fearless.bundles.model_files import load_model_file

        model = load_model_file(path, trust_pickle=trust_pickle, trusted_types=trusted_types)
        return cls(model, schema)

    def use_fast_path(self, sample: list[dict[str, Any]]) -> str:
        """Compile the model and keep the result if it scores `sample` as the model does (see
        `fearless.serving.fastpath`): first with its final estimator on an inference runtime,
        then with the estimator's own predict; the path in use. `path_detail` names the
        compiled steps, and why the runtime or the compiled model is not used."""
        fast, problem = self._compiled(sample, runtime=True)
        runtime_problem = None
        if problem is not None and runtimes.takes(self._estimator):
            runtime_problem = problem.removeprefix("not compiled: ")
            fast, problem = self._compiled(sample, runtime=False)
        if problem is None:
            note = "" if runtime_problem is None else f" (its own predict: {runtime_problem})"
            self._fast, self.path = fast, fast.runtime or FAST
            self.path_detail = fast.description + note
            logger.info("scoring with the compiled model: %s", self.path_detail)
        else:
            self._fast, self.path, self.path_detail = None, PANDAS, problem
            logger.warning("scoring through the model itself (slower): %s", problem)
        return self.path

    def _compiled(self, sample: list[dict[str, Any]], *, runtime: bool):
        if not sample:
            return None, "no sample"
        try:
            fast = compile_model(self.model, self.schema, runtime=runtime)
        except Unsupported as exc:
            return None, f"not compiled: {exc}"
        arrays = replace(fast, rows=None)
        problem = check_fast_path(arrays, self.score_model, sample, fast.rtol)
        if problem is not None or fast.rows is None:
            return arrays, problem
        if check_fast_path(fast.rows.score, self.score_model, sample, fast.rtol) is not None:
            return arrays, None  # the NumPy path alone, which does answer as the model does
        note = f" (batches up to {fast.rows.up_to} records in Python)"
        return replace(fast, description=fast.description + note), None

    def score_model(self, records: list[dict[str, Any]]) -> Scored:
        """Labels and scores from the model itself, given a DataFrame."""
        import pandas as pd

        frame = pd.DataFrame({c: [record[c] for record in records] for c in self.columns})
        features = frame if self._features is None else self._features.transform(frame)
        labels = self._estimator.predict(features).tolist()
        if not self._has_proba:
            return labels, None
        proba = self._estimator.predict_proba(features)
        scores = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        return labels, scores.tolist()

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        labels, scores = None, None
        if self._fast is not None:
            try:
                labels, scores = self._fast(records)
            except Exception:  # noqa: BLE001 - the model itself gives the answer, or the error
                labels = None
        if labels is None:
            labels, scores = self.score_model(records)
        if scores is None:
            return [{"prediction": label, "score": None} for label in labels]
        return [
            {"prediction": label, "score": score}
            for label, score in zip(labels, scores, strict=True)
        ]
