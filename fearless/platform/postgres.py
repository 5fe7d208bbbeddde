"""PostgreSQL for the embedded Prefect server, run by Fearless from a folder of the state dir.

SQLite serialises every write, so many releases at once queue on its lock; PostgreSQL does
not. Debian's PostgreSQL is used as it is installed (`make system-deps`), its system service
never started: `initdb` makes a cluster under `<state>/postgres`, `pg_ctl` starts and stops
it, listening on 127.0.0.1 alone, with no Unix socket, and a password kept beside it (trust
would let any local user in). PostgreSQL refuses to run as root, so a root caller runs it as
the `postgres` system user, who then owns that folder.

`start_postgres` and `stop_postgres` are plain functions of that folder, safe to repeat, so a
server restart (or a test of one) can stop and start the database on its own.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fearless.platform import processes

DATABASE = "prefect"
ROLE = "prefect"
SYSTEM_USER = "postgres"  # whom PostgreSQL runs as when Fearless runs as root
BIN_ROOT = Path("/usr/lib/postgresql")


class PostgresError(RuntimeError):
    """PostgreSQL is missing, or would not initialise, start or stop (its log is quoted)."""


@dataclass(frozen=True)
class Postgres:
    """A cluster in `root` (its data, log, port and password files) listening on `port`."""

    root: Path
    port: int
    password: str

    @property
    def url(self) -> str:
        """What Prefect's server connects with (PREFECT_SERVER_DATABASE_CONNECTION_URL)."""
        return f"postgresql+asyncpg://{ROLE}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def describe(self) -> str:
        return f"postgres on 127.0.0.1:{self.port} (data in {data_dir(self.root)})"


def data_dir(root: Path) -> Path:
    return root / "data"


def postgres_bin(name: str, bin_root: Path = BIN_ROOT) -> Path:
    """A PostgreSQL server program (`initdb`, `pg_ctl`): the newest Debian version's, or PATH's."""
    versions = sorted(
        (p for p in bin_root.glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    for folder in reversed(versions):
        if (folder / name).is_file():
            return folder / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise PostgresError(
        f"PostgreSQL's {name} is not installed (looked in {bin_root}/*/bin and PATH): "
        "`make system-deps` installs Debian's postgresql"
    )


def runs_as_root() -> bool:
    return os.geteuid() == 0


def as_owner(argv: list[str]) -> list[str]:
    """The command as the cluster's owner: the `postgres` user when we are root, else us."""
    return ["runuser", "-u", SYSTEM_USER, "--", *argv] if runs_as_root() else argv


def _run(argv: list[str], what: str, env: dict[str, str] | None = None, timeout_s: float = 120):
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise PostgresError(
            f"{what} failed ({result.returncode}): {result.stderr or result.stdout}"
        )
    return result


def _reachable_by_owner(root: Path) -> None:
    """As root: `root` belongs to `postgres`, and every folder above it lets it pass (execute
    only: it can reach its own folder, never list the others). A folder above that cannot be
    opened so is named in the error."""
    owner = pwd.getpwnam(SYSTEM_USER)
    os.chown(root, owner.pw_uid, owner.pw_gid)
    for folder in root.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            try:
                folder.chmod(mode | stat.S_IXOTH)
            except OSError as exc:
                raise PostgresError(
                    f"the {SYSTEM_USER} user cannot reach {root}: {folder} is closed to it ({exc})"
                ) from exc


def initialise(root: Path) -> str:
    """Make the cluster in `root` unless one is there; return its password."""
    password_file = root / "password"
    if (data_dir(root) / "PG_VERSION").is_file() and password_file.is_file():
        return password_file.read_text().strip()
    root.mkdir(parents=True, exist_ok=True)
    if runs_as_root():
        _reachable_by_owner(root)
    shutil.rmtree(data_dir(root), ignore_errors=True)  # a half-made cluster from a crash
    password = secrets.token_urlsafe(24)
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    # initdb reads the password from a file of the owner's, removed as soon as it is read.
    pwfile = root / "initdb.pw"
    pwfile.write_text(password + "\n")
    if runs_as_root():
        owner = pwd.getpwnam(SYSTEM_USER)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    pwfile.chmod(0o600)
    try:
        _run(
            as_owner(
                [
                    str(postgres_bin("initdb")),
                    *("-D", str(data_dir(root)), "-U", ROLE),
                    *("--auth", "scram-sha-256", "--pwfile", str(pwfile)),
                    *("--encoding", "UTF8", "--no-instructions"),
                ]
            ),
            f"initdb in {data_dir(root)}",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    return password


def running_postgres(root: Path) -> Postgres | None:
    """The cluster in `root` if its server is running (pg_ctl status), else None."""
    port_file = root / "port"
    if not (data_dir(root) / "postmaster.pid").is_file() or not port_file.is_file():
        return None
    status = subprocess.run(
        as_owner([str(postgres_bin("pg_ctl")), "status", "-D", str(data_dir(root))]),
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if status.returncode != 0:
        return None
    password = (root / "password").read_text().strip()
    return Postgres(root, int(port_file.read_text()), password)


def start_postgres(root: Path, port: int | None = None, timeout_s: float = 60) -> Postgres:
    """Initialise the cluster in `root` if needed, start it unless running, and make sure its
    `prefect` database exists. The port: `port`, else the one it had if still free, else any
    free one."""
    running = running_postgres(root)
    if running is not None:
        return running
    password = initialise(root)
    port_file = root / "port"
    if port is None:
        recorded = int(port_file.read_text()) if port_file.is_file() else None
        port = recorded if recorded and processes.port_free(recorded) else processes.free_port()
    port_file.write_text(str(port))
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
    _run(
        as_owner(
            [
                str(postgres_bin("pg_ctl")),
                *("start", "-D", str(data_dir(root)), "-o", options),
                *("-l", str(data_dir(root) / "server.log"), "-w", "-t", str(int(timeout_s))),
            ]
        ),
        f"starting PostgreSQL from {data_dir(root)} (log: {data_dir(root) / 'server.log'})",
        timeout_s=timeout_s + 10,
    )
    postgres = Postgres(root, port, password)
    create_database(postgres)
    return postgres


def create_database(postgres: Postgres) -> None:
    """The `prefect` database, unless it exists (Prefect makes its tables at start)."""
    client = ["-h", "127.0.0.1", "-p", str(postgres.port), "-U", ROLE]
    env = {"PGPASSWORD": postgres.password, "PGCONNECT_TIMEOUT": "10"}
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
    found = _run([str(postgres_bin("psql")), *client, "-d", "postgres", "-tAc", query], "psql", env)
    if found.stdout.strip() != "1":
        _run([str(postgres_bin("createdb")), *client, DATABASE], f"createdb {DATABASE}", env)


def stop_postgres(root: Path, timeout_s: float = 60) -> bool:
    """Stop the cluster in `root` (fast: open sessions are ended); True if it was running."""
    if running_postgres(root) is None:
        return False
    _run(
        as_owner(
            [
                str(postgres_bin("pg_ctl")),
                *("stop", "-D", str(data_dir(root)), "-m", "fast", "-w", "-t", str(int(timeout_s))),
            ]
        ),
        f"stopping PostgreSQL in {data_dir(root)}",
        timeout_s=timeout_s + 10,
    )
    return True
