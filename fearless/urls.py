"""The server's addresses, derived from its host, port and public URL in one place: for
`Settings`, and for the read-only commands' stdlib-only `platform.address`."""

from __future__ import annotations


def ui_url_of(host: str, port: int) -> str:
    """The server's own address; its API is under `/api`."""
    return f"http://{host}:{port}"


def reports_url_of(public_url: str, host: str, port: int) -> str:
    """Where the server serves the run folders' reports, as people reach it."""
    return f"{(public_url or ui_url_of(host, port)).rstrip('/')}/fearless/runs"
