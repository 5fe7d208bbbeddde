"""The disk fills under a model API's inference log: it says it is not ready, answers 503 with
Retry-After, loses no acknowledged row, and serves again once space returns.

The disk is a real filesystem of 1 MB (tmpfs, mounted for the test and always unmounted), so
the writes fail as they would on a full volume (ENOSPC, part of a batch written), not through
a stand-in. Where mounting is not permitted (not root), the test is skipped saying so.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import subprocess
import sys
import time

import httpx
import pandas as pd
import pytest

from fearless.log_files import log_files, read_log_file
from tests.faults.matrix import FaultRow, record
from tests.integration.test_serving_crash import _free_port

RECOVER_TIMEOUT_S = 30
START_TIMEOUT_S = 180  # a model API's imports take a minute on a busy 2-core machine
MAX_REQUESTS_TO_FILL = 2000


@contextlib.contextmanager
def small_disk(path, size: str = "1m"):
    """A `size` tmpfs mounted at `path` for the block; skips the test where mount is refused."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path) -> None:
    """Write a filler file under `path` until the filesystem refuses more."""
    with open(path / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def _wait_ready(url: str, server: subprocess.Popen, output) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = output.read_text(errors="replace")[-2000:]
            raise AssertionError(f"model API exited with {server.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"model API not ready after {START_TIMEOUT_S} s")


def _logged(log_dir) -> dict[str, dict]:
    rows = {}
    for path in log_files(log_dir, "credit"):
        for row in read_log_file(path, ["request_id", "prediction", "score"]).to_pylist():
            rows[row.pop("request_id")] = row
    return rows


def test_a_full_log_disk_is_not_ready_answers_503_and_recovers(credit_project, tmp_path):
    records = pd.read_parquet(credit_project / "reference.parquet").head(20).to_dict("records")
    port = _free_port()
    with small_disk(tmp_path / "disk") as disk:
        log_dir = disk / "inference"
        argv = [sys.executable, "-m", "fearless.serving", "--spec", str(credit_project)]
        # Small segments: compactions also meet the full disk, and retry once it has space
        argv += ["--port", str(port), "--log-dir", str(log_dir), "--log-segment-bytes", "8000"]
        output = tmp_path / "api.log"  # on the test's own disk, not the full one
        with output.open("wb") as sink:
            server = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        acknowledged: dict[str, list] = {}
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, server, output)
            with httpx.Client(base_url=url, timeout=10) as http:
                sent = iter(range(10**6))

                def post():
                    rid = f"r{next(sent)}"
                    body = {"records": [records[len(acknowledged) % len(records)]]}
                    answer = http.post("/predict", json=body, headers={"X-Request-ID": rid})
                    if answer.status_code == 200:
                        acknowledged[rid] = answer.json()["predictions"]
                    return answer

                assert all(post().status_code == 200 for _ in range(30))
                fill(disk)
                for _ in range(MAX_REQUESTS_TO_FILL):  # a page may still have room for a few
                    refused = post()
                    if refused.status_code != 200:
                        break
                assert refused.status_code == 503, refused.text
                assert refused.headers["Retry-After"] == "5"
                assert "inference log" in refused.json()["detail"]
                assert http.get("/ready").status_code == 503
                assert post().status_code == 503  # still full: still refused, not lost

                (disk / "filler").unlink()
                freed = time.monotonic()
                while http.get("/ready").status_code != 200:
                    assert time.monotonic() - freed < RECOVER_TIMEOUT_S, "not ready again"
                    time.sleep(0.1)
                assert all(post().status_code == 200 for _ in range(40))  # a segment or two
                recover_s = time.monotonic() - freed
        finally:
            server.send_signal(signal.SIGTERM)  # its shutdown compacts what is left
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        logged = _logged(log_dir)

    lost = [rid for rid in acknowledged if rid not in logged]
    assert all(acknowledged[rid] == [logged[rid]] for rid in acknowledged if rid in logged)
    record(
        FaultRow(
            fault="disk full under the inference log",
            step="model API serving",
            outcome="not ready and 503 Retry-After while full; ready and serving once freed",
            leaked=int(server.poll() is None),
            lost_rows=len(lost),
            recover_s=round(recover_s, 2),
        )
    )


def test_evidence_on_a_full_disk_fails_the_release_before_approval_naming_why(tmp_path):
    """The state dir's disk is full when the evidence is written: a named failure (the flow
    ends EvidenceNotWritten, before its approval gate), never a page half written."""
    from fearless.evidence import EvidenceError, write_evidence
    from tests.unit.test_evidence import evidence

    with small_disk(tmp_path / "runs", size="64k") as runs:
        run_dir = runs / "credit-0a0b0c0d"
        run_dir.mkdir()
        fill(runs)
        with pytest.raises(EvidenceError, match="could not be written to .*: No space left"):
            write_evidence(run_dir, evidence())
        assert not (run_dir / "evidence.html").exists()
    record(
        FaultRow(
            fault="state dir disk full",
            step="evidence",
            outcome="EvidenceNotWritten before approval, named",
        )
    )
