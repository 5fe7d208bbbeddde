import json
import shutil

import pandas as pd
import pytest

from fearless.bundles.bundle import BundleError, build_bundle, open_bundle, stage_bundle
from fearless.registry.local import LocalRegistry


def test_same_inputs_same_digest_and_build_cache(credit_project, tmp_path):
    registry = LocalRegistry(tmp_path / "registry")
    first = build_bundle(credit_project, registry)
    second = build_bundle(credit_project, registry)
    assert first.digest == second.digest and first.path == second.path
    assert first.digest == stage_bundle(credit_project, tmp_path / "again")
    assert open_bundle(first.path).spec.name == "credit"


def test_bundle_holds_what_it_promises(credit_project, tmp_path):
    bundle = build_bundle(credit_project, LocalRegistry(tmp_path))
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert set(manifest["files"]) >= {
        "fearless.yaml",
        "model.skops",
        "reference.parquet",
        "schema.json",
        "reference_stats.json",
        "requirements.txt",
        "Dockerfile",
    }
    dockerfile = (bundle.path / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile and "HEALTHCHECK" in dockerfile
    assert "scikit-learn==" in (bundle.path / "requirements.txt").read_text()


def test_changed_model_changes_digest(project_copy, credit_challenger, tmp_path):
    before = stage_bundle(project_copy, tmp_path / "a")
    shutil.copyfile(credit_challenger / "model.skops", project_copy / "model.skops")
    assert stage_bundle(project_copy, tmp_path / "b") != before


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a model at all", "not a loadable model file"), (b"", "not a loadable model file")],
)
def test_broken_model_file_is_named(project_copy, tmp_path, content, message):
    (project_copy / "model.skops").write_bytes(content)
    with pytest.raises(BundleError, match=message) as err:
        stage_bundle(project_copy, tmp_path / "out")
    assert "model.skops" in str(err.value)


def test_truncated_model_file(project_copy, tmp_path):
    model = project_copy / "model.skops"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(BundleError, match="model.skops"):
        stage_bundle(project_copy, tmp_path / "out")


def test_missing_model_file(project_copy, tmp_path):
    (project_copy / "model.skops").unlink()
    with pytest.raises(BundleError, match="model file not found"):
        stage_bundle(project_copy, tmp_path / "out")


def _rewrite_reference(project, change):
    path = project / "reference.parquet"
    frame = pd.read_parquet(path)
    change(frame).to_parquet(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["age"]), r"missing columns \['age'\]"),
        (lambda f: f.assign(surprise=1), r"columns not in the schema \['surprise'\]"),
        (lambda f: f.assign(age=f["age"].astype(str)), "column 'age' is object, schema says int"),
        (lambda f: f.assign(income=None), "column 'income'"),
    ],
)
def test_reference_not_matching_schema(project_copy, tmp_path, change, message):
    _rewrite_reference(project_copy, change)
    with pytest.raises(BundleError, match=message) as err:
        stage_bundle(project_copy, tmp_path / "out")
    assert "reference.parquet" in str(err.value)


def test_pickle_files_are_refused_unless_trusted_and_skops_needs_no_trust(project_copy, tmp_path):
    import joblib
    import yaml

    from fearless.bundles.model_files import load_model_file

    assert stage_bundle(project_copy, tmp_path / "skops").startswith("sha256:")
    model = load_model_file(project_copy / "model.skops", trust_pickle=False)
    joblib.dump(model, project_copy / "model.joblib")
    spec_path = project_copy / "fearless.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["model"] = "model.joblib"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(BundleError, match="model.joblib.*FEARLESS_TRUST_PICKLE"):
        stage_bundle(project_copy, tmp_path / "refused")
    digest = stage_bundle(project_copy, tmp_path / "trusted", trust_pickle=True)
    assert digest.startswith("sha256:") and (tmp_path / "trusted" / "model.joblib").is_file()


def test_build_cache_keeps_the_first_build(credit_project, tmp_path):
    registry = LocalRegistry(tmp_path / "registry")
    first = build_bundle(credit_project, registry)
    stored = (first.path / "manifest.json").stat().st_mtime_ns
    again = build_bundle(credit_project, registry)
    assert again.path == first.path and again.digest == first.digest
    assert (again.path / "manifest.json").stat().st_mtime_ns == stored


def _git(cwd, *args):
    import subprocess

    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run(
        ["git", *identity, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_manifest_records_requirements_and_git_source_outside_the_digest(project_copy, tmp_path):
    outside = stage_bundle(project_copy, tmp_path / "no-git")
    assert (
        json.loads((tmp_path / "no-git/manifest.json").read_text())["source"]["git_commit"] is None
    )
    _git(project_copy, "init", "-q")
    _git(project_copy, "add", ".")
    _git(project_copy, "commit", "-q", "-m", "model")
    head = _git(project_copy, "rev-parse", "HEAD")
    assert stage_bundle(project_copy, tmp_path / "clean") == outside
    manifest = json.loads((tmp_path / "clean/manifest.json").read_text())
    assert manifest["source"]["git_commit"] == head and manifest["source"]["git_dirty"] is False
    requirements = (tmp_path / "clean/requirements.txt").read_text().splitlines()
    pinned = {line.split("==")[0] for line in requirements if "==" in line}
    assert {"scikit-learn", "skops", "pandas", "fastapi", "uvicorn", "pydantic"} <= pinned
    assert not pinned & {"xgboost-cpu", "xgboost", "lightgbm"}  # only where the model holds one
    assert "requirements.txt" in manifest["files"]
    (project_copy / "notes.txt").write_text("uncommitted")
    stage_bundle(project_copy, tmp_path / "dirty")
    source = json.loads((tmp_path / "dirty/manifest.json").read_text())["source"]
    assert source["git_dirty"] is True
