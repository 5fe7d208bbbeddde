"""Typer (0.29) checks every parameter value with a pydantic TypeAdapter, even a string given
as a string and the `--help` flag left out; building the first adapter imports pydantic's
schema machinery, which costs a read-only command a third of its time. A value that already is
what its parameter declares (a str for a str, a bool for a bool, or nothing at all) needs no
check: `plain_values_without_pydantic` passes those through and leaves every other value, and
every other kind of parameter, to Typer as before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PLAIN = (str, bool)


def plain_values_without_pydantic() -> None:
    """Wrap Typer's runtime coercion; a no-op on a Typer without it (only slower there)."""
    try:
        from typer import _coercion, core
    except ImportError:
        return
    build = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if build is None or base is None or getattr(build, "plain_values", False):
        return

    @dataclass(frozen=True)
    class PlainValues(base):
        descriptor: Any = None

        def _coerce_value(self, value, param, ctx):
            if type(value) is self.annotation:
                return value
            return build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def build_plain_first(descriptor):
        info = descriptor.parameter_info
        if (
            descriptor.annotation in PLAIN
            and descriptor.file_annotation is None
            and getattr(info, "parser", None) is None
        ):
            return PlainValues(
                parameter_info=info, annotation=descriptor.annotation, descriptor=descriptor
            )
        return build(descriptor)

    build_plain_first.plain_values = True
    core.build_runtime_param = build_plain_first
