"""The model project a release builds: packed where the release starts, built from that pack.

A release never builds from the worker's own files. Whoever starts it (CI, a terminal, the
UI's launcher flow on the worker) packs the project folder into a deterministic tar, named by
its sha256, and stores it beside the bundles; the build step fetches exactly that pack,
re-hashes it and builds the bundle from it. With a git ref, the pack must be that ref's tree
of the folder, file for file: a checkout that differs fails, naming the files.

Packing rather than a checkout on the worker: the worker needs no repository access or
token, the build reads the very bytes the starter hashed (so an image CI pushed from the same
checkout carries the same bundle digest), and it works alike on every backend.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path

from pydantic import BaseModel

PACK_SUFFIX = ".tar"
SKIPPED_DIRS = {"__pycache__", ".ipynb_checkpoints"}


class SourceError(ValueError):
    """The project cannot be packed as asked (a ref it does not match, no git), or a stored
    pack is missing or damaged; the message names the folder, ref or files."""


class ProjectSource(BaseModel):
    """Which source a release builds: the pack's digest and where it was packed from."""

    model: str
    digest: str
    path: str
    packed_by: str
    host: str
    files: int
    git_ref: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    repository: str | None = None

    def describe(self) -> str:
        if self.git_commit is None:
            where = "not a git checkout"
        else:
            where = f"commit {self.git_commit[:12]}"
            if self.git_ref and not self.git_commit.startswith(self.git_ref):
                where += f" (ref {self.git_ref})"
            if self.git_dirty:
                where += " with uncommitted changes"
        origin = f" of {self.repository}" if self.repository else ""
        return (
            f"`{self.path}`{origin} at {where}, packed by {self.packed_by} on {self.host} "
            f"({self.files} files, pack {self.digest[:19]})"
        )


def _git(folder: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(folder), *args], input=stdin, capture_output=True, text=True, check=False
    )


def _in_git(folder: Path) -> bool:
    return shutil.which("git") is not None and _git(folder, "rev-parse").returncode == 0


def _files_at_ref(folder: Path, ref: str) -> tuple[str, list[str]]:
    """The commit `ref` names and the folder's files in its tree, checked against the disk."""
    commit = _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.strip()
    if not commit:
        raise SourceError(f"{folder}: git ref {ref!r} is not a commit of this repository")
    listed = _git(folder, "ls-tree", "-r", "-z", "--full-name", commit, "--", ".")
    entries = [line.split("\t", 1) for line in listed.stdout.split("\0") if line]
    if not entries:
        raise SourceError(f"{folder}: the tree of {ref} ({commit[:12]}) has no files here")
    top = Path(_git(folder, "rev-parse", "--show-toplevel").stdout.strip())
    prefix = _git(folder, "rev-parse", "--show-prefix").stdout.strip()
    expected = {}
    for meta, name in entries:
        mode, kind, blob = meta.split()
        if kind != "blob" or mode == "120000":
            raise SourceError(f"{top / name}: a {kind} {mode} in {ref}; only files are released")
        expected[name] = blob
    names = sorted(expected)
    on_disk = [n for n in names if (top / n).is_file()]
    hashed = _git(top, "hash-object", "--stdin-paths", stdin="\n".join(on_disk) + "\n")
    actual = dict(zip(on_disk, hashed.stdout.split(), strict=False))
    differ = [n for n in names if actual.get(n) != expected[n]]
    if differ:
        listed_names = ", ".join(differ[:5]) + (
            f" and {len(differ) - 5} more" if differ[5:] else ""
        )
        raise SourceError(
            f"{folder}: the checkout differs from the tree of {ref} ({commit[:12]}): "
            f"{listed_names}. Commit them (or release the working tree without a ref)."
        )
    return commit, [n.removeprefix(prefix) for n in names]


def _working_files(folder: Path) -> list[str]:
    """Every file of the folder that is not ignored by git (or hidden, outside git)."""
    if _in_git(folder):
        listed = _git(folder, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        names = [n for n in listed.stdout.split("\0") if n and (folder / n).is_file()]
        return sorted(set(names))
    names = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        hidden = any(p.startswith(".") or p in SKIPPED_DIRS for p in rel.parts)
        if path.is_file() and not path.is_symlink() and not hidden:
            names.append(rel.as_posix())
    return sorted(names)


def _write_pack(folder: Path, names: list[str], archive: Path) -> str:
    """A tar with fixed owners, times and modes, so the same files give the same digest."""
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            path = folder / name
            if path.is_symlink():  # its target may be any readable file on this machine
                raise SourceError(f"{path}: a symbolic link; only files are released")
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return _digest(archive)


def _digest(archive: Path) -> str:
    sha = hashlib.sha256()
    with archive.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return "sha256:" + sha.hexdigest()


def pack_project(
    folder: Path, *, model: str, git_ref: str | None, packed_by: str, into: Path
) -> tuple[ProjectSource, Path]:
    """Pack a project folder into `into`; with `git_ref`, only if it is that ref's tree."""
    folder = folder.resolve()
    git: dict = {}
    if git_ref is not None:
        if not _in_git(folder):
            raise SourceError(
                f"{folder}: not in a git checkout, so it cannot be checked against {git_ref!r}"
            )
        commit, names = _files_at_ref(folder, git_ref)
        git = {"git_ref": git_ref, "git_commit": commit, "git_dirty": False}
    else:
        names = _working_files(folder)
        if _in_git(folder):
            head = _git(folder, "rev-parse", "HEAD").stdout.strip() or None
            dirty = bool(_git(folder, "status", "--porcelain", "--", ".").stdout)
            git = {"git_commit": head, "git_dirty": dirty}
    if git and (remote := _git(folder, "remote", "get-url", "origin").stdout.strip()):
        git["repository"] = remote
    into.mkdir(parents=True, exist_ok=True)
    archive = into / f"source{PACK_SUFFIX}"
    digest = _write_pack(folder, names, archive)
    source = ProjectSource(
        model=model, digest=digest, path=str(folder), packed_by=packed_by,
        host=socket.gethostname(), files=len(names), **git,
    )  # fmt: skip
    return source, archive


def unpack_source(archive: Path, source: ProjectSource, into: Path) -> Path:
    """Unpack a stored pack into `into` after checking it is the pack `source` names."""
    if not archive.is_file():
        raise SourceError(f"{source.model}: source pack {source.digest} is not in the store")
    if (found := _digest(archive)) != source.digest:
        raise SourceError(f"{archive}: holds {found}, not the source pack {source.digest}")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")  # refuses absolute paths, `..` and links out
    return into


def build_from_source(source: ProjectSource, registry, *, trust_pickle: bool):
    """The bundle of exactly the stored pack `source` names; it records that source."""
    import tempfile

    from fearless.bundles.bundle import build_bundle

    with tempfile.TemporaryDirectory(prefix="fearless-source-") as tmp:
        project = unpack_source(registry.get_source(source.model, source.digest), source, Path(tmp))
        return build_bundle(
            project, registry, trust_pickle=trust_pickle, source=source.model_dump(mode="json")
        )
