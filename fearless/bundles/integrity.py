"""A bundle's digest, and the check that a folder still holds exactly what its manifest lists.

The digest is sha256 over a canonical JSON of the bundle's name and the sha256 of each file.
Opening a bundle re-hashes its files against the manifest, so a model file swapped after the
build (or a file added beside it) is refused by name. Hashing a bundle costs a read of its
files: a folder whose files (names, sizes, modification times) are as they were when last
verified in this process is not hashed again.
"""

from __future__ import annotations

import hashlib
import json
import stat as stat_module
import threading
from pathlib import Path

_verified: dict[Path, tuple] = {}
_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def bundle_digest(name: str, files: dict[str, str]) -> str:
    """`sha256:<hex>` of a bundle named `name` whose files hash to `files` (name -> sha256)."""
    canonical = json.dumps({"name": name, "files": files}, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def is_plain_file_name(name: object) -> bool:
    """A manifest may list only plain file names: no folders, no `..`, nothing absolute."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
    )


def manifest_problem(manifest: object) -> str | None:
    """What makes a manifest unusable (not its files: see `content_problem`), or None."""
    if not isinstance(manifest, dict):
        return "the manifest is not a JSON object"
    files, name, digest = manifest.get("files"), manifest.get("name"), manifest.get("digest")
    if not isinstance(name, str) or not isinstance(digest, str) or not isinstance(files, dict):
        return "the manifest lacks its name, digest or files"
    odd = sorted(str(f) for f in files if not is_plain_file_name(f) or f == "manifest.json")
    if odd:
        return f"the manifest lists files that cannot be in a bundle: {odd}"
    if bundle_digest(name, files) != digest:
        return f"the manifest's digest {digest} is not the digest of the files it lists"
    return None


def content_problem(folder: Path, manifest: dict, manifest_name: str) -> str | None:
    """What differs between `folder` and its (well-formed) manifest, naming the file; None
    when every listed file is there with its recorded sha256 and nothing else is."""
    signature = _signature(folder)
    key = folder.resolve()
    with _lock:
        if _verified.get(key) == signature:
            return None
    listed = manifest["files"]
    present = {name for name, *_ in signature} - {manifest_name}
    missing, extra = sorted(set(listed) - present), sorted(present - set(listed))
    if missing:
        return f"{folder / missing[0]}: listed in the manifest but missing"
    if extra:
        return f"{folder / extra[0]}: not listed in the manifest (a file added after the build)"
    odd = [name for name, regular, *_ in signature if not regular]
    if odd:
        return f"{folder / odd[0]}: not a regular file (a bundle holds only files, no links)"
    for name in sorted(listed):
        actual = file_sha256(folder / name)
        if actual != listed[name]:
            return (
                f"{folder / name}: content does not match the manifest (sha256 {actual}, "
                f"built as {listed[name]}): the bundle was changed after it was built"
            )
    with _lock:
        _verified[key] = signature
    return None


def _signature(folder: Path) -> tuple:
    """Name, whether a regular file, size and modification time of every entry: what a change would touch."""
    entries = []
    for entry in sorted(folder.iterdir()):
        stat = entry.lstat()
        regular = stat_module.S_ISREG(stat.st_mode)
        entries.append((entry.name, regular, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(entries)
