"""The model API never loads a pickle unless told to, and a bundle is what its manifest says:
a file changed after the build (a trojan model) is refused by name when the bundle is opened,
and an S3 bundle brings down only the files its manifest lists."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from fearless.bundles.bundle import MANIFEST, BundleError, open_bundle, stage_bundle
from fearless.registry.local import LocalRegistry
from fearless.registry.s3 import S3Registry
from fearless.serving.__main__ import _parse
from fearless.serving.predictor import Predictor
from fearless.serving.served import ServingOptions


class Payload:
    """A pickle that creates `marker` when it is loaded: any pickle can run code like this."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def bundle(credit_project, tmp_path) -> Path:
    folder = tmp_path / "bundle"
    stage_bundle(credit_project, folder)
    return folder


def test_the_model_api_trusts_no_pickle_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("FEARLESS_TRUST_PICKLE", raising=False)
    marker, model = tmp_path / "pwned", tmp_path / "model.joblib"
    model.write_bytes(pickle.dumps(Payload(marker)))

    assert ServingOptions().trust_pickle is False
    assert _parse(["--bundle", "b"]).trust_pickle is False
    with pytest.raises(ValueError, match="pickle"):
        Predictor.load(model, [])
    assert not marker.exists()


def test_the_model_api_trusts_pickles_only_when_told(monkeypatch):
    monkeypatch.delenv("FEARLESS_TRUST_PICKLE", raising=False)
    assert _parse(["--bundle", "b", "--trust-pickle"]).trust_pickle is True
    monkeypatch.setenv("FEARLESS_TRUST_PICKLE", "1")
    assert _parse(["--bundle", "b"]).trust_pickle is True
    assert _parse(["--bundle", "b", "--no-trust-pickle"]).trust_pickle is False


def test_a_trojan_model_file_is_refused_by_name(bundle, credit_challenger):
    shutil.copyfile(credit_challenger / "model.skops", bundle / "model.skops")

    with pytest.raises(BundleError, match=r"model\.skops.*does not match"):
        open_bundle(bundle)


@pytest.mark.parametrize("change", ["added", "removed", "manifest"])
def test_a_bundle_whose_files_differ_from_its_manifest_is_refused(bundle, change):
    if change == "added":
        (bundle / "sitecustomize.py").write_text("import os\n")
    elif change == "removed":
        (bundle / "reference_stats.json").unlink()
    else:  # the manifest rewritten to claim another digest for the same files
        manifest = json.loads((bundle / MANIFEST).read_text())
        manifest["digest"] = "sha256:" + "0" * 64
        (bundle / MANIFEST).write_text(json.dumps(manifest))

    with pytest.raises(BundleError, match=str(bundle)):
        open_bundle(bundle)


def test_a_bundle_changed_after_a_first_open_is_still_refused(bundle, credit_challenger):
    assert open_bundle(bundle).spec.name == "credit"
    shutil.copyfile(credit_challenger / "model.skops", bundle / "model.skops")

    with pytest.raises(BundleError, match="model.skops"):
        open_bundle(bundle)


def test_the_model_api_will_not_serve_a_trojan_bundle(bundle, credit_challenger, monkeypatch):
    import uvicorn

    from fearless.serving.__main__ import main

    def served(*args, **kwargs):
        raise AssertionError("the trojan bundle was served")

    monkeypatch.setattr(uvicorn, "run", served)
    shutil.copyfile(credit_challenger / "model.skops", bundle / "model.skops")

    with pytest.raises(SystemExit, match="model.skops"):
        main(["--bundle", str(bundle), "--port", "1"])


def test_a_registry_answers_only_the_digest_asked_for(bundle, tmp_path):
    registry = LocalRegistry(tmp_path / "registry")
    digest = json.loads((bundle / MANIFEST).read_text())["digest"]
    stored = registry.store_bundle(bundle, digest)
    other = "sha256:" + "1" * 64
    shutil.copytree(stored.path, stored.path.with_name(other.removeprefix("sha256:")))

    with pytest.raises(BundleError, match="digest"):
        registry.get_bundle("credit", other)


class BucketOf:
    """A minimal S3 client over a dict of keys: what `S3Registry.get_bundle` reads."""

    exceptions = SimpleNamespace(NoSuchKey=KeyError)

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_paginator(self, _):
        def paginate(Bucket, Prefix):
            return [{"Contents": [{"Key": k} for k in self.objects if k.startswith(Prefix)]}]

        return SimpleNamespace(paginate=paginate)

    def download_file(self, bucket, key, filename):
        Path(filename).write_bytes(self.objects[key])


def _uploaded(bundle: Path) -> tuple[str, dict[str, bytes]]:
    digest = json.loads((bundle / MANIFEST).read_text())["digest"]
    prefix = f"p/credit/bundles/{digest.removeprefix('sha256:')}/"
    return digest, {prefix + f.name: f.read_bytes() for f in bundle.iterdir()}


@pytest.mark.parametrize("extra", ["sub/x.py", "", "../x.py", "a/../../x.py"])
def test_an_s3_bundle_brings_only_its_manifest_files_into_the_cache(bundle, tmp_path, extra):
    digest, objects = _uploaded(bundle)
    prefix = next(iter(objects)).rsplit("/", 1)[0] + "/"
    objects[prefix + extra] = b"import os\n"
    cache = tmp_path / "cache"

    got = S3Registry(BucketOf(objects), "b", "p", cache).get_bundle("credit", digest)

    assert sorted(p.name for p in got.path.iterdir()) == sorted(p.name for p in bundle.iterdir())
    assert not (tmp_path / "x.py").exists() and not (cache / "credit" / "x.py").exists()


def test_a_trojan_s3_bundle_is_refused_and_not_cached(bundle, credit_challenger, tmp_path):
    digest, objects = _uploaded(bundle)
    model_key = next(k for k in objects if k.endswith("model.skops"))
    objects[model_key] = (credit_challenger / "model.skops").read_bytes()
    cache = tmp_path / "cache"

    with pytest.raises(BundleError, match="model.skops"):
        S3Registry(BucketOf(objects), "b", "p", cache).get_bundle("credit", digest)

    assert not (cache / "credit" / "bundles" / digest.removeprefix("sha256:")).exists()
