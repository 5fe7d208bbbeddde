"""Small batches of a linear pipeline scored in plain Python floats: no NumPy call at all.

A NumPy call costs about a microsecond however small its array, and two or three on a busy
model API, whose caches are full of HTTP: the compiled form of a scaled and one-hot encoded
logistic regression makes some twenty of them a batch. On the batches of four to eight records
a model API gets when requests arrive spread out (through a reverse proxy, or from a load
generator), that was most of a predict call: 31 µs for 4 records of the example, in the API
under load. Such a pipeline is one weighted sum a record, cheaper in Python while a batch is
small. Measured on one core, caches hot: Python costs about 0.055 µs a number read, the NumPy
path 0.035 plus 5 µs a call (twice that on the busy API); a category costs the NumPy path
more than here (its one-hot encoding is a Python loop too). So a batch is scored here while it
holds at most ROW_NUMBERS_UP_TO numbers: up to 102 records of the example (5 numeric
columns), 5 of a model of 100.

`compile_rows` takes an optional ColumnTransformer (or one StandardScaler) whose branches
are passthrough, a StandardScaler or a OneHotEncoder the fast path compiles, ending in a
binary LogisticRegression or a single-target LinearRegression, Ridge, Lasso or ElasticNet
(whose NumPy path is their own predict, with its checks); None for anything else. Like every
compiled form, the predictor uses it only once it has scored the reference sample as the
model does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fearless.serving.kernels import Unsupported, column_transformer_blocks, one_hot_categories

ROW_NUMBERS_UP_TO = 512  # records x numeric columns of the largest batch scored here


@dataclass(frozen=True)
class Rows:
    """A row scorer, and the most records a call it should take."""

    score: Callable[[list[dict[str, Any]]], tuple[list, list | None]]
    up_to: int


def compile_rows(model: Any) -> Rows | None:
    """The row scorer of `model`, or None when it is not a linear pipeline of that shape."""
    from sklearn.pipeline import Pipeline

    steps = [step for _, step in model.steps] if isinstance(model, Pipeline) else [model]
    *transforms, final = steps
    linear = _linear(final)
    blocks = None if linear is None else _blocks(transforms, final)
    if linear is None or blocks is None:
        return None
    weights, bias, classes = linear
    numeric: list[tuple[str, float, float, float]] = []  # column, mean, scale, weight
    categories: list[tuple[str, dict[Any, float], bool]] = []  # column, weights, ignore
    at = 0
    for columns, transformer in blocks:
        terms = _terms(columns, transformer, weights, at)
        if terms is None:
            return None
        at, block_numeric, block_categories = terms
        numeric += block_numeric
        categories += block_categories
    if at != len(weights):
        return None
    score = _scorer(numeric, categories, bias, classes)
    return Rows(score, max(1, ROW_NUMBERS_UP_TO // max(1, len(numeric))))


def _linear(final: Any) -> tuple[list[float], float, list | None] | None:
    """(weights, intercept, the two classes or None for a regressor) of a final step this
    module scores: a binary LogisticRegression, or a single-target linear regressor."""
    from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge

    if type(final) is LogisticRegression:
        if len(final.classes_) != 2:
            return None
        return final.coef_[0].tolist(), float(final.intercept_[0]), final.classes_.tolist()
    if type(final) in (LinearRegression, Ridge, Lasso, ElasticNet) and final.coef_.ndim == 1:
        return final.coef_.tolist(), float(final.intercept_), None
    return None


def _blocks(transforms: list[Any], final: Any) -> list[tuple[list[str], Any]] | None:
    """(columns, transformer) in the order the final step sees their features."""
    from sklearn.compose import ColumnTransformer

    if not transforms:
        columns = getattr(final, "feature_names_in_", None)
        return None if columns is None else [([str(c) for c in columns], "passthrough")]
    if len(transforms) != 1:
        return None
    [first] = transforms
    if not isinstance(first, ColumnTransformer):
        columns = getattr(first, "feature_names_in_", None)
        return None if columns is None else [([str(c) for c in columns], first)]
    try:
        return column_transformer_blocks(first)
    except Unsupported:
        return None


def _terms(columns: list[str], transformer: Any, weights: list[float], at: int):
    """(next weight index, numeric terms, category terms) of one block, or None."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if isinstance(transformer, Pipeline):
        if len(transformer.steps) != 1:
            return None
        transformer = transformer.steps[0][1]
    if _identity(transformer):
        numeric = [(c, 0.0, 1.0, weights[at + j]) for j, c in enumerate(columns)]
        return at + len(columns), numeric, []
    if type(transformer) is StandardScaler:
        n = len(columns)
        means = transformer.mean_.tolist() if transformer.with_mean else [0.0] * n
        scales = transformer.scale_.tolist() if transformer.with_std else [1.0] * n
        numeric = [(c, means[j], scales[j], weights[at + j]) for j, c in enumerate(columns)]
        return at + n, numeric, []
    if type(transformer) is OneHotEncoder:
        try:
            categories = one_hot_categories(transformer)
        except Unsupported:
            return None
        ignore, terms = transformer.handle_unknown != "error", []
        for column, values in zip(columns, categories, strict=True):
            terms.append((column, {v: weights[at + k] for k, v in enumerate(values)}, ignore))
            at += len(values)
        return at, [], terms
    return None


def _identity(transformer: Any) -> bool:
    """passthrough, which a fitted ColumnTransformer holds as a FunctionTransformer of None."""
    from sklearn.preprocessing import FunctionTransformer

    if transformer is None or (isinstance(transformer, str) and transformer == "passthrough"):
        return True
    return type(transformer) is FunctionTransformer and transformer.func is None


def _expit(d: float) -> float:
    if d >= 0:
        return 1.0 / (1.0 + math.exp(-d))
    e = math.exp(d)  # exp(-d) would overflow for d below about -709
    return e / (1.0 + e)


def _scorer(numeric, categories, bias: float, classes: list | None):
    nan = math.nan
    negative, positive = classes if classes is not None else (None, None)

    def score(records: list[dict[str, Any]]) -> tuple[list, list | None]:
        labels, scores = [], []
        for record in records:
            total = 0.0
            for column, mean, scale, weight in numeric:
                value = record[column]
                total += (nan if value is None else value - mean) / scale * weight
            for column, table, ignore in categories:
                value = record[column]
                weight = table.get(value)
                if weight is not None:
                    total += weight
                elif not ignore:
                    raise ValueError(f"unknown category {value!r} in column {column!r}")
            decision = total + bias
            if classes is None:
                labels.append(decision)
                continue
            labels.append(positive if decision > 0 else negative)
            scores.append(_expit(decision))  # NaN in, NaN out, as scipy's expit
        return labels, (scores if classes is not None else None)

    return score
