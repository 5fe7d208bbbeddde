"""Model files: skops loads, pickle only when trusted, and every broken file is a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path

import joblib
import pandas as pd
import pytest
import skops.io as sio

from fearless.bundles.model_files import ModelFileError, load_model_file


@pytest.fixture(scope="module")
def model(credit_project):
    return load_model_file(credit_project / "model.skops", trust_pickle=False)


@pytest.fixture(scope="module")
def joblib_file(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pickled") / "model.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="module")
def frame(credit_project) -> pd.DataFrame:
    return pd.read_parquet(credit_project / "reference.parquet").head(20)


def test_a_skops_file_loads_without_trusting_pickle(model, frame, tmp_path):
    sio.dump(model, tmp_path / "model.skops")

    loaded = load_model_file(tmp_path / "model.skops", trust_pickle=False)

    assert loaded.predict(frame).tolist() == model.predict(frame).tolist()


def test_a_trusted_joblib_file_loads(joblib_file, model, frame):
    loaded = load_model_file(joblib_file, trust_pickle=True)

    assert loaded.predict_proba(frame).tolist() == model.predict_proba(frame).tolist()


def test_a_pickle_is_refused_without_trust(joblib_file):
    with pytest.raises(ModelFileError, match=r"not trusted.*skops\.io\.dump"):
        load_model_file(joblib_file, trust_pickle=False)


@pytest.mark.parametrize("suffix", [".joblib", ".skops"])
def test_a_truncated_file_says_so(joblib_file, model, tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".skops":
        sio.dump(model, whole)
    else:
        shutil.copyfile(joblib_file, whole)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    with pytest.raises(ModelFileError, match="truncated or corrupt") as error:
        load_model_file(cut, trust_pickle=True)

    assert str(cut) in str(error.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("model.joblib", b"%PDF-1.7 a report", "not a pickle or joblib file"),
        ("model.skops", b"\x89PNG\r\n\x1a\n image", "not a skops file"),
        ("model.onnx", b"\x08\x07onnx", "unknown model file type '.onnx'"),
        ("model.joblib", b"", "the file is empty"),
    ],
)
def test_a_foreign_file_is_named_and_refused(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(ModelFileError, match=message) as error:
        load_model_file(path, trust_pickle=True)

    assert str(path) in str(error.value)


def test_a_pickle_of_something_else_is_not_a_model(tmp_path):
    joblib.dump({"weights": [1, 2, 3]}, tmp_path / "model.joblib")

    with pytest.raises(ModelFileError, match="loaded a dict, which has no predict"):
        load_model_file(tmp_path / "model.joblib", trust_pickle=True)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="model file not found"):
        load_model_file(Path(tmp_path / "absent.skops"), trust_pickle=False)
