"""The production front of one model: an nginx of its own, in front of the version serving.

Each model's front is an nginx master that Fearless starts and owns (never the system's
service, no root needed), with its own prefix under the state dir: `nginx.conf`, `nginx.pid`,
`logs/`, `tmp/` and `flags/`. It listens on the model's fixed address and forwards to one of
two upstream slots, `blue` and `green`: fixed loopback ports where Fearless starts model APIs.

A version switch starts the new version in the idle slot, then flips one flag file that nginx
tests on every request (`if (-f flags/green)`, one stat): requests that started keep their
upstream, new ones go to the new slot, and no client connection is touched. A reload would
not do: `nginx -s reload` closes every idle keep-alive connection of the old workers at once,
and a client sending its next request on one of them gets a reset (10 failed requests in 60
reloads under 4 keep-alive clients, measured here). The configuration is rewritten and
reloaded only when a slot must move to another port.

Shadow traffic: while a bake window compares versions (`flags/shadow`), every request is also
mirrored (nginx's `mirror`) to the other slot, where the previous version runs for the window;
the mirror's answer is discarded, never sent to a client. Both carry the same `X-Request-ID`
(the client's, else nginx's `$request_id`), which the model APIs write in their inference logs,
so the bake pairs the two versions' predictions of the same records. nginx finishes a request
once its mirror is answered too, so during the window the logged time is the slower of both.
Only a request that finds the flag is rewritten to the internal location that mirrors: outside a
window a request costs no subrequest at all. The access log keeps the client's path.

The front has no admin endpoint: what it forwards to is decided by files in its prefix, which
only the owner of the state dir can change, and a slot only ever holds a model API that
Fearless started there (see `fearless.production.local`).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import psutil

from fearless.platform import processes
from fearless.staging import staging_path

SLOTS = ("blue", "green")
# As the model API (its default body limit): a bigger body is refused here, never buffered.
MAX_BODY = "2m"
# Ports for fronts and slots come from below Linux's ephemeral range (32768-60999), so an
# outgoing connection never holds one while its slot is idle.
PORTS = range(20000, 32768)
# Only while a bake window watches: one JSON line per request, what the bake counts.
LOG_FORMAT = (
    'escape=json \'{"t":$msec,"method":"$request_method","uri":"$fearless_uri",'
    '"status":$status,"request_time":$request_time,"upstream":"$upstream_addr",'
    '"upstream_status":"$upstream_status","upstream_time":"$upstream_response_time",'
    '"slot":"$fearless_slot"}\''
)


class FrontError(RuntimeError):
    """The front cannot be configured or started."""


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None
    )
    if found is None:
        raise FrontError("nginx not found: install Debian's nginx (`make system-deps` does)")
    return found


def choose_ports(count: int, avoid: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """`count` different free ports below the ephemeral range, none in `avoid`."""
    chosen: list[int] = []
    for _ in range(200 + count):
        port = random.choice(PORTS)
        if port in avoid or port in chosen or not port_is_free(port, reuse=False):
            continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise FrontError(f"no {count} free ports in {PORTS.start}-{PORTS.stop - 1}")


def port_is_free(port: int, host: str = "127.0.0.1", reuse: bool = True) -> bool:
    """Whether `port` can be bound (with SO_REUSEADDR, as uvicorn binds, unless `reuse` is off:
    a port chosen anew should not even be in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse))
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def listening_socket(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A socket listening on the front's address, for nginx to take (`NginxFront.start`).

    Whoever keeps it open keeps the address taking connections while no nginx runs: the kernel
    queues them (up to the backlog) until the next nginx accepts them. A client then sees a
    slow answer where it would have seen a refused connection."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(511)  # nginx's own default backlog
    except OSError as exc:
        sock.close()
        raise FrontError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def _quoted(path: Path) -> str:
    text = str(path)
    if any(c in text for c in '"\\$') or any(ord(c) < 32 for c in text):
        raise FrontError(f"the front's folder {text!r} cannot be written into nginx.conf")
    return f'"{text}"'


def _worker_user(flags: Path) -> str:
    """Workers run as nginx's default (nobody) when started by root, if they can reach the flag
    files; else as root (a state dir under a private folder, as in tests)."""
    if os.geteuid() != 0:
        return ""  # nginx runs its workers as the user who started it
    for folder in [flags, *flags.parents]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return "user root root;"
    return ""


class NginxFront:
    """One model's nginx: its files, its process and the flags it reads on each request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "nginx.conf"
        self.pid = root / "nginx.pid"
        self.error_log = root / "logs" / "error.log"
        self.access_log = root / "logs" / "access.log"
        self.flags = root / "flags"

    def write_conf(
        self, port: int, slots: dict[str, int], host: str = "127.0.0.1", hold: int | None = None
    ) -> None:
        """Write the configuration; with `hold`, a request the slot cannot take (nginx's own
        502: nothing listens) goes to the hold server on that port (`fearless.production.hold`)."""
        for folder in (self.root / "logs", self.root / "tmp", self.flags):
            folder.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp"
        upstreams = "\n".join(
            f"    upstream {slot} {{ server 127.0.0.1:{slots[slot]}; "
            "keepalive 32; keepalive_timeout 2s; }"
            for slot in SLOTS
        )
        held, hold_location = "", ""
        if hold is not None:
            upstreams += f"\n    upstream fearless_hold {{ server 127.0.0.1:{hold}; }}"
            held = "error_page 502 = @fearless_hold;"
            hold_location = """location @fearless_hold {
            proxy_pass http://fearless_hold$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection close;
            proxy_set_header Host $fearless_host;
            proxy_set_header X-Request-ID $fearless_request;
            proxy_set_header X-Fearless-Slot $fearless_slot;
            proxy_read_timeout 120s;
        }"""
        # Request bodies are read whole before forwarding (bounded by MAX_BODY): a request its
        # slot refused goes on to the hold server body and all, which a body half-streamed to
        # the refusing slot could not.
        forward = "\n".join(
            f"            {line}"
            for line in (
                "proxy_http_version 1.1;",
                'proxy_set_header Connection "";',
                "proxy_set_header Host $fearless_host;",
                "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                "proxy_set_header X-Request-ID $fearless_request;",
                "proxy_buffer_size 16k;",
                "proxy_buffers 8 16k;",
                "proxy_max_temp_file_size 0;",
                "proxy_connect_timeout 5s;",
                "proxy_read_timeout 60s;",
                "proxy_send_timeout 60s;",
                held,
            )
            if line
        )
        text = f"""# The production front of one model. Written by Fearless: edits are overwritten.
worker_processes 1;
pid {_quoted(self.pid)};
error_log {_quoted(self.error_log)} warn;
{_worker_user(self.flags)}
events {{ worker_connections 1024; }}
http {{
    server_tokens off;
    access_log off;
    client_body_temp_path {_quoted(tmp / "body")};
    proxy_temp_path {_quoted(tmp / "proxy")};
    fastcgi_temp_path {_quoted(tmp / "fastcgi")};
    uwsgi_temp_path {_quoted(tmp / "uwsgi")};
    scgi_temp_path {_quoted(tmp / "scgi")};
    log_format fearless {LOG_FORMAT};
    map $http_host $fearless_host {{ "" localhost; default $http_host; }}
    map $http_x_request_id $fearless_request {{ "" $request_id; default $http_x_request_id; }}
{upstreams}
    server {{
        listen {host}:{port};
        set $fearless_slot blue;
        set $fearless_shadow green;
        if (-f {_quoted(self.flags / "green")}) {{
            set $fearless_slot green;
            set $fearless_shadow blue;
        }}
        set $fearless_uri $uri;
        set $fearless_mirror "";
        if (-f {_quoted(self.flags / "shadow")}) {{ set $fearless_mirror 1; }}
        set $fearless_log "";
        if (-f {_quoted(self.flags / "log")}) {{ set $fearless_log 1; }}
        access_log {_quoted(self.access_log)} fearless buffer=32k flush=500ms if=$fearless_log;
        client_max_body_size {MAX_BODY};
        location / {{
            if ($fearless_mirror) {{ rewrite ^ /_fearless_mirrored last; }}
            proxy_pass http://$fearless_slot;
{forward}
        }}
        location = /_fearless_mirrored {{
            internal;
            mirror /_fearless_shadow;
            proxy_pass http://$fearless_slot$request_uri;
{forward}
        }}
        {hold_location}
        location = /_fearless_shadow {{
            internal;
            proxy_pass http://$fearless_shadow$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $fearless_host;
            proxy_set_header X-Request-ID $fearless_request;
            proxy_set_header X-Fearless-Shadow 1;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
        }}
    }}
}}
"""
        staged = staging_path(self.conf)
        staged.write_text(text)
        self._check(staged)
        os.replace(staged, self.conf)

    def _nginx(self, *args: str, conf: Path | None = None) -> list[str]:
        conf = conf or self.conf
        return [
            nginx_binary(),
            "-p",
            str(self.root),
            "-c",
            str(conf),
            "-e",
            str(self.error_log),
            *args,
        ]

    def _check(self, conf: Path) -> None:
        argv = self._nginx("-t", "-q", conf=conf)
        done = subprocess.run(argv, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            conf.unlink(missing_ok=True)
            raise FrontError(f"nginx refused the front's configuration: {done.stderr.strip()}")

    def start(
        self, port: int, timeout_s: float = 30.0, listener: socket.socket | None = None
    ) -> processes.ProcessHandle:
        """Start the master in the foreground of its own session; return once it listens.

        With `listener` (see `listening_socket`), nginx takes that socket instead of binding its
        own: nginx's `NGINX` variable, which its binary upgrade uses to hand sockets on."""
        argv, log = self._nginx("-g", "daemon off;"), self.root / "logs" / "nginx.out"
        if listener is None:
            handle = processes.spawn(argv, log)
        else:
            fd = listener.fileno()
            handle = processes.spawn(argv, log, env={"NGINX": f"{fd};"}, pass_fds=(fd,))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not processes.is_alive(handle):
                raise FrontError(f"nginx exited at start: {self._errors()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return handle
            time.sleep(0.05)
        processes.stop(handle)
        raise FrontError(
            f"nginx did not listen on {port} within {timeout_s:.0f} s: {self._errors()}"
        )

    def _errors(self) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return ""

    @staticmethod
    def stop_leftovers(handle: processes.ProcessHandle) -> None:
        """Kill the workers of a master that died (they outlive it, in its process group)."""
        for proc in psutil.process_iter(["name"]):
            try:
                if (
                    proc.info["name"] == "nginx"
                    and os.getpgid(proc.pid) == handle.pid
                    and processes.started_when(proc, handle) >= 0
                ):
                    proc.kill()
            except (psutil.Error, ProcessLookupError):
                pass

    def reload(self, handle: processes.ProcessHandle) -> None:
        """Have the running master read the configuration again (checked when written)."""
        os.kill(handle.pid, signal.SIGHUP)

    def reopen_logs(self, handle: processes.ProcessHandle) -> None:
        os.kill(handle.pid, signal.SIGUSR1)

    def active(self) -> str:
        """The slot new requests go to."""
        return "green" if (self.flags / "green").exists() else "blue"

    def point(self, slot: str) -> None:
        """Send new requests to `slot` (one file created or removed: atomic for nginx)."""
        flag = self.flags / "green"
        if slot == "green":
            self.flags.mkdir(parents=True, exist_ok=True)
            flag.touch()
        elif slot == "blue":
            flag.unlink(missing_ok=True)
        else:
            raise FrontError(f"no slot {slot!r}: expected one of {SLOTS}")

    def mirror(self, on: bool) -> None:
        """Mirror every request to the idle slot (its answers discarded), or stop."""
        flag = self.flags / "shadow"
        if on:
            self.flags.mkdir(parents=True, exist_ok=True)
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def log_requests(self, on: bool) -> None:
        """Write the access log (on only while a bake window reads it; emptied when it starts)."""
        flag = self.flags / "log"
        if on:
            if self.access_log.exists():
                os.truncate(self.access_log, 0)  # nginx appends (O_APPEND): safe to empty
            flag.touch()
        else:
            flag.unlink(missing_ok=True)
