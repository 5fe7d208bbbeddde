"""A fitted scikit-learn model compiled into plain NumPy calls: no DataFrame, no per-call
validation, one pass through each fitted step.

Most of a scikit-learn predict call on a few rows is checking and pandas indexing (about
10 ms for the example Pipeline, against 0.1 ms of arithmetic). `compile_model` walks a
Pipeline whose first step may be a ColumnTransformer, slices each branch's columns straight
from the validated records, runs each fitted step (a kernel from `kernels`, or the step's own
`transform`), stacks the branches and asks the final estimator (a tree ensemble on ONNX
Runtime, see `runtimes`, when it takes it). `check_fast_path` then scores a reference sample
both ways; the server uses the compiled model only if class labels are identical and scores
(and regression values) agree to 1e-9, or to float32 rounding on ONNX Runtime.
A linear pipeline also gets a row scorer (`linear_rows`) for small batches, checked the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fearless.serving import runtimes
from fearless.serving.kernels import (
    Final,
    Step,
    Unsupported,
    column_transformer_blocks,
    compile_final,
    compile_step,
    dense,
)
from fearless.serving.linear_rows import Rows, compile_rows
from fearless.spec import Column, ColumnType

Scored = tuple[list, list | None]
SCORE_RTOL, SCORE_ATOL = 1e-9, 1e-12
NUMERIC = {ColumnType.int, ColumnType.float, ColumnType.bool}


@dataclass(frozen=True)
class Branch:
    """Some input columns through a chain of fitted steps."""

    columns: list[str]
    numeric: bool
    steps: list[Step]

    def run(self, records: list[dict[str, Any]]) -> np.ndarray:
        dtype = np.float64 if self.numeric else object
        rows = [[record[c] for c in self.columns] for record in records]
        x = np.array(rows, dtype=dtype).reshape(len(records), len(self.columns))
        for step in self.steps:
            x = step(x)
        return x


@dataclass(frozen=True)
class FastPath:
    branches: list[Branch]
    steps: list[Step]
    final: Final
    description: str
    runtime: str | None = None  # the inference runtime the final estimator runs on, if any
    rtol: float = SCORE_RTOL  # how close its scores must be to the model's own
    rows: Rows | None = None  # small batches in plain Python (see `linear_rows`)

    def __call__(self, records: list[dict[str, Any]]) -> Scored:
        rows = self.rows
        if rows is not None and len(records) <= rows.up_to:
            return rows.score(records)
        parts = [branch.run(records) for branch in self.branches]
        x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        for step in self.steps:
            x = step(x)
        return self.final(x)


def _chain(step: Any) -> tuple[list[Step], list[str]]:
    from sklearn.pipeline import Pipeline

    if isinstance(step, Pipeline):
        compiled = [compile_step(inner) for _, inner in step.steps]
    else:
        compiled = [compile_step(step)]
    return [run for run, _ in compiled], [name for _, name in compiled]


def _branch(columns: list[str], schema: dict[str, Column], steps: list[Step]) -> Branch:
    unknown = [c for c in columns if c not in schema]
    if unknown:
        raise Unsupported(f"the model reads columns not in the schema: {unknown}")
    numeric = all(schema[c].type in NUMERIC for c in columns)
    return Branch(columns, numeric, steps)


def _column_transformer(ct: Any, schema: dict[str, Column]) -> tuple[list[Branch], str]:
    branches, described = [], []
    for columns, transformer in column_transformer_blocks(ct):
        steps, step_names = _chain(transformer)
        branches.append(_branch(columns, schema, steps))
        described.append("+".join(step_names))
    if not branches:
        raise Unsupported("ColumnTransformer with no output columns")
    return branches, f"ColumnTransformer[{', '.join(described)}]"


def compile_model(model: Any, schema: list[Column], *, runtime: bool = True) -> FastPath:
    """The fast path of `model` for records of `schema`; Unsupported if it has another shape.
    With `runtime`, a final estimator an inference runtime takes runs on it (Unsupported if
    that runtime cannot take it)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    # Steps fitted on a DataFrame warn when given an array: the columns are the same ones in
    # the same order (the check below proves the answers are), so the warning says nothing.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    by_name = {c.name: c for c in schema}
    steps = list(model.steps) if isinstance(model, Pipeline) else [("model", model)]
    *transforms, final = [step for _, step in steps]
    described = []
    if transforms and isinstance(transforms[0], ColumnTransformer):
        branches, text = _column_transformer(transforms.pop(0), by_name)
        described.append(text)
    else:
        fitted = getattr(transforms[0] if transforms else final, "feature_names_in_", None)
        columns = [str(c) for c in fitted] if fitted is not None else list(by_name)
        branches = [_branch(columns, by_name, [])]
    if any(isinstance(step, ColumnTransformer) for step in transforms):
        raise Unsupported("a ColumnTransformer after the first step")
    compiled = [compile_step(step) for step in transforms]
    steps = [run for run, _ in compiled]
    described += [name for _, name in compiled]
    if runtime and runtimes.takes(final):
        described.append(f"{type(final).__name__} on {runtimes.RUNTIME}")
        final_run = runtimes.onnx_final(final)
        text = " -> ".join(described)
        return FastPath(branches, steps, final_run, text, runtimes.RUNTIME, runtimes.FLOAT32_RTOL)
    final_run, final_name = compile_final(final)
    return FastPath(
        branches, steps, final_run, " -> ".join([*described, final_name]), rows=compile_rows(model)
    )


def _close(fast: list, slow: list, rtol: float) -> bool:
    return np.allclose(dense(fast), dense(slow), rtol=rtol, atol=SCORE_ATOL)


def _values(labels: list) -> bool:
    """Regression outputs (floats), compared as numbers; class labels must be identical."""
    return bool(labels) and all(type(label) is float for label in labels)


def _disagreement(fast: Scored, slow: Scored, rtol: float) -> str | None:
    if fast[0] != slow[0] and not (
        _values(slow[0]) and len(fast[0]) == len(slow[0]) and _close(fast[0], slow[0], rtol)
    ):
        return "labels differ from the model's own"
    if (fast[1] is None) != (slow[1] is None):
        return "scores differ from the model's own"
    if fast[1] is not None and not _close(fast[1], slow[1], rtol):
        return "scores differ from the model's own"
    return None


def check_fast_path(
    fast: Callable[[list[dict]], Scored],
    slow: Callable[[list[dict]], Scored],
    sample: list[dict[str, Any]],
    rtol: float = SCORE_RTOL,
) -> str | None:
    """None if `fast` answers as `slow` does on the whole sample and on one record, else why
    not (an error of `fast` is a disagreement; one of `slow` reaches the caller)."""
    for batch in (sample, sample[:1]):
        want = slow(batch)
        try:
            got = fast(batch)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not use it
            return f"the compiled model failed: {type(exc).__name__}: {exc}"
        if (problem := _disagreement(got, want, rtol)) is not None:
            return problem
    return None
