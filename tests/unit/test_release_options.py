import pytest
from pydantic import ValidationError

from fearless.release.options import ReleaseOptions


def test_only_filled_fields_become_overrides():
    assert ReleaseOptions().to_overrides() == {}
    options = ReleaseOptions(
        load_profile="spike", duration_s=30, p95_ms=120.0, approval_timeout_s=60
    )
    assert options.to_overrides() == {
        "load": {"profile": "spike", "duration_s": 30},
        "slos": {"p95_ms": 120.0},
        "approval": {"timeout_s": 60},
    }


def test_the_form_refuses_nonsense_and_describes_every_field():
    with pytest.raises(ValidationError):
        ReleaseOptions(users=0)
    with pytest.raises(ValidationError):
        ReleaseOptions(load_profile="tsunami")
    schema = ReleaseOptions.model_json_schema()
    assert all(field.get("description") for field in schema["properties"].values())


def test_the_release_flow_exposes_a_typed_form():
    from flows.release import release

    schema = release.parameters.model_dump()
    props = schema["properties"]
    assert props["model_path"]["default"] == "examples/credit"
    assert "relative to the repository root" in props["model_path"]["description"]
    assert "ReleaseOptions" in str(schema["definitions"])
