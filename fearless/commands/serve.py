"""`fearless serve PATH --port N`: the model API for a bundle or a model project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    path: Annotated[
        Path, typer.Argument(help="a bundle folder, a model project or its fearless.yaml")
    ],
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    log_dir: Annotated[
        Path | None, typer.Option(help="append every prediction to this inference log root")
    ] = None,
) -> None:
    """Serve a model: /predict, /metrics and the Open Inference Protocol under /v2.

    A bundle is served under its digest (once its files match its manifest); a model project
    as it is, under the digest "dev". A pickle/joblib model loads only with
    FEARLESS_TRUST_PICKLE=1: it can run code when loaded.
    """
    from fearless.bundles.bundle import MANIFEST
    from fearless.serving.__main__ import main
    from fearless.settings import get_settings

    source = "--bundle" if (path / MANIFEST).is_file() else "--spec"
    argv = [source, str(path), "--host", host, "--port", str(port)]
    argv.append("--trust-pickle" if get_settings().trust_pickle else "--no-trust-pickle")
    main([*argv, *(["--log-dir", str(log_dir)] if log_dir is not None else [])])


def register(app: typer.Typer) -> None:
    app.command()(serve)
