"""The package layout holds: imports run down the layers, and no package reaches into
another's private names. Read from the source (ast), so it covers imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "fearless"

# Each part of the library and the parts it may import; anything not listed is refused.
# The top (the command line, `fearless/__init__`) may import anything.
MAY_IMPORT: dict[str, set[str]] = {
    "spec": set(),
    "ids": set(),
    "urls": set(),
    "staging": set(),
    "log_files": {"ids"},
    "settings": {"ids", "urls"},
    "aws": {"ids", "log_files"},
    "bundles": {"spec", "settings"},
    "platform": {"ids", "urls", "spec", "settings", "aws"},
    "registry": {"ids", "staging", "bundles"},
    "serving": {"ids", "log_files", "spec", "settings", "aws", "bundles"},
    "environments": {"ids", "spec", "settings", "aws", "bundles", "platform"},
    "drift": {
        *("ids", "log_files", "spec", "settings", "aws", "bundles"),
        *("platform", "registry", "serving"),
    },
    "loadtest": {
        *("spec", "settings", "aws", "bundles", "platform", "environments"),
        *("registry", "serving"),
    },
    "production": {
        *("ids", "log_files", "staging", "spec", "settings", "aws", "bundles"),
        *("platform", "registry", "environments"),
    },
    "release": {
        *("ids", "spec", "settings", "bundles", "platform", "environments"),
        *("serving", "loadtest", "drift"),
    },
    "evidence": {
        *("staging", "spec", "settings", "aws", "bundles", "environments"),
        *("loadtest", "drift", "release"),
    },
    "composition": {
        *("settings", "aws", "platform", "registry", "environments", "production"),
        "loadtest",
    },
}
TOP = {"cli", "commands", "__init__"}


def part_of(module: str) -> str:
    """`fearless.release.gates` -> `release`; `fearless.spec` -> `spec`; `fearless` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def fearless_imports(path: Path):
    """(imported module, names) for every `fearless` import in a file, top-level or not."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fearless"):
            if node.module == "fearless":
                for alias in node.names:
                    yield f"fearless.{alias.name}", []
            else:
                yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fearless"):
                    yield alias.name, []


MODULES = sorted(ROOT.rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)


def test_every_part_of_the_library_is_in_the_layer_table():
    parts = {part_of(module_name(p)) for p in MODULES}
    assert parts - TOP - set(MAY_IMPORT) == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_down_the_layers(path):
    here = part_of(module_name(path))
    if here in TOP:
        return
    upward = {
        module
        for module, _ in fearless_imports(path)
        if part_of(module) != here and part_of(module) not in MAY_IMPORT[here]
    }
    assert not upward, f"{here} may not import {sorted(upward)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_package_reaches_into_another_packages_private_names(path):
    here = part_of(module_name(path))
    private = [
        f"{module}.{name}"
        for module, names in fearless_imports(path)
        if part_of(module) != here
        for name in [*names, module.rsplit(".", 1)[-1]]
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not private, f"{path.name} imports private names {private}"


def test_the_checks_see_an_upward_import(tmp_path):
    """The table check is not vacuous: a bundles module importing production is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from fearless.production.promotion import rollback\n")
    imported = [part_of(m) for m, _ in fearless_imports(bad)]
    assert imported == ["production"]
    assert "production" not in MAY_IMPORT["bundles"]
