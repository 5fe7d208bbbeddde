"""The loaded model, wrapped so the API scores a batch with one pass through its features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline


class Predictor:
    """Scores validated records; `score` is the positive class's probability (binary), the
    winning class's probability (multiclass), or None (regressors, classifiers without
    probabilities)."""

    def __init__(self, model: Any, columns: list[str]) -> None:
        self.model = model
        self.columns = columns
        # Transform once, then ask the final step for labels and probabilities: half the cost
        # of calling predict and predict_proba on the whole pipeline, same answers.
        if isinstance(model, Pipeline) and len(model.steps) > 1:
            self._features, self._estimator = model[:-1], model[-1]
        else:
            self._features, self._estimator = None, model
        self._has_proba = hasattr(self._estimator, "predict_proba")

    @classmethod
    def load(cls, path: Path, columns: list[str], *, trust_pickle: bool = True) -> Predictor:
        """Load the model file safely (see `fearless.model_files`)."""
        from fearless.model_files import load_model_file

        return cls(load_model_file(path, trust_pickle=trust_pickle), columns)

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        frame = pd.DataFrame({c: [record[c] for record in records] for c in self.columns})
        features = frame if self._features is None else self._features.transform(frame)
        labels = self._estimator.predict(features).tolist()
        if not self._has_proba:
            return [{"prediction": label, "score": None} for label in labels]
        proba = self._estimator.predict_proba(features)
        scores = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        return [
            {"prediction": label, "score": score}
            for label, score in zip(labels, scores.tolist(), strict=True)
        ]
