"""Which model projects a change touches: the folders holding a fearless.yaml."""

from __future__ import annotations

from pathlib import Path

from fearless.spec import SPEC_FILENAME


def project_of(path: Path, root: Path) -> Path | None:
    """The nearest folder at or above `path` (inside `root`) that holds a model spec."""
    folder = path if path.is_dir() else path.parent
    root = root.resolve()
    folder = (root / folder).resolve()
    while folder == root or root in folder.parents:
        if (folder / SPEC_FILENAME).is_file():
            return folder
        if folder == root:
            return None
        folder = folder.parent
    return None


def changed_projects(changed_files: list[str], root: Path) -> list[str]:
    """Model projects (relative to `root`, sorted) containing any of `changed_files`."""
    projects = {project_of(Path(name), root) for name in changed_files if name.strip()}
    return sorted(str(p.relative_to(root.resolve())) for p in projects if p is not None)
