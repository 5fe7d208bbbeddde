"""An HTTP proxy on loopback in front of the moto server that breaks chosen AWS calls for real.

Moto has no fault injection, so the AWS faults are made on the wire: a client pointed at the
proxy gets, for the first K calls of an action, the answer AWS gives when it throttles or fails
(`ThrottlingException`, `SlowDown`, a 503 or 500), or moto's real answer replaced by a 500 after
the call took effect (an answer lost on the way back). Every other call is passed to moto
untouched. The proxy counts what it saw per action, so a test knows how many attempts a
client made.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# X-Amz-Target prefixes of the JSON-protocol services the tests break, by their short name.
SERVICE_OF = {
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "Route53AutoNaming_v20170314": "servicediscovery",
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    action: str  # "ecs:CreateService" from a JSON call's X-Amz-Target, "<METHOD> <path>" for S3


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


def ecs_error(code: str, status: int = 400, message: str = "Rate exceeded") -> Answer:
    """An error as ECS's JSON protocol answers it."""
    body = json.dumps({"__type": code, "message": message}).encode()
    return Answer(status, body, "application/x-amz-json-1.1")


def s3_error(code: str, status: int, message: str = "Please reduce your request rate.") -> Answer:
    """An error as S3's REST protocol answers it."""
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return Answer(status, body, "application/xml")


THROTTLED = ecs_error("ThrottlingException")
ECS_UNAVAILABLE = ecs_error("ServiceUnavailableException", 503, "Service unavailable")
S3_SLOW_DOWN = s3_error("SlowDown", 503)
S3_INTERNAL = s3_error("InternalError", 500, "We encountered an internal error.")


@dataclass
class Fault:
    """Answer `answer` to the first `times` calls `matches`; with `after`, pass the call to
    moto first (it takes effect) and answer `answer` instead of moto's reply (None: moto's
    reply). `before` runs just before a matching call reaches moto (another writer's move)."""

    matches: Callable[[Call], bool]
    answer: Answer | None
    times: int = 1
    after: bool = False
    before: Callable[[], None] | None = None
    served: int = 0


def action(name: str) -> Callable[[Call], bool]:
    return lambda call: call.action == name


def s3_call(method: str, key_part: str) -> Callable[[Call], bool]:
    return lambda call: call.method == method and key_part in call.path


@dataclass
class FaultyAws:
    """The proxy's state: the faults to serve and every call seen, per action."""

    upstream: str
    url: str = ""
    faults: list[Fault] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)
    answered: list[tuple[str, int]] = field(default_factory=list)  # (action, status) in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.seen.clear()
            self.answered.clear()

    def fault_for(self, call: Call) -> Fault | None:
        with self.lock:
            self.seen[call.action] += 1
            for fault in self.faults:
                if fault.served < fault.times and fault.matches(call):
                    fault.served += 1
                    return fault
        return None


def _handler(state: FaultyAws):
    upstream = urlsplit(state.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                headers["Host"] = upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                return reply.status, reply.getheaders(), reply.read()
            finally:
                conn.close()

        def _handle(self) -> None:
            body = self._body()
            target = self.headers.get("X-Amz-Target", "")
            prefix, _, operation = target.partition(".")
            service = SERVICE_OF.get(prefix, prefix)
            name = f"{service}:{operation}" if target else f"{self.command} {self.path}"
            fault = state.fault_for(Call(self.command, self.path, name))
            if fault is not None and fault.before is not None:
                fault.before()
            answer = fault.answer if fault is not None else None
            if answer is None or fault.after:
                status, headers, reply = self._forward(body)
            if answer is not None:
                status, reply = answer.status, answer.body
                headers = [("Content-Type", answer.content_type)]
            state.answered.append((name, status))
            self._send(status, headers, reply)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


class AwsProxy:
    """`with AwsProxy(moto_url) as proxy:` serves on `proxy.url` until the block ends."""

    def __init__(self, upstream: str) -> None:
        self.state = FaultyAws(upstream)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyAws:
        self._thread.start()
        self.state.url = self.url
        return self.state

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)
