"""Reports a person is sent to (the evidence page, the Locust and Evidently reports) over HTTP.

On the embedded default the Prefect server serves them itself, read-only, under
`/fearless/runs/<release-id>/<file>`: files of the run folders and nothing else of the state
dir (`report_route`). On AWS `fearless.aws.reports.S3Reports` uploads them to S3 and links
them by presigned URL. `fearless.composition` picks one; both fit `Reports`.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from fearless.ids import InvalidId, checked_id, path_inside

ROUTE = "/fearless/runs"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".md": "text/markdown; charset=utf-8"}
# Reports hold data that came from outside (served traffic, model outputs): served from the
# Prefect UI's origin, a page must not act as that origin, so it runs sandboxed.
HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-downloads",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ReportLink:
    url: str
    expires_at: datetime | None = None

    def describe(self) -> str:
        if self.expires_at is None:
            return self.url
        return f"{self.url}  (link valid until {self.expires_at:%Y-%m-%d %H:%M} UTC)"


class Reports(Protocol):
    def publish(self, release_id: str, path: Path) -> ReportLink:
        """Make `path` (a file of the release's run folder) reachable; its link."""
        ...

    def url(self, release_id: str, name: str) -> ReportLink:
        """The link a published report has, without checking that it is there."""
        ...

    def link(self, release_id: str, name: str) -> ReportLink | None:
        """The link of the release's report `name` (`evidence.html`, `drift/report.html`),
        None when there is none; works from a machine with no state dir."""
        ...


def publishing_links(reports: Reports, release_id: str, run_dir: Path):
    """The links the evidence names its reports by (`fearless.evidence.sections.ReportLinks`):
    each report the run folder holds is published as it is named (S3 uploads it; the server
    serves it where it is), so every link the evidence gives works, the champion's Locust
    report and each simulation's too; the page itself is linked before it is written, and
    published once it is."""

    def link(name: str) -> ReportLink:
        path = run_dir / name
        if name != "evidence.html" and path.is_file():
            return reports.publish(release_id, path)
        return reports.url(release_id, name)

    return link


def report_name(run_dir: Path, path: Path) -> str:
    """`path` relative to its run folder, as a report name (`loadtest/candidate.html`)."""
    return Path(path).resolve().relative_to(run_dir.resolve()).as_posix()


def report_file(runs: Path, release_id: str, name: str) -> Path:
    """The file a report route request names, or InvalidId / FileNotFoundError: only a file
    inside the release's own run folder, no hidden part, no `..`, no link leading out."""
    run_dir = path_inside(runs, checked_id(release_id, "release id"))
    parts = name.split("/")
    if any(not part or part.startswith(".") or "\\" in part or "\0" in part for part in parts):
        raise InvalidId(f"{name!r} is not a report name")
    path = path_inside(run_dir, *parts)
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def authorized(header: str | None, auth_string: str | None) -> bool:
    """Prefect's own check (`Authorization: Basic base64(auth string)`), or True without one."""
    if not auth_string:
        return True
    scheme, _, creds = (header or "").partition(" ")
    try:
        decoded = base64.b64decode(creds, validate=True).decode()
    except ValueError:
        return False
    return scheme == "Basic" and hmac.compare_digest(decoded, auth_string)


def report_route(runs: Path, auth_string: str | None = None):
    """The read-only route (GET, HEAD) the embedded server serves the run folders' files on;
    it asks for the server's credentials when the server has an auth string."""
    from starlette.responses import FileResponse, PlainTextResponse
    from starlette.routing import Route

    async def serve(request):
        if not authorized(request.headers.get("authorization"), auth_string):
            challenge = {"WWW-Authenticate": 'Basic realm="fearless reports"'}
            return PlainTextResponse("unauthorized", status_code=401, headers=challenge)
        try:
            path = report_file(runs, request.path_params["release_id"], request.path_params["name"])
        except (InvalidId, OSError, ValueError):
            return PlainTextResponse("no such report", status_code=404)
        return FileResponse(path, headers=HEADERS)

    return Route(f"{ROUTE}/{{release_id}}/{{name:path}}", serve, methods=["GET", "HEAD"])


class ServedReports:
    """The embedded default: reports stay in the run folders; the server serves them at
    `base_url` (`Settings.reports_url`)."""

    def __init__(self, runs: Path, base_url: str, auth_string: str | None = None) -> None:
        self.runs = runs
        self.base_url = base_url.rstrip("/")
        self.auth_string = auth_string

    def _url(self, release_id: str, name: str) -> str:
        return f"{self.base_url}/{checked_id(release_id, 'release id')}/{quote(name)}"

    def publish(self, release_id: str, path: Path) -> ReportLink:
        name = report_name(self.runs / checked_id(release_id, "release id"), path)
        return ReportLink(self._url(release_id, name))

    def url(self, release_id: str, name: str) -> ReportLink:
        return ReportLink(self._url(release_id, name))

    def link(self, release_id: str, name: str) -> ReportLink | None:
        """From the run folder when this machine has it, else by asking the server (an
        OSError when it cannot be asked)."""
        try:
            report_file(self.runs, release_id, name)
            return ReportLink(self._url(release_id, name))
        except FileNotFoundError:
            if (self.runs / release_id).is_dir():
                return None
        from fearless.platform.rest import basic_auth, fetch

        headers = {"Authorization": basic_auth(self.auth_string)} if self.auth_string else {}
        url = self._url(release_id, name)
        answer = fetch(url, method="HEAD", headers=headers)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return ReportLink(url)


class S3Reports:
    """On AWS: reports uploaded to `s3://bucket/<prefix>/<release-id>/<name>` and linked by
    presigned GET URLs that expire after `expiry_s` (S3 allows at most 7 days; a URL signed
    with temporary credentials, as a task role's, dies with them, so `fearless evidence`
    signs a fresh one on demand)."""

    def __init__(self, s3, bucket: str, prefix: str, runs: Path, expiry_s: int) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix.strip("/")
        self.runs, self.expiry_s = runs, expiry_s

    def _key(self, release_id: str, name: str) -> str:
        return f"{self.prefix}/{checked_id(release_id, 'release id')}/{name}"

    def _signed(self, key: str) -> ReportLink:
        from datetime import UTC, timedelta

        expires_at = datetime.now(UTC) + timedelta(seconds=self.expiry_s)
        url = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.expiry_s
        )
        return ReportLink(url, expires_at.replace(microsecond=0))

    def publish(self, release_id: str, path: Path) -> ReportLink:
        name = report_name(self.runs / checked_id(release_id, "release id"), path)
        key = self._key(release_id, name)
        content_type = CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        self.s3.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})
        return self._signed(key)

    def url(self, release_id: str, name: str) -> ReportLink:
        return self._signed(self._key(release_id, name))

    def link(self, release_id: str, name: str) -> ReportLink | None:
        key = self._key(release_id, name)
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return self._signed(key)
