"""Request validation built from a spec's input schema, so bad records fail with a 422 that
names the field instead of a 500 from deep inside the model."""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Annotated, Any, NotRequired

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    create_model,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from fearless.spec import Column, ColumnType, ModelSpec

MAX_RECORDS = 1000


def _no_text_or_bool(value: Any) -> Any:
    # Lax ints would turn "3" and true into 3; a client sending those has a bug worth a 422.
    if isinstance(value, (str, bool)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _nan_as_null(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


# int64, since the model sees a numpy array: a bigger whole number is a 422, not an overflow.
WholeInt = Annotated[int, BeforeValidator(_no_text_or_bool), Field(ge=-(2**63), le=2**63 - 1)]
FiniteFloat = Annotated[float, Strict(), AllowInfNan(False)]
TYPES: dict[ColumnType, Any] = {
    ColumnType.int: WholeInt,
    ColumnType.float: FiniteFloat,
    ColumnType.category: Annotated[str, Strict()],
    ColumnType.bool: Annotated[bool, Strict()],
}


def _field(column: Column) -> tuple[Any, Any]:
    kind = TYPES[column.type]
    if column.nullable:
        # A NaN in a nullable column means "missing"; it is stored and scored as null.
        return Annotated[kind | None, BeforeValidator(_nan_as_null)], Field(None, alias=column.name)
    return kind, Field(alias=column.name)


def record_model(spec: ModelSpec) -> type[BaseModel]:
    """One record of `spec.input_schema`; fields are aliased so any column name works."""
    fields = {f"c{i}": _field(column) for i, column in enumerate(spec.input_schema)}
    return create_model(
        f"{spec.name.title().replace('-', '')}Record",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def request_model(spec: ModelSpec) -> type[BaseModel]:
    """The body of POST /predict: `{"records": [record, ...]}`, 1 to MAX_RECORDS records."""
    record = record_model(spec)
    records = Annotated[list[record], Field(min_length=1, max_length=MAX_RECORDS)]
    return create_model("PredictRequest", __config__=ConfigDict(extra="forbid"), records=records)


def records_adapter(spec: ModelSpec) -> TypeAdapter:
    """The same body as `request_model`, validated straight into plain dicts (no model objects
    to dump per record): what POST /predict runs on every request.

    Validated records hold every column; a nullable column left out is None.
    """
    fields: dict[str, Any] = {}
    for column in spec.input_schema:
        kind, _ = _field(column)
        fields[column.name] = NotRequired[kind] if column.nullable else kind
    record = TypedDict(f"{spec.name.title().replace('-', '')}Row", fields)
    record.__pydantic_config__ = ConfigDict(extra="forbid")
    body = TypedDict(
        "PredictBody",
        {"records": Annotated[list[record], Field(min_length=1, max_length=MAX_RECORDS)]},
    )
    body.__pydantic_config__ = ConfigDict(extra="forbid")
    return TypeAdapter(body)


class UnknownCategories:
    """Counts category values outside the spec's `values`: accepted, since new categories are
    exactly what the drift check is there to notice, but visible in /metadata meanwhile."""

    def __init__(self, spec: ModelSpec) -> None:
        self.known = {c.name: set(c.values) for c in spec.input_schema if c.values is not None}
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def observe(self, records: list[dict[str, Any]]) -> None:
        """Called on every batch, so it allocates nothing unless a value is unknown."""
        seen: Counter[str] | None = None
        for name, known in self.known.items():
            for record in records:
                value = record[name]
                if value is not None and value not in known:
                    seen = seen if seen is not None else Counter()
                    seen[name] += 1
        if seen:
            with self._lock:
                self.counts.update(seen)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {name: self.counts.get(name, 0) for name in self.known}
