"""CLI commands that live beside the concern they serve, each module with a `register(app)`.

Every module here is imported when `fearless` starts: keep imports at module level to Typer
and the standard library; import anything heavy inside the command function. A module whose
name starts with `_` holds what several commands share and registers nothing.
"""

from __future__ import annotations

import importlib
import pkgutil

from fearless.commands._typer import plain_values_without_pydantic

__all__ = ["plain_values_without_pydantic", "register_all"]


def register_all(app) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{info.name}").register(app)
