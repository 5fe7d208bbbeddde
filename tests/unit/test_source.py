"""Source packs: a release builds exactly the project its starter packed, checked against git."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from fearless.bundles.bundle import MANIFEST
from fearless.bundles.source import SourceError, build_from_source, pack_project, unpack_source
from fearless.registry.local import LocalRegistry


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(credit_project, tmp_path) -> Path:
    """A team's repository: the credit project under models/credit, one commit."""
    root = tmp_path / "team-repo"
    shutil.copytree(credit_project, root / "models" / "credit")
    (root / ".gitignore").write_text("*.tmp\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "credit model")
    return root


FILES = ["fearless.yaml", "model.skops", "reference.parquet"]  # what the build reads


def pack(folder: Path, tmp_path: Path, ref: str | None = None, name: str = "pack"):
    return pack_project(
        folder, FILES, model="credit", git_ref=ref, packed_by="test", into=tmp_path / name
    )


def members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_a_ref_packs_that_refs_files_the_build_reads_and_records_the_commit(repo, tmp_path):
    (repo / "models" / "credit" / "notes.txt").write_text("in the folder, not read by the build")
    head = git(repo, "rev-parse", "HEAD")
    source, archive = pack(repo / "models" / "credit", tmp_path, ref="main")
    assert source.git_commit == head and source.git_ref == "main" and source.git_dirty is False
    assert members(archive) == FILES  # relative to the project folder, nothing else


def test_a_needed_file_the_ref_does_not_hold_is_refused_naming_it(credit_project, tmp_path):
    """The usual layout: model files are git-ignored, produced by training."""
    root = tmp_path / "ignoring-repo"
    shutil.copytree(credit_project, root)
    (root / ".gitignore").write_text("*.skops\n*.parquet\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "spec only")
    with pytest.raises(SourceError, match=r"model\.skops, reference\.parquet not in the tree"):
        pack(root, tmp_path, ref="main")
    # Without a ref the working tree is released as it is, ignored files too, and said so.
    source, archive = pack(root, tmp_path, name="working")
    assert members(archive) == FILES and source.git_dirty is True


def test_a_checkout_that_differs_from_its_ref_fails_naming_the_file(repo, tmp_path):
    spec = repo / "models" / "credit" / "fearless.yaml"
    spec.write_text(spec.read_text() + "\n# changed after the commit\n")
    with pytest.raises(SourceError, match=r"differs from the tree of main .*fearless\.yaml"):
        pack(repo / "models" / "credit", tmp_path, ref="main")


def test_a_ref_that_is_not_a_commit_or_a_folder_outside_git_fails_before_packing(
    repo, credit_project, tmp_path
):
    with pytest.raises(SourceError, match="'no-such-ref' is not a commit"):
        pack(repo / "models" / "credit", tmp_path, ref="no-such-ref")
    with pytest.raises(SourceError, match="not in a git checkout"):
        pack(credit_project, tmp_path, ref="main")


def test_without_a_ref_the_working_tree_is_packed_and_its_state_recorded(repo, tmp_path):
    folder = repo / "models" / "credit"
    source, _ = pack(folder, tmp_path, name="clean")
    assert source.git_commit == git(repo, "rev-parse", "HEAD") and source.git_dirty is False
    spec = folder / "fearless.yaml"
    spec.write_text(spec.read_text() + "\n")
    changed, _ = pack(folder, tmp_path, name="changed")
    assert changed.git_dirty is True and changed.digest != source.digest
    (folder / "model.skops").unlink()
    with pytest.raises(SourceError, match="model.skops not found"):
        pack(folder, tmp_path, name="missing")


def test_a_symbolic_link_in_the_folder_is_refused_not_followed(repo, tmp_path):
    folder = repo / "models" / "credit"
    (folder / "reference.parquet").unlink()
    (folder / "reference.parquet").symlink_to("/etc/hostname")
    with pytest.raises(SourceError, match="reference.parquet: a symbolic link"):
        pack(folder, tmp_path)


def test_the_same_files_give_the_same_digest_whatever_their_times(credit_project, tmp_path):
    first, _ = pack(credit_project, tmp_path, name="a")
    copy = Path(shutil.copytree(credit_project, tmp_path / "copy"))
    for path in copy.iterdir():
        os.utime(path, (1, 1))
    second, _ = pack(copy, tmp_path, name="b")
    assert first.digest == second.digest and first.git_commit is None
    (copy / "fearless.yaml").write_text((copy / "fearless.yaml").read_text() + "\n")
    assert pack(copy, tmp_path, name="c")[0].digest != first.digest


def test_a_pack_that_does_not_match_its_digest_is_refused(credit_project, tmp_path):
    source, archive = pack(credit_project, tmp_path)
    archive.write_bytes(archive.read_bytes()[:-1] + b"x")
    with pytest.raises(SourceError, match="not the source pack"):
        unpack_source(archive, source, tmp_path / "out")
    with pytest.raises(SourceError, match="is not in the store"):
        unpack_source(tmp_path / "missing.tar", source, tmp_path / "out")


def test_the_build_reads_the_stored_pack_not_the_folder_it_came_from(repo, tmp_path):
    registry = LocalRegistry(tmp_path / "registry")
    folder = repo / "models" / "credit"
    source, archive = pack(folder, tmp_path, ref="main")
    registry.store_source("credit", source.digest, archive)
    shutil.rmtree(repo)  # the starter's checkout is gone: only the pack remains
    bundle = build_from_source(source, registry, trust_pickle=False)
    recorded = json.loads((bundle.path / MANIFEST).read_text())["source"]
    assert recorded["digest"] == source.digest and recorded["git_commit"] == source.git_commit
    assert bundle.name == "credit"
