"""The model project a release builds: packed where the release starts, built from that pack.

A release never builds from the worker's own files. Whoever starts it (CI, a terminal, the
UI's launcher flow on the worker) packs what the build reads, the spec and the model file and
reference data it names, into a deterministic tar named by its sha256, and stores it beside
the bundles; the build step fetches exactly that pack, re-hashes it and builds the bundle
from it. With a git ref, each of those files must be that ref's: one that differs, or that
the ref does not hold (ignored, never committed), fails, named.

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
    git_author: str | None = None  # "Name <email>" of the commit's author
    user: str | None = None  # who ran the starting command (CI's actor), where known

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


def _check_at_ref(folder: Path, ref: str, names: list[str]) -> str:
    """The commit `ref` names, once each of `names` (relative to `folder`) is shown to be in
    its tree and the same on disk; else a SourceError naming the files."""
    commit = _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.strip()
    if not commit:
        raise SourceError(f"{folder}: git ref {ref!r} is not a commit of this repository")
    listed = _git(folder, "ls-tree", "-z", commit, "--", *names)
    blobs = {}
    for line in filter(None, listed.stdout.split("\0")):
        meta, name = line.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind != "blob" or mode == "120000":
            raise SourceError(f"{folder / name}: a {kind} {mode} in {ref}; only files are released")
        blobs[name] = blob
    missing = [n for n in names if n not in blobs]
    if missing:
        raise SourceError(
            f"{folder}: {_some(missing)} not in the tree of {ref} ({commit[:12]}): ignored or "
            "never committed. Commit it (large files with git LFS), or release without a ref."
        )
    # hash-object reads paths from the top of the checkout, and applies its filters (LFS)
    prefix = _git(folder, "rev-parse", "--show-prefix").stdout.strip()
    paths = "\n".join(prefix + n for n in names) + "\n"
    hashed = _git(folder, "hash-object", "--stdin-paths", stdin=paths)
    differ = [n for n, h in zip(names, hashed.stdout.split(), strict=False) if h != blobs[n]]
    if differ or len(hashed.stdout.split()) != len(names):
        raise SourceError(
            f"{folder}: the checkout differs from the tree of {ref} ({commit[:12]}): "
            f"{_some(differ or names)}. Commit them (or release the working tree without a ref)."
        )
    return commit


def _some(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if names[5:] else "")


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
    folder: Path,
    files: list[str],
    *,
    model: str,
    git_ref: str | None,
    packed_by: str,
    into: Path,
    user: str | None = None,
) -> tuple[ProjectSource, Path]:
    """Pack the project's `files` (relative to `folder`: its spec and what the spec names)
    into `into`; with `git_ref`, only if each is that ref's file. `user` is who started it."""
    folder = folder.resolve()
    names = sorted(set(files))
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise SourceError(f"{folder}: {_some(missing)} not found")
    git: dict = {}
    if git_ref is not None:
        if not _in_git(folder):
            raise SourceError(
                f"{folder}: not in a git checkout, so it cannot be checked against {git_ref!r}"
            )
        git = {"git_ref": git_ref, "git_commit": _check_at_ref(folder, git_ref, names)}
        git["git_dirty"] = False
    elif _in_git(folder):
        head = _git(folder, "rev-parse", "HEAD").stdout.strip() or None
        # ignored files count: a model file never committed is not that commit's
        dirty = bool(_git(folder, "status", "--porcelain", "--ignored", "--", *names).stdout)
        git = {"git_commit": head, "git_dirty": dirty}
    if git.get("git_commit"):
        author = _git(folder, "log", "-1", "--format=%an <%ae>", git["git_commit"]).stdout.strip()
        git["git_author"] = author or None
    if git and (remote := _git(folder, "remote", "get-url", "origin").stdout.strip()):
        git["repository"] = without_credentials(remote)
    into.mkdir(parents=True, exist_ok=True)
    archive = into / f"source{PACK_SUFFIX}"
    digest = _write_pack(folder, names, archive)
    source = ProjectSource(
        model=model, digest=digest, path=str(folder), packed_by=packed_by, user=user,
        host=socket.gethostname(), files=len(names), **git,
    )  # fmt: skip
    return source, archive


def without_credentials(url: str) -> str:
    """A remote's URL without the user and token some CI checkouts put in it
    (https://gitlab-ci-token:TOKEN@host/...): it is shown in logs and the evidence."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


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
