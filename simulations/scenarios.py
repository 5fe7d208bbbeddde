"""Drift scenarios as data: what to change in traffic to see what a candidate does with it.

A scenario is a named list of changes, each on one column of the model's input schema:

- `mean_shift`: add `by` (or `by_std` standard deviations of the column) to a numeric column;
- `new_category`: a share of records get a category the model never saw;
- `missing_values`: a share of records lose the column's value (None). On a column that is not
  `nullable` the API answers 422, and the load test's error rate shows it.

Scenarios live in YAML (`simulations/scenarios.yaml` for the example credit model); they are
checked against the spec before any traffic is changed.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fearless.spec import ColumnType, ModelSpec

SCENARIOS_FILE = Path(__file__).resolve().parent / "scenarios.yaml"
_NUMERIC = {ColumnType.int, ColumnType.float}


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str = Field(min_length=1)


class MeanShift(_Change):
    kind: Literal["mean_shift"] = "mean_shift"
    by: float | None = None
    by_std: float | None = None

    @model_validator(mode="after")
    def _one_amount(self) -> MeanShift:
        if (self.by is None) == (self.by_std is None):
            raise ValueError("mean_shift needs exactly one of 'by' and 'by_std'")
        return self


class NewCategory(_Change):
    kind: Literal["new_category"] = "new_category"
    value: str = Field(min_length=1)
    share: Annotated[float, Field(gt=0, le=1)] = 0.5


class MissingValues(_Change):
    kind: Literal["missing_values"] = "missing_values"
    share: Annotated[float, Field(gt=0, le=1)] = 0.2


Change = Annotated[MeanShift | NewCategory | MissingValues, Field(discriminator="kind")]


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    description: str = ""
    changes: list[Change] = Field(min_length=1)


def load_scenarios(path: Path = SCENARIOS_FILE) -> dict[str, Scenario]:
    """Scenarios by name from a YAML mapping `{name: {description, changes: [...]}}`."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of scenario names to scenarios")  # noqa: TRY004
    return {name: Scenario.model_validate({"name": name, **body}) for name, body in data.items()}


def check_scenario(scenario: Scenario, spec: ModelSpec) -> None:
    """Raise ValueError naming the scenario and column when a change does not fit the schema."""
    columns = {c.name: c for c in spec.input_schema}
    for change in scenario.changes:
        column = columns.get(change.column)
        where = f"scenario {scenario.name!r}, {change.kind} on {change.column!r}"
        if column is None:
            raise ValueError(f"{where}: no such column in {spec.name!r}'s schema")
        if isinstance(change, MeanShift) and column.type not in _NUMERIC:
            raise ValueError(f"{where}: only int and float columns can shift")
        if isinstance(change, NewCategory) and column.type is not ColumnType.category:
            raise ValueError(f"{where}: only category columns take new categories")
        if isinstance(change, NewCategory) and change.value in (column.values or []):
            raise ValueError(f"{where}: {change.value!r} is already a known category")


def _std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _apply(change: Change, records: list[dict], spec: ModelSpec, rng: random.Random) -> None:
    if isinstance(change, MeanShift):
        present = [r[change.column] for r in records if r[change.column] is not None]
        by = change.by if change.by is not None else change.by_std * _std(present or [0.0])
        is_int = (
            next(c for c in spec.input_schema if c.name == change.column).type is ColumnType.int
        )
        for record in records:
            if record[change.column] is not None:
                shifted = record[change.column] + by
                record[change.column] = round(shifted) if is_int else float(shifted)
        return
    chosen = rng.sample(range(len(records)), round(change.share * len(records)))
    for i in chosen:
        records[i][change.column] = change.value if isinstance(change, NewCategory) else None


def apply_scenario(
    records: list[dict], scenario: Scenario, spec: ModelSpec, seed: int = 0
) -> list[dict]:
    """New records with the scenario's changes applied in order (the input is left as it was).

    Shares are exact (`round(share * n)` records, chosen with `seed`); a mean shift moves every
    present value, rounding int columns.
    """
    check_scenario(scenario, spec)
    changed = [dict(record) for record in records]
    rng = random.Random(seed)
    for change in scenario.changes:
        _apply(change, changed, spec, rng)
    return changed
