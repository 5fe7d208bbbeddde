"""Where the server, the run folders and the local registry are, read from the environment with
the standard library alone.

The read-only commands (`status`, `pending`, `models`, `evidence`) answer in a fraction of a
second: building `Settings` (pydantic-settings) would take a good part of that. They read the
few `FEARLESS_*` variables they need here, as `Settings` reads them (names in any case, the
same defaults; tests/unit/test_cli_fast.py holds the two to the same answers), and fall back to
`Settings` for anything this does not read simply, so a bad value fails as loudly as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fearless.urls import reports_url_of, ui_url_of

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Address:
    backend: str
    state_dir: Path
    server_host: str = "127.0.0.1"
    server_port: int = 4200
    public_url: str = ""
    prefect_api_url: str = ""
    """PREFECT_API_URL when set: Prefect's clients (and `use_server`) prefer it."""
    auth_string: str | None = None
    api_key: str | None = None

    @property
    def api_url(self) -> str:
        return self.prefect_api_url or f"{self.ui_url}/api"

    @property
    def ui_url(self) -> str:
        return ui_url_of(self.server_host, self.server_port)

    @property
    def reports_url(self) -> str:
        return reports_url_of(self.public_url, self.server_host, self.server_port)

    @property
    def runs(self) -> Path:
        return self.state_dir / "runs"

    @property
    def registry(self) -> Path:
        return self.state_dir / "registry"


def read_address(environ: Mapping[str, str] = os.environ) -> Address | None:
    """The address the environment names, or None where `Settings` must judge a value (a
    port that is not a number in range, an unknown backend)."""
    env = {key.lower(): value for key, value in environ.items()}

    def fearless(name: str, default: str) -> str:
        return env.get(f"fearless_{name}", default)

    backend = fearless("backend", "local")
    port = fearless("server_port", "4200").strip()
    if backend not in ("local", "aws") or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    state_dir = Path(fearless("state_dir", str(PROJECT_ROOT / ".fearless")))
    return Address(
        backend=backend,
        state_dir=state_dir.expanduser().resolve(),
        server_host=fearless("server_host", "127.0.0.1"),
        server_port=int(port),
        public_url=fearless("public_url", ""),
        prefect_api_url=environ.get("PREFECT_API_URL", ""),
        auth_string=environ.get("PREFECT_API_AUTH_STRING") or None,
        api_key=environ.get("PREFECT_API_KEY") or None,
    )
