"""How the evidence names a report: by the link a person's browser follows (the server's
report route, or a presigned S3 URL), never by where the worker wrote it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Protocol


class Link(Protocol):
    """Where a person's browser reaches a report (`fearless.platform.reports.ReportLink`)."""

    url: str
    expires_at: datetime | None


ReportLinks = Callable[[str], Link]
"""The link of a report by its name in the run folder (`loadtest/candidate/locust.html`): the
server's report route, or a presigned S3 URL. Never a path on the worker's disk."""


@dataclass(frozen=True)
class RelativeLink:
    """Without a publisher: the name itself, which the HTML page resolves beside itself."""

    url: str
    expires_at: datetime | None = None


def report_name(path: str, release_id: str) -> str:
    """A report's name in its run folder, from the path the worker wrote it at (the part after
    the `<release id>` folder; the file name alone where no such folder is in the path)."""
    parts = PurePath(path).parts
    if release_id in parts[:-1]:
        index = len(parts) - 1 - parts[::-1].index(release_id)
        return PurePath(*parts[index + 1 :]).as_posix()
    return PurePath(path).name


def report_link(path: str | None, release_id: str, links: ReportLinks) -> str:
    """A report as a markdown link that says until when it works, where it expires."""
    if not path:
        return "none"
    name = report_name(path, release_id)
    link = links(name)
    until = f" (link valid until {link.expires_at:%Y-%m-%d %H:%M} UTC)" if link.expires_at else ""
    return f"[{name}]({link.url}){until}"
