"""NumPy versions of common fitted scikit-learn steps, without sklearn's per-call checks.

A kernel is a function from a 2-D array to a 2-D array (or, for a final estimator, to labels
and scores) that does the arithmetic the fitted step's own `transform`/`predict` does. Types
that have no kernel here are called directly (`generic_step`): still no pandas, still one call.
Nothing here is trusted blindly: `fearless.serving.fastpath` checks the compiled model
against the model itself before it is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Step = Callable[[np.ndarray], np.ndarray]
Final = Callable[[np.ndarray], tuple[list, list | None]]


class Unsupported(Exception):
    """The model has a shape the fast path does not compile; the reason says what."""


def dense(values: Any) -> np.ndarray:
    return values.toarray() if hasattr(values, "toarray") else np.asarray(values)


def generic_step(step: Any) -> Step:
    if not hasattr(step, "transform"):
        raise Unsupported(f"{type(step).__name__} has no transform()")
    return lambda x: dense(step.transform(x))


def standard_scaler(step: Any) -> Step:
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def run(x: np.ndarray) -> np.ndarray:
        out = np.array(x, dtype=np.float64)
        if mean is not None:
            out -= mean
        if scale is not None:
            out /= scale
        return out

    return run


def min_max_scaler(step: Any) -> Step:
    low, high = step.feature_range

    def run(x: np.ndarray) -> np.ndarray:
        out = np.array(x, dtype=np.float64)
        out *= step.scale_
        out += step.min_
        return np.clip(out, low, high, out=out) if step.clip else out

    return run


def _plain_category(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


def one_hot_categories(step: Any) -> list[list]:
    """A fitted OneHotEncoder's categories, one list a column, where a compiled form can take
    them; Unsupported for an encoder that drops a category or groups infrequent ones, or that
    has a missing value among its categories."""
    if step.drop_idx_ is not None or getattr(step, "_infrequent_enabled", False):
        raise Unsupported("OneHotEncoder with drop or infrequent categories")
    categories = [list(c.tolist()) for c in step.categories_]
    if not all(_plain_category(v) for c in categories for v in c):
        raise Unsupported("OneHotEncoder with missing values among its categories")
    return categories


def column_transformer_blocks(ct: Any) -> list[tuple[list[str], Any]]:
    """(input columns, fitted transformer) of each branch a fitted ColumnTransformer outputs,
    in its output order; Unsupported if it was not fitted on a DataFrame."""
    names = getattr(ct, "feature_names_in_", None)
    indices = getattr(ct, "_transformer_to_input_indices", None)
    if names is None or indices is None:
        raise Unsupported("ColumnTransformer not fitted on a DataFrame")
    blocks = []
    for name, transformer, _ in ct.transformers_:
        columns = [str(names[i]) for i in indices.get(name, [])]
        if transformer != "drop" and columns:
            blocks.append((columns, transformer))
    return blocks


def one_hot_encoder(step: Any) -> Step:
    """Unknown values give all zeros (handle_unknown="ignore") or raise ("error"), as in
    sklearn; encoders that drop a category or group infrequent ones are not compiled."""
    categories = one_hot_categories(step)
    tables = [{value: i for i, value in enumerate(c)} for c in categories]
    offsets = np.cumsum([0] + [len(c) for c in categories])[:-1].tolist()
    width, ignore = sum(map(len, categories)), step.handle_unknown != "error"

    def run(x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), width), dtype=step.dtype)
        for j, (table, offset) in enumerate(zip(tables, offsets, strict=True)):
            for i, value in enumerate(x[:, j].tolist()):
                at = table.get(value, -1)
                if at >= 0:
                    out[i, offset + at] = 1
                elif not ignore:
                    raise ValueError(f"unknown category {value!r} in column {j}")
        return out

    return run


def logistic_regression(model: Any) -> Final:
    """LogisticRegression.predict and predict_proba from one decision function."""
    from scipy.special import expit

    classes, coef, intercept = model.classes_, model.coef_.T, model.intercept_
    binary = len(classes) <= 2

    def run(x: np.ndarray) -> tuple[list, list | None]:
        decision = np.asarray(x, dtype=np.float64) @ coef + intercept
        if binary:
            decision = decision.ravel()
            return classes[(decision > 0).astype(int)].tolist(), expit(decision).tolist()
        labels = classes[decision.argmax(axis=1)].tolist()
        exp = np.exp(decision - decision.max(axis=1, keepdims=True))
        return labels, (exp.max(axis=1) / exp.sum(axis=1)).tolist()

    return run


def generic_final(model: Any) -> Final:
    """The estimator's own predict (and predict_proba, when it has one) on the array."""
    has_proba = hasattr(model, "predict_proba")

    def run(x: np.ndarray) -> tuple[list, list | None]:
        labels = model.predict(x).tolist()
        if not has_proba:
            return labels, None
        proba = model.predict_proba(x)
        scores = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        return labels, scores.tolist()

    return run


BOOSTER_MODULES = ("xgboost.", "lightgbm.")


def booster_final(model: Any) -> Final:
    """XGBoost's or LightGBM's own predict, on one thread. Their OpenMP pool costs more than
    it saves on a batch of a few rows, and the machine's other core serves HTTP: measured on
    the diabetes pipeline, a 16-row call took 2.4 ms on LightGBM's pool and 1.3 ms on one
    thread, 0.9 and 0.6 ms on XGBoost's. The scores are the same either way."""
    model.set_params(n_jobs=1)
    return generic_final(model)


def _kernels() -> tuple[dict[type, Callable[[Any], Step]], dict[type, Callable[[Any], Final]]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    steps = {
        StandardScaler: standard_scaler,
        MinMaxScaler: min_max_scaler,
        OneHotEncoder: one_hot_encoder,
    }
    return steps, {LogisticRegression: logistic_regression}


def compile_step(step: Any) -> tuple[Step, str]:
    """A fitted transformer as a kernel (exact type match) or its own transform; its name."""
    if step is None or step == "passthrough":
        return (lambda x: x), "passthrough"
    steps, _ = _kernels()
    kernel = steps.get(type(step), generic_step)
    return kernel(step), type(step).__name__ + ("" if kernel is generic_step else "*")


def compile_final(model: Any) -> tuple[Final, str]:
    _, finals = _kernels()
    kernel = finals.get(type(model))
    if kernel is not None:
        return kernel(model), type(model).__name__ + "*"
    if type(model).__module__.startswith(BOOSTER_MODULES) and hasattr(model, "set_params"):
        return booster_final(model), f"{type(model).__name__} (one thread)"
    if not hasattr(model, "predict"):
        raise Unsupported(f"{type(model).__name__} has no predict()")
    return generic_final(model), type(model).__name__
