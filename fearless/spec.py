"""The model spec: one `fearless.yaml` per model project, parsed into typed models.

Every gate a release passes through (SLOs, drift thresholds, load, approval timeout) is data
here, so a data scientist changes a gate by editing YAML, never code.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SPEC_FILENAME = "fearless.yaml"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
DOTTED_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
# A model registered in MLflow, by version or by alias (fearless.bundles.mlflow_model)
REGISTERED_MODEL_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_-]+))$"
)


class SpecError(ValueError):
    """A model spec (or a file it names) is unusable; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnType(str, Enum):
    int = "int"
    float = "float"
    category = "category"
    bool = "bool"


class Column(_Strict):
    name: str = Field(min_length=1)
    type: ColumnType
    nullable: bool = False
    values: list[str] | None = Field(
        default=None, description="Known categories (category columns only)."
    )

    @model_validator(mode="after")
    def _values_only_for_categories(self) -> Column:
        if self.values is not None and self.type is not ColumnType.category:
            raise ValueError(f"'values' is only allowed on category columns, not {self.type.value}")
        return self


class SLOs(_Strict):
    """Service-level objectives the candidate's API must meet under load."""

    p95_ms: Annotated[float, Field(gt=0)] = 250.0
    p99_ms: Annotated[float, Field(gt=0)] = 500.0
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    min_rps: Annotated[float, Field(ge=0)] = 0.0
    max_regression: Annotated[float, Field(ge=0, lt=1)] | None = Field(
        default=None,
        description="When a champion exists, load it the same way and fail if the candidate's "
        "p95/p99 grow (or its req/s drop) by more than this share. Unset: no comparison.",
    )


class DriftThresholds(_Strict):
    """When data or predictions have moved too far to ship without a human looking."""

    column_threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.1,
        description="Drift score at or above which one column counts as drifted "
        "(normalised Wasserstein for numbers, Jensen-Shannon distance for categories).",
    )
    max_drifted_share: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.3, description="Share of drifted columns at or above which the gate fails."
    )
    prediction_threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.1, description="Drift score of the candidate's scores against the champion's."
    )
    min_agreement: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.9, description="Least share of records on which candidate and champion agree."
    )
    per_column: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=dict)


DEFAULT_RATE = 50.0
CLOSED_USERS = 10
IN_FLIGHT_BUDGET_S = 1.0  # open model: each request may take this long before the rate drops


class LoadProfile(_Strict):
    """The load test: which shape, at what rate (or with how many users), for how long.

    The open model (the default) sends `rate` requests/s whatever the API's pace, as
    production traffic arrives, and the gate asks whether the API held that rate within its
    SLOs. The closed model (`mode: closed`) runs `users` that each send as fast as they are
    answered: a probe of maximum throughput, where the generator can set the pace.
    """

    mode: Literal["open", "closed"] = "open"
    rate: Annotated[float, Field(gt=0, le=100_000)] | None = Field(
        default=None,
        description=f"Open model: requests/s to send (default {DEFAULT_RATE:g}); the profile "
        "shapes it over time.",
    )
    profile: Literal["steady", "ramp", "spike", "step", "soak"] = "steady"
    users: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        default=None,
        description=f"Closed model: users sending as fast as answered (default {CLOSED_USERS}). "
        f"Open model: most requests in flight (default: the rate times {IN_FLIGHT_BUDGET_S:g} s).",
    )
    spawn_rate: Annotated[float, Field(gt=0, le=10_000)] = Field(
        default=10.0, description="Closed model: users started per second."
    )
    duration_s: Annotated[int, Field(ge=1, le=86_400)] = 20
    batch_size: Annotated[int, Field(ge=1, le=1_000)] = 1

    @model_validator(mode="after")
    def _rate_is_open_only(self) -> LoadProfile:
        if self.mode == "closed" and self.rate is not None:
            raise ValueError("'rate' is for the open model: drop it, or set mode: open")
        return self

    @property
    def target_rate(self) -> float | None:
        """Requests/s the open model sends at full load; None in the closed model."""
        return None if self.mode == "closed" else (self.rate or DEFAULT_RATE)

    @property
    def concurrency(self) -> int:
        """Locust users: the closed model's senders, the open model's most in flight."""
        if self.users is not None:
            return self.users
        if self.target_rate is None:
            return CLOSED_USERS
        return max(4, min(1_000, math.ceil(self.target_rate * IN_FLIGHT_BUDGET_S)))


class Approval(_Strict):
    timeout_s: Annotated[int, Field(ge=1, le=30 * 86_400)] = 86_400
    approvers: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")]] = Field(
        default=[],
        description="who may decide this model's releases (names as approvers give them, as "
        "in allowed_signers); empty: anyone. Whoever started a release never approves it.",
    )


class Bake(_Strict):
    """After a promotion: how long to watch production, and what makes Fearless roll back.

    Unset thresholds are the SLOs'. Too little traffic in the window passes (with a note).
    With `shadow`, the previous version answers a mirror of the same requests unseen, and the
    two versions' predictions are compared (`min_agreement`, `max_prediction_shift`).
    """

    window_s: Annotated[int, Field(ge=0, le=86_400)] = Field(default=60, description="0: no bake")
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    p95_ms: Annotated[float, Field(gt=0)] | None = None
    min_requests: Annotated[int, Field(ge=1)] = 20
    shadow: bool = Field(
        default=True,
        description="mirror production's requests to the previous version during the window "
        "and compare the two versions' predictions on the same records",
    )
    shadow_sample: Annotated[float, Field(gt=0, le=1)] = Field(
        default=1.0,
        description="share of production's requests its model API copies to the shadow where "
        "no front mirrors (ECS: the ALB cannot); the local front mirrors every request",
    )
    min_agreement: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None,
        description="roll back when a smaller share of records get the same prediction from "
        "both versions (unset: reported, never a reason)",
    )
    max_prediction_shift: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="roll back when the mean absolute difference of the two versions' scores "
        "(or numeric predictions) on the same records is larger (unset: reported only)",
    )


class MlflowLink(_Strict):
    """Where a registered model (`model: models:/NAME@ALIAS`) lives, and which of its MLflow
    aliases follows Fearless's production."""

    tracking_uri: str | None = Field(
        default=None, description="The MLflow tracking server (default: MLFLOW_TRACKING_URI)."
    )
    promote_alias: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")] | None = Field(
        default=None,
        description="MLflow alias that promotion moves to the released version and rollback "
        "moves back, e.g. champion. Unset: MLflow's aliases are left alone.",
    )


class Resources(_Strict):
    cpu: Annotated[float, Field(ge=0.25, le=16)] = 0.5
    memory_mb: Annotated[int, Field(ge=256, le=122_880)] = 1024


class ModelSpec(_Strict):
    """What a model project declares about itself. Paths are relative to the spec's folder
    and stay inside it (no absolute paths, no `..`)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    model: Path
    reference_data: Path
    trusted_types: list[Annotated[str, Field(pattern=DOTTED_NAME_PATTERN)]] = Field(
        default_factory=list,
        description="Types and functions a .skops model file may name besides the ones real "
        "scikit-learn models need (fearless.bundles.trusted_types), in full as a refusal names "
        "them, e.g. numpy.clip. Loading the model calls them: list only what you trust.",
    )
    input_schema: list[Column] = Field(alias="schema", min_length=1)
    slos: SLOs = SLOs()
    drift: DriftThresholds = DriftThresholds()
    load: LoadProfile = LoadProfile()
    approval: Approval = Approval()
    bake: Bake = Bake()
    resources: Resources = Resources()
    mlflow: MlflowLink | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("model", "reference_data")
    @classmethod
    def _inside_the_project(cls, value: Path) -> Path:
        """A project may bundle only its own files, not any file the build can read (or a
        model registered in MLflow: models:/NAME/VERSION or models:/NAME@ALIAS)."""
        if str(value).startswith("models:/"):
            if not REGISTERED_MODEL_URI.match(str(value)):
                raise ValueError(
                    f"{str(value)!r} is not a registered model URI: expected "
                    "models:/NAME/VERSION or models:/NAME@ALIAS (e.g. models:/credit@candidate)"
                )
            return value
        if value.is_absolute() or ".." in value.parts:
            raise ValueError(
                f"{str(value)!r} is outside the project: give a path relative to the spec's "
                "folder, without '..'"
            )
        return value

    @field_validator("input_schema", mode="before")
    @classmethod
    def _schema_from_mapping(cls, value: Any) -> Any:
        """Accept the compact YAML form `{age: int, purpose: {type: category}}`."""
        if isinstance(value, dict):
            columns = []
            for name, decl in value.items():
                if isinstance(decl, str):
                    decl = {"type": decl}
                if not isinstance(decl, dict):
                    raise ValueError(f"column {name!r}: expected a type name or a mapping")  # noqa: TRY004
                columns.append({"name": name, **decl})
            return columns
        return value

    @field_validator("input_schema")
    @classmethod
    def _unique_columns(cls, value: list[Column]) -> list[Column]:
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate columns: {', '.join(dupes)}")
        return value

    @property
    def registered_model(self) -> str | None:
        """The MLflow model URI `model` names, or None when it names a file."""
        return str(self.model) if str(self.model).startswith("models:/") else None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.input_schema]

    def to_yaml_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not data["trusted_types"]:
            del data["trusted_types"]
        data["schema"] = {
            c["name"]: {k: v for k, v in c.items() if k != "name" and v not in (None, False)}
            for c in data["schema"]
        }
        return data


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid model spec"]
    for err in error.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {field}: {err['msg']}")
    return "\n".join(lines)


def spec_path_of(path: Path | str) -> Path:
    """A model project folder or its spec file, as the spec file's path."""
    path = Path(path)
    return path / SPEC_FILENAME if path.is_dir() else path


def load_spec(path: Path | str) -> ModelSpec:
    """Parse and validate a spec; every problem is a SpecError naming the file and field."""
    path = spec_path_of(path)
    if not path.is_file():
        raise SpecError(f"{path}: no model spec here (expected a {SPEC_FILENAME})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_errors(path, exc)) from None


def with_overrides(spec: ModelSpec, overrides: dict[str, Any] | None, source: str) -> ModelSpec:
    """Apply per-run overrides such as `{"load": {"duration_s": 5}}`, validated like the file."""
    if not overrides:
        return spec
    data = spec.model_dump(mode="json", by_alias=True)
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_errors(Path(source), exc)) from None


def overrides_from_pairs(pairs: list[str]) -> dict[str, Any]:
    """`["load.duration_s=5", "slos.p95_ms=300"]` as overrides; values are read as YAML."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, field = key.partition(".")
        if not sep or not dot or not section or not field:
            raise SpecError(
                f"override {pair!r}: expected SECTION.FIELD=VALUE, e.g. load.duration_s=5"
            )
        overrides.setdefault(section, {})[field] = yaml.safe_load(value)
    return overrides
