"""A few calls to the Prefect server's REST API with the standard library alone.

`import prefect` takes seconds, and even httpx a fifth of one; a command that only reads what
it prints (or a process that only records one value) asks the API directly over one kept-alive
connection (`fearless.platform.http1`), with the URL and credentials Prefect's own client uses
(PREFECT_API_URL, then PREFECT_API_KEY or PREFECT_API_AUTH_STRING) and a CSRF token when the
server requires one, as Prefect's client does.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from typing import Any, Self
from urllib.parse import quote, urlencode, urlsplit

from fearless.platform.http1 import Connection

# A busy server (SQLite locked, a proxy without an upstream) is asked again, as Prefect's own
# client does.
BUSY = {429, 502, 503}
RETRY_WAITS_S = (0.2, 0.5, 1.0)


class ApiError(OSError):
    """The server answered with an error status (a refused or lost connection is an OSError
    too, so `except OSError` covers every way a call fails)."""

    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        detail = body[:300].decode(errors="replace").strip()
        super().__init__(f"{method} {url}: HTTP {status}" + (f": {detail}" if detail else ""))
        self.status = status


class Response:
    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        self.method, self.url, self.status_code, self.content = method, url, status, body

    def json(self) -> Any:
        return json.loads(self.content) if self.content else None

    def raise_for_status(self) -> Response:
        if self.status_code >= 400:
            raise ApiError(self.method, self.url, self.status_code, self.content)
        return self


def basic_auth(auth_string: str) -> str:
    """The Authorization header Prefect's server asks for when it has an auth string."""
    return "Basic " + base64.b64encode(auth_string.encode()).decode()


def fetch(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None, timeout_s: float = 10.0
) -> Response:
    """One request on a connection of its own (a HEAD for a report link, say)."""
    parts = urlsplit(url)
    with Connection(parts, timeout_s) as conn:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return Response(method, url, *conn.request(method, target or "/", None, headers or {}))


class PrefectApi:
    def __init__(
        self,
        api_url: str,
        *,
        auth_string: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = api_url.rstrip("/") + "/"
        parts = urlsplit(self.base_url)
        self._prefix = parts.path
        self._conn = Connection(parts, timeout_s)
        self.headers = {"Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        elif auth_string:
            self.headers["Authorization"] = basic_auth(auth_string)
        self._csrf_checked = False

    @classmethod
    def from_env(cls) -> PrefectApi:
        """The server this process's Prefect client would use (`use_server` sets it)."""
        return cls(
            os.environ["PREFECT_API_URL"],
            auth_string=os.environ.get("PREFECT_API_AUTH_STRING"),
            api_key=os.environ.get("PREFECT_API_KEY"),
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Response:
        target = self._prefix + quote(path, safe="/:@-._~")
        if params:
            target += "?" + urlencode(params)
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for wait_s in RETRY_WAITS_S:
            answer = self._once(method, path, target, data, headers)
            if answer[0] not in BUSY:
                break
            time.sleep(wait_s)
        else:
            answer = self._once(method, path, target, data, headers)
        return Response(method, self.base_url + path, *answer)

    def _once(self, method, path, target, data, headers) -> tuple[int, bytes]:
        try:
            return self._conn.request(method, target, data, headers)
        except (ConnectionResetError, BrokenPipeError):
            # The server closed a kept-alive connection between two calls: once more, on a new
            # one, unless the call creates something and may have been taken.
            if method == "POST" and not path.endswith("filter"):
                raise
            return self._conn.request(method, target, data, headers)

    def get(self, path: str) -> Any:
        return self.request("GET", path).raise_for_status().json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> Response:
        """A POST/PATCH/DELETE (filters are POSTs too), with the CSRF headers it needs."""
        self._csrf()
        return self.request(method, path, body)

    def query(self, path: str, body: dict[str, Any]) -> Any:
        return self.send("POST", path, body).raise_for_status().json()

    def _csrf(self) -> None:
        if self._csrf_checked:
            return
        client_id = str(uuid.uuid4())
        answer = self.request("GET", "csrf-token", params={"client": client_id})
        self._csrf_checked = True
        if answer.status_code in (404, 422):  # an older server, or CSRF protection off
            return
        answer.raise_for_status()
        self.headers["Prefect-Csrf-Token"] = answer.json()["token"]
        self.headers["Prefect-Csrf-Client"] = client_id

    def set_variable(self, name: str, value: Any) -> None:
        """Create or replace a Prefect variable (lowercase letters, digits, `-`, `_`)."""
        answer = self.send("PATCH", f"variables/name/{name}", {"value": value})
        if answer.status_code == 404:
            answer = self.send("POST", "variables/", {"name": name, "value": value})
        answer.raise_for_status()

    def delete_variable(self, name: str) -> None:
        answer = self.send("DELETE", f"variables/name/{name}", {})
        if answer.status_code != 404:
            answer.raise_for_status()

    def variables(self, prefix: str) -> dict[str, Any]:
        """Every variable whose name starts with `prefix`, by name."""
        found = self.query("variables/filter", {"variables": {"name": {"like_": prefix}}})
        return {v["name"]: v["value"] for v in found if v["name"].startswith(prefix)}
