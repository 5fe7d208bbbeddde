"""The inference log's files: segments, compaction into Parquet, and what readers see."""

from __future__ import annotations

import fcntl
import os
import shutil
from datetime import UTC, datetime

import pyarrow as pa

from fearless.log_files import log_files, scan_inference_log
from fearless.serving.inference_log import InferenceLog, read_inference_log
from fearless.serving.log_compaction import compact_segment

DAY = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _log(root, ages, **options) -> InferenceLog:
    log = InferenceLog(root, "credit", "d", clock=lambda: DAY, **options)
    for age in ages:
        log.append(f"r{age}", [{"age": age}], [{"prediction": 0, "score": 0.5}], 1.0)
    return log


def _ages(root) -> list[int]:
    return read_inference_log(root, "credit")["age"].tolist()


def test_full_segments_are_compacted_and_every_row_is_read_once(tmp_path):
    log = _log(tmp_path, range(40), segment_bytes=1000)
    log.close()

    files = log_files(tmp_path, "credit")
    assert len(files) > 3 and {f.suffix for f in files} == {".parquet"}
    assert _ages(tmp_path) == list(range(40))
    types = {"age": pa.float64(), "score": pa.float64(), "zip": pa.string()}
    [first, *_] = scan_inference_log(tmp_path, "credit", columns=types)
    assert first.schema.names == ["age", "score", "zip"] and first["zip"].null_count == len(first)


def test_a_crash_between_rename_and_removal_reads_the_segment_once(tmp_path):
    _log(tmp_path, range(5)).close()
    [parquet] = tmp_path.glob("credit/*/*.parquet")
    copy = parquet.with_suffix(".jsonl")
    copy.write_text('{"ts": "2026-03-01T12:00:00+00:00", "inputs": {"age": 99}}\n')

    assert _ages(tmp_path) == list(range(5))  # the Parquet file supersedes its JSON lines


def test_hidden_files_and_a_torn_last_line_are_not_read(tmp_path):
    log = _log(tmp_path, range(3))
    [segment] = tmp_path.glob("credit/*/*.jsonl")
    with segment.open("ab") as f:
        f.write(b'{"ts": "2026-03-01T12:00:00+00:00", "inputs": {"ag')  # killed mid-write
    (segment.parent / ".half.parquet.tmp").write_bytes(b"PAR1 not yet")
    (segment.parent / ".opening.jsonl").write_bytes(b"")

    assert _ages(tmp_path) == [0, 1, 2]
    os.close(log._fd)  # as if the process died: nothing holds the segment now
    assert compact_segment(segment) == segment.with_suffix(".parquet")
    assert _ages(tmp_path) == [0, 1, 2] and not segment.exists()


def test_a_segment_a_live_writer_holds_is_not_compacted(tmp_path):
    log = _log(tmp_path, range(3))
    [segment] = tmp_path.glob("credit/*/*.jsonl")

    assert compact_segment(segment) is None and segment.exists()
    log.close()
    assert not segment.exists() and _ages(tmp_path) == [0, 1, 2]


def test_the_next_writer_compacts_what_a_dead_process_left(tmp_path):
    dead = tmp_path / "dead"
    _log(dead, range(3))
    left = tmp_path / "logs" / "credit" / "2026-03-01"
    left.mkdir(parents=True)
    [segment] = dead.glob("credit/*/*.jsonl")
    shutil.copy(segment, left / "999-1.jsonl")  # a copy nobody holds a lock on

    _log(tmp_path / "logs", [7]).close()

    assert not (left / "999-1.jsonl").exists() and (left / "999-1.parquet").exists()
    assert sorted(_ages(tmp_path / "logs")) == [0, 1, 2, 7]


def test_a_failed_write_makes_the_log_not_writable_until_a_probe_succeeds(tmp_path):
    log = _log(tmp_path / "logs", [1])
    assert log.writable()
    log.failure = OSError(28, "No space left on device")
    root, log.root = log.root, tmp_path / "a-file"
    log.root.write_text("")  # the probe cannot write there

    assert not log.writable() and log.failure is not None
    log.root = root
    assert log.writable() and log.failure is None
    log.close()


def test_the_lock_is_held_on_the_open_segment(tmp_path):
    log = _log(tmp_path, [1])
    fd = os.open(log._path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            raise AssertionError("the open segment is not locked")
        except BlockingIOError:
            pass
    finally:
        os.close(fd)
        log.close()
