import json

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import fearless
from fearless.bundles.bundle import BundleError
from fearless.bundles.model_files import load_model_file
from fearless.bundles.notebook import infer_schema, write_project
from fearless.cli import app
from fearless.registry.local import LocalRegistry
from fearless.spec import ColumnType, load_spec


@pytest.fixture(scope="module")
def fitted(credit_project):
    """The example's model and a labelled sample of its data."""
    model = load_model_file(credit_project / "model.skops", trust_pickle=False)
    frame = pd.read_parquet(credit_project / "reference.parquet").head(300)
    return model, frame.assign(default=(frame["debt_ratio"] > 0.5).astype("int64"))


def test_bundle_model_writes_a_valid_project_and_builds_the_same_digest_twice(fitted, tmp_path):
    model, frame = fitted
    registry = LocalRegistry(tmp_path / "registry")
    options = {"project_dir": tmp_path / "credit", "registry": registry, "load": {"users": 3}}
    first = fearless.bundle_model(model, frame, "credit", target="default", **options)
    second = fearless.bundle_model(model, frame, "credit", target="default", **options)
    assert first.digest == second.digest and first.path == second.path
    spec = load_spec(tmp_path / "credit")
    assert spec.load.users == 3 and str(spec.model) == "model.skops"
    assert spec.load.rate == 50 and spec.load.mode == "open"  # a rate is proposed, in the open
    assert "default" not in spec.column_names and len(spec.column_names) == 7
    assert spec.input_schema[5].values == sorted(frame["purpose"].unique())
    assert registry.models() == ["credit"] and (first.path / "model.skops").is_file()


def test_infer_schema_reads_types_categories_and_missing_values():
    frame = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "x": [0.5, np.nan, 1.5],
            "flag": [True, False, True],
            "colour": ["red", None, "blue"],
            "size": pd.Categorical(["s", "m", "s"], categories=["s", "m", "l"]),
        }
    )
    by_name = {c.name: c for c in infer_schema(frame)}
    assert [by_name[n].type for n in frame.columns] == [
        ColumnType.int,
        ColumnType.float,
        ColumnType.bool,
        ColumnType.category,
        ColumnType.category,
    ]
    assert by_name["x"].nullable and by_name["colour"].nullable and not by_name["n"].nullable
    assert by_name["colour"].values == ["blue", "red"] and by_name["size"].values == ["s", "m", "l"]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"when": pd.to_datetime(["2024-01-01"])}), "column 'when' is datetime64"),
        (pd.DataFrame({"mixed": ["a", 1]}), "column 'mixed' mixes text with int"),
    ],
)
def test_infer_schema_names_the_column_it_cannot_type(frame, message):
    with pytest.raises(BundleError, match=message):
        infer_schema(frame)


def test_write_project_errors_name_the_problem(fitted, tmp_path):
    model, frame = fitted
    with pytest.raises(BundleError, match="no rows"):
        write_project(model, frame.head(0), tmp_path / "a", name="credit")
    with pytest.raises(BundleError, match="target column 'label' is not in the data"):
        write_project(model, frame, tmp_path / "a", name="credit", target="label")
    with pytest.raises(BundleError, match="the model cannot score"):
        write_project(model, frame.drop(columns=["age"]), tmp_path / "a", name="credit")
    with pytest.raises(BundleError, match="name"):
        write_project(model, frame, tmp_path / "a", name="Not A Name", target="default")
    with pytest.raises(BundleError, match="slos"):
        write_project(model, frame, tmp_path / "a", name="credit", slos={"p95_ms": -1})
    assert not (tmp_path / "a").exists()
    write_project(model, frame, tmp_path / "b", name="credit", target="default")
    with pytest.raises(BundleError, match="already exists"):
        write_project(model, frame, tmp_path / "b", name="credit", target="default")


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path / "state"))
    return CliRunner()


def test_init_from_files_same_digest_twice(fitted, tmp_path, cli_env):
    model, frame = fitted
    joblib.dump(model, tmp_path / "model.joblib")
    frame.to_csv(tmp_path / "data.csv", index=False)
    args = ["init", str(tmp_path / "proj"), "--model", str(tmp_path / "model.joblib")]
    args += ["--data", str(tmp_path / "data.csv"), "--name", "credit", "--target", "default"]

    refused = cli_env.invoke(app, args)
    assert refused.exit_code == 2 and "--trust-pickle" in refused.output
    first = cli_env.invoke(app, [*args, "--trust-pickle"])
    assert first.exit_code == 0, first.output
    again = cli_env.invoke(app, [*args, "--trust-pickle"])
    assert again.exit_code == 2 and "already exists" in again.output
    forced = cli_env.invoke(app, [*args, "--trust-pickle", "--force"])
    digest = first.output.split()[-1]
    assert forced.exit_code == 0 and forced.output.split()[-1] == digest
    assert load_spec(tmp_path / "proj").name == "credit"
    manifest = json.loads(
        (tmp_path / "state/registry/credit/bundles" / digest[7:] / "manifest.json").read_text()
    )
    assert manifest["digest"] == digest


def test_init_copies_a_skops_model_as_is(fitted, tmp_path, cli_env):
    import skops.io as sio

    model, frame = fitted
    sio.dump(model, tmp_path / "model.skops")
    frame.drop(columns=["default"]).to_parquet(tmp_path / "data.parquet")
    args = ["init", str(tmp_path / "proj"), "--model", str(tmp_path / "model.skops")]
    result = cli_env.invoke(app, [*args, "--data", str(tmp_path / "data.parquet")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "proj/model.skops").read_bytes() == (tmp_path / "model.skops").read_bytes()
    assert yaml.safe_load((tmp_path / "proj/fearless.yaml").read_text())["name"] == "proj"


@pytest.mark.parametrize(
    ("data", "message"),
    [("missing.csv", "data file not found"), ("empty.csv", "no rows")],
)
def test_init_bad_data_file(fitted, tmp_path, cli_env, data, message):
    import skops.io as sio

    sio.dump(fitted[0], tmp_path / "model.skops")
    (tmp_path / "empty.csv").write_text("age,income\n")
    args = ["init", str(tmp_path / "proj"), "--model", str(tmp_path / "model.skops")]
    result = cli_env.invoke(app, [*args, "--data", str(tmp_path / data)])
    assert result.exit_code == 2 and message in result.output
