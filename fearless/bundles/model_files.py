"""Loading model files without running code they were not meant to carry.

A pickle (and a joblib file, which is pickle inside) can execute anything when it is loaded,
so it is loaded only when the caller trusts it. A `.skops` file is loaded with skops, and only
when every type and function it names is one skops trusts by default, one on Fearless's list
of what real scikit-learn models hold (`fearless.bundles.trusted_types`), or one the model
spec adds (`trusted_types`): names are matched in full, never by prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fearless.bundles.trusted_types import default_trusted_types

SKOPS_SUFFIX = ".skops"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# How each kind of file begins: pickle protocol 2+, joblib's compressed variants, and zip.
PICKLE_MAGIC = (b"\x80", b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x04\x22\x4d\x18")
ZIP_MAGIC = b"PK\x03\x04"


class ModelFileError(ValueError):
    """A model file is missing, of an unknown kind, untrusted, truncated or not a model."""


def load_model_file(path: Path, *, trust_pickle: bool, trusted_types: Iterable[str] = ()) -> Any:
    """The model in `path` (`.skops`, or `.joblib`/`.pkl` when `trust_pickle`); every way the
    file can be wrong becomes a ModelFileError naming the file. `trusted_types` (the spec's)
    are loaded from a `.skops` file besides the default ones."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    with path.open("rb") as f:
        head = f.read(8)
    if not head:
        raise ModelFileError(f"{path}: not a loadable model file: the file is empty")
    if suffix == SKOPS_SUFFIX:
        model = _load_skops(path, head, trusted_types)
    elif suffix in PICKLE_SUFFIXES:
        model = _load_pickle(path, head, trust_pickle)
    else:
        raise ModelFileError(
            f"{path}: unknown model file type {suffix!r}; "
            f"expected {SKOPS_SUFFIX} or one of {', '.join(PICKLE_SUFFIXES)}"
        )
    if not hasattr(model, "predict"):
        raise ModelFileError(f"{path}: loaded a {type(model).__name__}, which has no predict()")
    return model


def _load_skops(path: Path, head: bytes, trusted_types: Iterable[str]) -> Any:
    if not head.startswith(ZIP_MAGIC):
        raise ModelFileError(
            f"{path}: not a loadable model file: not a skops file (it is not a zip archive)"
        )
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelFileError(
            f"{path}: not a loadable model file: truncated or corrupt skops file ({exc})"
        ) from exc
    allowed = default_trusted_types() | set(trusted_types)
    refused = sorted(t for t in untrusted if t not in allowed)
    if refused:
        raise ModelFileError(
            f"{path}: not loaded: the skops file names types or functions that are not "
            f"trusted (loading it would call them): {', '.join(refused)}; if the model really "
            "needs them and you trust them, list them under trusted_types in fearless.yaml"
        )
    try:
        return sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise ModelFileError(
            f"{path}: cannot load the skops file ({type(exc).__name__}: {exc})"
        ) from exc


def _load_pickle(path: Path, head: bytes, trust_pickle: bool) -> Any:
    if not trust_pickle:
        raise ModelFileError(
            f"{path}: a pickle/joblib file can run any code when loaded, and pickle files are "
            f"not trusted here; save the model with skops.io.dump as {SKOPS_SUFFIX}, or allow "
            "pickle files explicitly (FEARLESS_TRUST_PICKLE=1; fearless init --trust-pickle)"
        )
    if not head.startswith(PICKLE_MAGIC):
        raise ModelFileError(
            f"{path}: not a loadable model file: not a pickle or joblib file "
            f"(it starts with {head[:4]!r}); was another kind of file renamed?"
        )
    import joblib

    try:
        return joblib.load(path)
    except (EOFError, ValueError) as exc:
        raise ModelFileError(
            f"{path}: not a loadable model file: truncated or corrupt ({exc or 'ends early'})"
        ) from exc
    except Exception as exc:
        raise ModelFileError(
            f"{path}: not a loadable model file ({type(exc).__name__}: {exc})"
        ) from exc
