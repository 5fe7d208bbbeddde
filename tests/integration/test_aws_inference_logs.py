"""Inference logs shipped to S3 and read back, against a moto server, written by the real log."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fearless.aws.inference_logs import (
    InferenceLogShipper,
    S3Location,
    environment_logs,
    shipper_for,
    sync_inference_logs,
)
from fearless.serving.inference_log import InferenceLog, read_inference_log
from fearless.settings import Settings
from tests.conftest import CREDIT_RECORD
from tests.integration.conftest import s3_bucket

REGION = "us-east-1"
BUCKET = "fearless-inference"


@pytest.fixture(scope="module")
def s3(moto_endpoint):
    return s3_bucket(moto_endpoint, BUCKET)


@pytest.fixture
def where(request) -> S3Location:
    return environment_logs(BUCKET, "inference", request.node.name, "candidate")


def _serve(log: InferenceLog, first: int, count: int) -> None:
    for i in range(first, first + count):
        log.append(f"r{i}", [{"age": i, "purpose": "car"}], [{"prediction": 1, "score": 0.5}], 1.0)


def _keys(s3, location: S3Location) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=location.key())
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_chunks_hold_each_complete_line_once_and_read_back_as_written(s3, where, tmp_path):
    root, back = tmp_path / "logs", tmp_path / "back"
    log = InferenceLog(root, "credit", "sha256:abc")
    _serve(log, 0, 5)
    shipper = InferenceLogShipper(s3, where, root, run_id="credit-1234", source="task-a")

    first = shipper.ship_once()
    assert len(first) == 1 and first[0].startswith(f"{where.prefix}/credit/")
    assert first[0].endswith(".000000000000-" + first[0].rsplit("-", 1)[-1])
    assert shipper.ship_once() == []  # nothing new, nothing sent

    _serve(log, 5, 3)
    path = next(root.glob("credit/*/*.jsonl"))
    with path.open("ab") as f:
        f.write(b'{"ts": "torn')  # a line being written when the shipper passes
    second = shipper.ship_once()
    assert len(second) == 1

    restarted = InferenceLogShipper(s3, where, root, run_id="credit-1234", source="task-a")
    assert restarted.ship_once() == []  # it finds where the last run stopped, in S3

    tags = s3.get_object_tagging(Bucket=BUCKET, Key=second[0])["TagSet"]
    assert {"Key": "fearless:run-id", "Value": "credit-1234"} in tags
    assert sync_inference_logs(s3, where, back) and sync_inference_logs(s3, where, back) == []
    shipped = read_inference_log(back, "credit")
    assert list(shipped["age"]) == list(range(8))
    assert shipped.equals(read_inference_log(root, "credit"))


def test_a_compacted_segment_ships_whole_and_supersedes_its_chunks(s3, where, tmp_path):
    root = tmp_path / "logs"
    log = InferenceLog(root, "credit", "sha256:abc")
    _serve(log, 0, 4)
    shipper = InferenceLogShipper(s3, where, root, source="task-a")
    [chunk] = shipper.ship_once()  # while the segment is written: its lines
    _serve(log, 4, 2)
    log.close()  # the segment is compacted; its last lines are only in Parquet now
    assert not list(root.glob("credit/*/*.jsonl"))

    [whole] = shipper.ship_once()
    assert whole.endswith(".parquet") and whole.rsplit(".", 1)[0] in chunk
    assert shipper.ship_once() == []
    assert InferenceLogShipper(s3, where, root, source="task-a").ship_once() == []

    back = tmp_path / "back"
    assert [p.suffix for p in sync_inference_logs(s3, where, back)] == [".parquet"]
    assert list(read_inference_log(back, "credit")["age"]) == list(range(6))
    # A copy synced before the compaction holds the chunk too: it is read once
    sync_inference_logs(s3, where, tmp_path / "early")
    early = tmp_path / "early" / Path(chunk).relative_to(where.prefix).parent
    (early / Path(chunk).name).write_bytes(s3.get_object(Bucket=BUCKET, Key=chunk)["Body"].read())
    assert list(read_inference_log(tmp_path / "early", "credit")["age"]) == list(range(6))


def test_two_tasks_with_the_same_pid_do_not_overwrite_each_other(s3, where, tmp_path):
    for source in ("task-a", "task-b"):
        root = tmp_path / source
        _serve(InferenceLog(root, "credit", "sha256:abc"), 0, 2)
        InferenceLogShipper(s3, where, root, source=source).ship_once()
    assert len(_keys(s3, where)) == 2
    assert len(read_inference_log(_synced(s3, where, tmp_path / "back"), "credit")) == 4


def _synced(s3, where, dest):
    sync_inference_logs(s3, where, dest)
    return dest


def test_a_truncated_local_copy_is_fetched_again(s3, where, tmp_path):
    root, back = tmp_path / "logs", tmp_path / "back"
    _serve(InferenceLog(root, "credit", "sha256:abc"), 0, 3)
    InferenceLogShipper(s3, where, root).ship_once()
    (chunk,) = sync_inference_logs(s3, where, back)
    chunk.write_bytes(chunk.read_bytes()[:10])
    assert sync_inference_logs(s3, where, back) == [chunk]
    assert len(read_inference_log(back, "credit")) == 3


def test_the_model_api_thread_ships_while_serving_and_on_stop(s3, where, tmp_path, moto_endpoint):
    root = tmp_path / "logs"
    settings = Settings(
        inference_log_s3=f"s3://{BUCKET}/{where.prefix}",
        run_id="credit-77",
        aws_endpoint_url=moto_endpoint,
    )
    shipper = shipper_for(settings, root)
    shipper.interval_s = 0.1
    log = InferenceLog(root, "credit", "sha256:abc")
    shipper.start()
    try:
        _serve(log, 0, 2)
        deadline = time.monotonic() + 10
        while not _keys(s3, where) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_keys(s3, where)) == 1
    finally:
        _serve(log, 2, 1)
        shipper.stop()
    assert len(read_inference_log(_synced(s3, where, tmp_path / "back"), "credit")) == 3
    assert shipper_for(Settings(inference_log_s3=""), root) is None


def test_a_bad_location_is_named():
    with pytest.raises(ValueError, match="not an s3://bucket/prefix URL"):
        S3Location.parse("bucket/prefix")


@pytest.fixture
def kms_bucket(moto_endpoint):
    """A bucket encrypted with SSE-KMS by default, as infra/modules/registry makes it."""
    import boto3

    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_endpoint)
    key = kms.create_key(Description="registry")["KeyMetadata"]["Arn"]
    s3 = s3_bucket(moto_endpoint, "fearless-kms-registry")
    s3.put_bucket_encryption(
        Bucket="fearless-kms-registry",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    return s3


def test_chunks_on_a_kms_encrypted_bucket_are_checked_by_sha256_checksum(kms_bucket, tmp_path):
    """Under SSE-KMS an object's ETag is not its MD5; the SHA-256 checksum is still its digest."""
    where = S3Location("fearless-kms-registry", "inference/rel-1/candidate")
    root, back = tmp_path / "logs", tmp_path / "back"
    _serve(InferenceLog(root, "credit", "sha256:abc"), 0, 4)
    (key,) = InferenceLogShipper(kms_bucket, where, root, source="task-a").ship_once()

    head = kms_bucket.head_object(Bucket=where.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ChecksumSHA256"]
    assert sync_inference_logs(kms_bucket, where, back)
    assert len(read_inference_log(back, "credit")) == 4


def test_a_chunk_changed_in_s3_fails_the_sync(kms_bucket, tmp_path):
    where = S3Location("fearless-kms-registry", "inference/rel-2/candidate")
    root = tmp_path / "logs"
    _serve(InferenceLog(root, "credit", "sha256:abc"), 0, 2)
    (key,) = InferenceLogShipper(kms_bucket, where, root, source="task-a").ship_once()
    # another writer replaces the chunk with other bytes and a checksum that is not theirs
    kms_bucket.put_object(Bucket=where.bucket, Key=key, Body=b'{"ts": "forged"}\n')
    with pytest.raises(OSError, match="checksum"):
        sync_inference_logs(kms_bucket, where, tmp_path / "back")


def test_a_model_api_stopped_by_sigterm_ships_what_it_logged(
    s3, where, credit_project, moto_endpoint, tmp_path
):
    """ECS stops a task with SIGTERM, and uvicorn raises it again once it has shut down: the
    last shipping pass must run inside the shutdown, not after it, or the rows are lost."""
    import os
    import subprocess
    import sys

    import httpx

    from tests.integration.conftest import stop_processes
    from tests.integration.test_serving_process import _free_port, _wait_ready

    port, output = _free_port(), tmp_path / "api.log"
    argv = [
        sys.executable,
        "-m",
        "fearless.serving",
        "--spec",
        str(credit_project / "fearless.yaml"),
    ]
    argv += ["--port", str(port), "--log-dir", str(tmp_path / "logs")]
    env = {
        **os.environ,
        "FEARLESS_AWS_ENDPOINT_URL": moto_endpoint,
        "FEARLESS_INFERENCE_LOG_S3": f"s3://{BUCKET}/{where.prefix}",
    }
    with output.open("wb") as out:
        api = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, api, output)
        records = [CREDIT_RECORD, CREDIT_RECORD]
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=30)
        assert answer.status_code == 200, answer.text
        api.terminate()  # SIGTERM, as ECS sends it
        api.wait(timeout=60)
    finally:
        stop_processes(api)
    assert len(read_inference_log(_synced(s3, where, tmp_path / "back"), "credit")) == 2
