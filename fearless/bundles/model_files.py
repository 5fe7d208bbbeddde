"""Loading model files without running code they were not meant to carry.

A pickle (and a joblib file, which is pickle inside) can execute anything when it is loaded,
so it is loaded only when the caller trusts it. A `.skops` file is loaded with skops, which
rebuilds only the types it is allowed to: here scikit-learn's, NumPy's and SciPy's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SKOPS_SUFFIX = ".skops"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
# How each kind of file begins: pickle protocol 2+, joblib's compressed variants, and zip.
PICKLE_MAGIC = (b"\x80", b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x04\x22\x4d\x18")
ZIP_MAGIC = b"PK\x03\x04"


class ModelFileError(ValueError):
    """A model file is missing, of an unknown kind, untrusted, truncated or not a model."""


def load_model_file(path: Path, *, trust_pickle: bool) -> Any:
    """The model in `path` (`.skops`, or `.joblib`/`.pkl` when `trust_pickle`); every way the
    file can be wrong becomes a ModelFileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    with path.open("rb") as f:
        head = f.read(8)
    if not head:
        raise ModelFileError(f"{path}: not a loadable model file: the file is empty")
    if suffix == SKOPS_SUFFIX:
        model = _load_skops(path, head)
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


def _load_skops(path: Path, head: bytes) -> Any:
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
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ModelFileError(
            f"{path}: the skops file holds types outside scikit-learn/NumPy/SciPy, "
            f"not loaded: {', '.join(sorted(refused))}"
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
