"""Identifiers that become paths (release ids, model names, roles, aliases, digests) are
checked first: `teardown("../victim")` once removed a folder beside the environments'."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fearless.environments.local import LocalEnvironments
from fearless.ids import InvalidId, checked_id, path_inside
from fearless.registry.local import LocalRegistry
from fearless.registry.s3 import S3Registry
from fearless.release.runs import finish_release
from fearless.settings import StatePaths

ESCAPES = ["../victim", "..", ".", "a/../../victim", "/tmp/victim", "", "x\x00y", "Victim/.."]


class UntouchedS3:
    """An S3 client no refused identifier may reach: every call fails the test."""

    exceptions = SimpleNamespace(NoSuchKey=LookupError)

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise AssertionError(f"s3.{name} was called")

        return call


@pytest.fixture
def state(tmp_path) -> Path:
    """A state dir with a folder beside `environments/` that nothing may remove."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    (tmp_path / "environments").mkdir()
    return tmp_path


@pytest.mark.parametrize("release_id", ESCAPES)
def test_teardown_of_a_traversing_release_id_is_refused_and_deletes_nothing(state, release_id):
    environments = LocalEnvironments(state / "environments", state / "runs")

    with pytest.raises(InvalidId, match="release id"):
        environments.teardown(release_id)

    assert (state / "victim" / "keep.txt").read_text() == "keep"


def test_finish_release_refuses_a_traversing_release_id_before_touching_anything(state):
    services = SimpleNamespace(environments=LocalEnvironments(state / "environments", state))

    with pytest.raises(InvalidId, match="release id"):
        finish_release(services, "../victim")

    assert (state / "victim" / "keep.txt").is_file()


def test_a_role_cannot_escape_either(state):
    environments = LocalEnvironments(state / "environments", state / "runs")
    with pytest.raises(InvalidId, match="role"):
        environments.inference_log_dir(SimpleNamespace(release_id="credit-1", role="../../x"))


def test_a_run_dir_is_only_for_a_release_id(tmp_path):
    paths = StatePaths(tmp_path)
    assert paths.run_dir("credit-1a2b3c4d") == tmp_path / "runs" / "credit-1a2b3c4d"
    with pytest.raises(InvalidId):
        paths.run_dir("../../etc")


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (lambda r: r.get_bundle("../victim", "sha256:ab"), "model name"),
        (lambda r: r.get_bundle("credit", "sha256:../../victim"), "digest"),
        (lambda r: r.get_alias("credit", "../../victim/keep"), "alias"),
        (
            lambda r: r.set_alias("../victim", "x", None, expected=None, actor="a", reason=""),
            "model name",
        ),
    ],
)
def test_the_local_registry_refuses_identifiers_that_leave_it(state, call, kind):
    with pytest.raises(InvalidId, match=kind):
        call(LocalRegistry(state / "registry"))
    assert sorted(p.name for p in state.iterdir()) == ["environments", "victim"]


@pytest.mark.parametrize(
    "call",
    [lambda r: r.get_bundle("../victim", "sha256:ab"), lambda r: r.get_alias("..", "production")],
)
def test_the_s3_registry_refuses_identifiers_that_leave_it(state, call):
    registry = S3Registry(s3=UntouchedS3(), bucket="b", prefix="p", cache=state / "cache")
    with pytest.raises(InvalidId, match="model name"):
        call(registry)


def test_identifiers_that_are_names_pass():
    for value in ["credit", "credit-1a2b3c4d", "candidate", "production", "0f" * 32]:
        assert checked_id(value, "id") == value


def test_path_inside_refuses_a_symlink_out_of_its_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    assert path_inside(root, "a", "b") == root / "a" / "b"
    with pytest.raises(InvalidId, match="outside"):
        path_inside(root, "link", "x")


def test_the_teardown_command_refuses_a_traversing_release_id(state):
    from typer.testing import CliRunner

    from fearless.cli import app

    out = CliRunner().invoke(app, ["teardown", "../victim"])

    assert out.exit_code == 2 and "not a valid release id" in out.output
    assert (state / "victim" / "keep.txt").is_file()


def test_an_inference_log_key_naming_a_parent_folder_is_not_fetched(tmp_path):
    from fearless.aws.inference_logs import S3Location, sync_inference_logs

    body = b'{"ts": "2024-01-01T00:00:00Z"}\n'
    chunk = "2024-01-01/0.000000000000-000000000001.jsonl"
    keys = [f"logs/{model}/{chunk}" for model in ("..", "credit")]
    fetched_keys = []

    class BucketWithATraversingKey:
        def get_paginator(self, _):
            page = {"Contents": [{"Key": k, "Size": len(body), "ETag": "?"} for k in keys]}
            return SimpleNamespace(paginate=lambda **_: [page])

        def get_object(self, Bucket, Key, **_):
            fetched_keys.append(Key)
            raise OSError("stop here")

    dest = tmp_path / "dest"
    with pytest.raises(OSError, match="stop here"):
        sync_inference_logs(BucketWithATraversingKey(), S3Location("b", "logs"), dest)

    assert fetched_keys == [f"logs/credit/{chunk}"]
