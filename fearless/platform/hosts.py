"""The Host names the embedded server answers to, and the check that refuses every other.

A web page can point a DNS name of its own at 127.0.0.1 (DNS rebinding): the developer's
browser then sends the server requests that look same-origin to it, past CORS and with a CSRF
token it may read. Such a request carries the page's own name in its Host header, so the server
answers only requests addressed to a name it knows (IP literals cannot be rebound).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fearless.settings import Settings

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(settings: Settings) -> list[str]:
    """Loopback names, the bind host, public_url's host and FEARLESS_SERVER_ALLOWED_HOSTS."""
    bind = f"[{settings.server_host}]" if ":" in settings.server_host else settings.server_host
    public = urlsplit(settings.public_url).hostname if settings.public_url else None
    public = f"[{public}]" if public and ":" in public else public
    names = [*LOOPBACK, bind, *([public] if public else []), *settings.server_allowed_hosts]
    return list(dict.fromkeys(name.lower() for name in names))


def host_name(header: str) -> str:
    """The name part of a Host header: `[::1]:4200` -> `[::1]`, `Example.com:80` -> `example.com`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else ""
    return header.rsplit(":", 1)[0] if ":" in header else header


def is_allowed(name: str, allowed: list[str]) -> bool:
    """`name` is listed, or matches a `*.example.com` entry; `*` allows any."""
    return any(
        pattern in ("*", name) or (pattern.startswith("*.") and name.endswith(pattern[1:]))
        for pattern in allowed
    )


class HostCheck:
    """ASGI middleware: HTTP requests and websockets addressed to another name are refused
    (421 Misdirected Request; a websocket is closed before it opens) before the app sees them."""

    def __init__(self, app, allowed: list[str]) -> None:
        self.app = app
        self.allowed = [name.lower() for name in allowed]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            name = host_name(headers.get(b"host", b"").decode("latin-1"))
            if not is_allowed(name, self.allowed):
                await self._refuse(scope, send, name)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope, send, name: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (
            f"Host {name or '(none)'!r} is not a name this server answers to; add it to "
            "FEARLESS_SERVER_ALLOWED_HOSTS if it is one of this machine's.\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
