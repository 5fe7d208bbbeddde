from pathlib import Path

import pytest
import yaml

from fearless.spec import SpecError, load_spec, with_overrides

VALID = {
    "name": "credit",
    "model": "model.joblib",
    "reference_data": "reference.parquet",
    "schema": {"age": "int", "income": "float", "purpose": {"type": "category", "values": ["car"]}},
}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "fearless.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_valid_spec_with_compact_schema_and_defaults(tmp_path):
    spec = load_spec(write(tmp_path, VALID).parent)
    assert spec.column_names == ["age", "income", "purpose"]
    assert spec.input_schema[2].values == ["car"]
    assert spec.slos.p95_ms == 250 and spec.load.profile == "steady"
    assert spec.bake.window_s == 60 and spec.bake.min_requests == 20
    assert spec.bake.p95_ms is None and spec.bake.max_error_rate is None  # the SLOs' then


def test_bake_window_zero_and_thresholds_set_by_override(tmp_path):
    spec = load_spec(write(tmp_path, VALID))
    baked = with_overrides(spec, {"bake": {"window_s": 0, "p95_ms": 0.001}}, "cli")
    assert baked.bake.window_s == 0 and baked.bake.p95_ms == 0.001
    assert baked.bake.min_requests == spec.bake.min_requests


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slos": {"p95_ms": "fast"}}, "slos.p95_ms"),
        ({"slos": {"max_error_rate": 1.5}}, "slos.max_error_rate"),
        ({"load": {"users": -3}}, "load.users"),
        ({"load": {"profile": "tsunami"}}, "load.profile"),
        ({"name": "Credit Model"}, "name"),
        ({"schema": {"age": "integer"}}, "schema.0.type"),
        ({"approval": {"timeout_s": 0}}, "approval.timeout_s"),
        ({"bake": {"window_s": -1}}, "bake.window_s"),
        ({"bake": {"min_requests": 0}}, "bake.min_requests"),
        ({"bake": {"p95_ms": 0}}, "bake.p95_ms"),
        ({"bake": {"max_error_rate": 2}}, "bake.max_error_rate"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_bad_values_name_the_file_and_field(tmp_path, change, field):
    path = write(tmp_path, {**VALID, **change})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert field in str(err.value)


def test_missing_required_field_is_named(tmp_path):
    path = write(tmp_path, {k: v for k, v in VALID.items() if k != "model"})
    with pytest.raises(SpecError, match="model"):
        load_spec(path)


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write(tmp_path, "name: [unclosed"))
    with pytest.raises(SpecError, match="no model spec here"):
        load_spec(tmp_path / "nowhere")


def test_values_only_on_categories(tmp_path):
    bad = {**VALID, "schema": {"age": {"type": "int", "values": ["1"]}}}
    with pytest.raises(SpecError, match="only allowed on category"):
        load_spec(write(tmp_path, bad))


def test_overrides_are_validated_like_the_file(tmp_path):
    spec = load_spec(write(tmp_path, VALID))
    assert with_overrides(spec, {"load": {"duration_s": 3}}, "cli").load.duration_s == 3
    assert with_overrides(spec, {"load": {"duration_s": 3}}, "cli").load.users == spec.load.users
    with pytest.raises(SpecError, match="load.duration_s"):
        with_overrides(spec, {"load": {"duration_s": -1}}, "cli")


def test_yaml_round_trip(tmp_path):
    spec = load_spec(write(tmp_path, VALID))
    again = load_spec(write(tmp_path, spec.to_yaml_dict()))
    assert again == spec


def test_overrides_from_command_line_pairs():
    from fearless.spec import overrides_from_pairs

    assert overrides_from_pairs(
        ["load.duration_s=5", "slos.p95_ms=300.5", "load.profile=spike"]
    ) == {
        "load": {"duration_s": 5, "profile": "spike"},
        "slos": {"p95_ms": 300.5},
    }
    for bad in ("duration_s=5", "load.duration_s", ".x=1"):
        with pytest.raises(SpecError, match="SECTION.FIELD=VALUE"):
            overrides_from_pairs([bad])
