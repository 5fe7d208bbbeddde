"""Identifiers that become parts of paths: release ids, model names, roles, aliases, digests.

Each is checked against one strict pattern before it names a file or folder, and a path whose
parts come from outside is checked to stay inside its root, so a release id `../victim`
cannot reach past the state dir. Imports nothing from fearless: any part may use it.
"""

from __future__ import annotations

import re
from pathlib import Path

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,127}")


class InvalidId(ValueError):
    """An identifier that cannot safely name a file or folder."""


def checked_id(value: str, kind: str) -> str:
    """`value`, if it is lowercase letters, digits, `-` and `_` (starting with a letter or
    digit, at most 128); else an InvalidId naming `kind` ("release id", "model name"...)."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidId(
            f"{value!r} is not a valid {kind}: expected lowercase letters, digits, '-' and '_'"
        )
    return value


def checked_digest(digest: str) -> str:
    """The part of a `sha256:<hex>` digest that names a folder, checked like an id."""
    return checked_id(digest.removeprefix("sha256:"), "digest")


def path_inside(root: Path, *parts: str) -> Path:
    """`root / parts`, refused unless it resolves (links followed) inside `root`."""
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise InvalidId(f"{path} is outside {root}")
    return path
