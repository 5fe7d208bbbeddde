"""CLI commands that live beside the concern they serve, each module with a `register(app)`.

Every module here is imported when `fearless` starts: keep imports at module level to Typer
and the standard library; import anything heavy inside the command function.
"""

from __future__ import annotations

import importlib
import pkgutil


def register_all(app) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}").register(app)
