"""A spec naming a registered MLflow model, and the schema its signature gives (no server)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from fearless.bundles.mlflow_model import RegisteredModel, parse_model_uri, schema_from_signature
from fearless.spec import ModelSpec

SPEC = {"name": "credit", "reference_data": "reference.parquet", "schema": {"age": "int"}}


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/credit@candidate", ("credit", None, "candidate")),
        ("models:/credit/3", ("credit", "3", None)),
    ],
)
def test_a_spec_names_a_registered_model_by_alias_or_version(uri, parsed):
    spec = ModelSpec.model_validate({**SPEC, "model": uri})

    assert spec.registered_model == uri and parse_model_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["models:/credit", "models:/credit/latest/x", "models:/@a"])
def test_a_malformed_model_uri_is_refused_by_name(uri):
    with pytest.raises(ValueError, match="not a registered model URI"):
        ModelSpec.model_validate({**SPEC, "model": uri})


def test_a_file_is_not_a_registered_model():
    assert ModelSpec.model_validate({**SPEC, "model": "model.skops"}).registered_model is None


def registered(inputs: list[dict]) -> RegisteredModel:
    signature = {"inputs": json.dumps(inputs)}
    record = {"uri": "models:/credit/1"}
    return RegisteredModel(
        model_file=Path("model.skops"), record=record, mlmodel={"signature": signature}
    )


def test_the_schema_comes_from_the_signature_and_the_values_from_the_data():
    frame = pd.DataFrame(
        {"age": [30, 40], "income": [1.0, None], "purpose": ["car", "home"], "ok": [True, False]}
    )
    model = registered(
        [
            {"name": "age", "type": "long", "required": True},
            {"name": "income", "type": "double", "required": True},
            {"name": "purpose", "type": "string", "required": True},
            {"name": "ok", "type": "boolean", "required": False},
        ]
    )

    assert schema_from_signature(model, frame) == [
        {"name": "age", "type": "int"},
        {"name": "income", "type": "float", "nullable": True},
        {"name": "purpose", "type": "category", "values": ["car", "home"]},
        {"name": "ok", "type": "bool", "nullable": True},
    ]


def test_a_model_without_a_signature_or_with_a_tensor_one_is_refused():
    frame = pd.DataFrame({"age": [1]})
    with pytest.raises(ValueError, match="without an input signature"):
        schema_from_signature(registered([]), frame)
    with pytest.raises(ValueError, match="not a named column"):
        schema_from_signature(registered([{"type": "tensor", "tensor-spec": {}}]), frame)
