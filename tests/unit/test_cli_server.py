"""Every command's Prefect client talks to the configured server, never a throwaway one.

A Prefect client with no API URL quietly starts an ephemeral server of its own. If a command
imported Prefect before pointing it at the configured server, it would answer from that one:
slowly, and not from ours. With nothing listening on the configured port, a command must fail
to connect instead of answering.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "argv",
    [
        ["approve", "credit-0000", "--by", "ann"],
        ["reject", "credit-0000", "--by", "ann"],
        ["trigger", "{project}"],
    ],
    ids=lambda argv: argv[0],
)
def test_commands_use_the_configured_server_not_a_throwaway_one(argv, credit_project, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"FEARLESS_SERVER_PORT": str(_closed_port()), "PREFECT_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "fearless.cli", *(a.format(project=credit_project) for a in argv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "Connection refused" in result.stdout + result.stderr, result.stdout + result.stderr
