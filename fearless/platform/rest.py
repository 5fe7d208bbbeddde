"""A few calls to the Prefect server's REST API with httpx alone.

`import prefect` takes seconds; a command that only reads what it prints (or a process that
only records one value) asks the API directly, with the URL and credentials Prefect's own
client uses (PREFECT_API_URL, then PREFECT_API_KEY or PREFECT_API_AUTH_STRING) and a CSRF
token when the server requires one, as Prefect's client does.
"""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any, Self

import httpx


class PrefectApi:
    def __init__(
        self,
        api_url: str,
        *,
        auth_string: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        headers = {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        elif auth_string:
            headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
        self.http = httpx.Client(
            base_url=api_url.rstrip("/") + "/", headers=headers, timeout=timeout_s
        )
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
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, path: str) -> Any:
        answer = self.http.get(path)
        answer.raise_for_status()
        return answer.json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        """A POST/PATCH/DELETE (filters are POSTs too), with the CSRF headers it needs."""
        self._csrf()
        return self.http.request(method, path, json=body)

    def query(self, path: str, body: dict[str, Any]) -> Any:
        answer = self.send("POST", path, body)
        answer.raise_for_status()
        return answer.json()

    def _csrf(self) -> None:
        if self._csrf_checked:
            return
        client_id = str(uuid.uuid4())
        answer = self.http.get("csrf-token", params={"client": client_id})
        self._csrf_checked = True
        if answer.status_code in (404, 422):  # an older server, or CSRF protection off
            return
        answer.raise_for_status()
        self.http.headers["Prefect-Csrf-Token"] = answer.json()["token"]
        self.http.headers["Prefect-Csrf-Client"] = client_id

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
