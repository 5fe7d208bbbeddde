"""`fearless changed-projects`: the model projects a git range touches, as JSON for CI."""

from __future__ import annotations

from typing import Annotated

import typer


def changed_projects(
    base: Annotated[
        str, typer.Argument(help="Commit before the change (e.g. github.event.before).")
    ],
    head: Annotated[str, typer.Argument(help="Commit after the change.")] = "HEAD",
) -> None:
    """Print a JSON list of the model projects (folders with a fearless.yaml) changed in BASE..HEAD."""
    import json
    import subprocess
    from pathlib import Path

    from fearless.bundles.projects import changed_projects as find

    root = Path(
        subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    listed = subprocess.run(
        ["git", "diff", "--name-only", base, head],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    if listed.returncode != 0:  # e.g. the first push of a branch: consider every project
        listed = subprocess.run(
            ["git", "ls-files"], capture_output=True, text=True, cwd=root, check=True
        )
    typer.echo(json.dumps(find(listed.stdout.splitlines(), root)))


def register(app: typer.Typer) -> None:
    app.command("changed-projects")(changed_projects)
