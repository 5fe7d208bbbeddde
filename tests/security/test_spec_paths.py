"""A spec's paths stay inside its project: otherwise a project could copy any file the build
can read (a key, another project's data) into its bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fearless.spec import SpecError, load_spec, with_overrides

VALID = {
    "name": "credit",
    "model": "model.skops",
    "reference_data": "data/reference.parquet",
    "schema": {"age": "int"},
}


def write(folder: Path, data: dict) -> Path:
    path = folder / "fearless.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("field", ["model", "reference_data"])
@pytest.mark.parametrize("value", ["/etc/passwd", "../other/model.skops", "data/../../x.parquet"])
def test_a_path_outside_the_project_is_refused_naming_the_field_and_file(tmp_path, field, value):
    path = write(tmp_path, {**VALID, field: value})

    with pytest.raises(SpecError) as refused:
        load_spec(path)

    message = str(refused.value)
    assert str(path) in message and field in message and value in message


def test_an_override_cannot_point_outside_the_project_either(tmp_path):
    spec = load_spec(write(tmp_path, VALID))

    with pytest.raises(SpecError, match=r"model.*/etc/passwd"):
        with_overrides(spec, {"model": "/etc/passwd"}, "cli")


def test_paths_inside_the_project_are_kept(tmp_path):
    spec = load_spec(write(tmp_path, {**VALID, "model": "models/./model.skops"}))

    assert spec.model == Path("models/model.skops")
    assert spec.reference_data == Path("data/reference.parquet")
