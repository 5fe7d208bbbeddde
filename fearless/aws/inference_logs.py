"""Inference logs kept in S3, so they outlive the ECS task that wrote them.

A model API writes segments `<root>/<model>/<day>/<segment>.jsonl` (see
`fearless.serving.inference_log`), append-only, and compacts each into `<segment>.parquet` once
full. The shipper cuts what was appended to a segment since its last pass, up to the last
complete line, into an immutable chunk `<prefix>/<model>/<day>/<source>-<segment>.<start>-<end>.jsonl`
(byte offsets in the local file), and uploads each compacted segment whole as
`<source>-<segment>.parquet`. The names say what is in S3, so a re-run after a crash finds where
it stopped by listing, re-sends nothing, and sends no line twice. `sync` fetches them back into
the same local layout (a segment's chunks only while it has no Parquet file), which the
inference log's readers read as it is: a segment's Parquet file supersedes its chunks.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlparse

from fearless.aws import TAG_PREFIX
from fearless.ids import ID_PATTERN
from fearless.log_files import CHUNK, DAY, segment_of

log = logging.getLogger(__name__)
PRODUCTION = "production"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """`s3://bucket/some/prefix` (the prefix may be empty)."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
        return cls(parsed.netloc, parsed.path.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    @property
    def url(self) -> str:
        """What `parse` reads back (a model API's FEARLESS_INFERENCE_LOG_S3)."""
        return f"s3://{self.bucket}/{self.prefix}"


def environment_logs(bucket: str, prefix: str, release_id: str, role: str) -> S3Location:
    """Where a test environment's model API ships its log (and the drift step reads it)."""
    return S3Location(bucket, "/".join(p for p in (prefix, release_id, role) if p))


def production_logs(bucket: str, prefix: str) -> S3Location:
    """Where every production service ships its log (and the nightly drift check reads it)."""
    return S3Location(bucket, "/".join(p for p in (prefix, PRODUCTION) if p))


def _sha256(data: bytes) -> str:
    """The base64 SHA-256 S3 keeps as an object's ChecksumSHA256 (its ETag is no digest
    under SSE-KMS, the registry bucket's default encryption)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class InferenceLogShipper:
    """Uploads new complete lines of every local segment under `root` as S3 chunks, and each
    compacted segment as one Parquet object."""

    def __init__(
        self,
        s3,
        location: S3Location,
        root: Path,
        run_id: str = "",
        source: str | None = None,
        interval_s: float = 30.0,
    ) -> None:
        self.s3, self.location, self.root = s3, location, Path(root)
        self.run_id, self.interval_s = run_id, interval_s
        self.source = re.sub(r"[^A-Za-z0-9_-]", "-", source or socket.gethostname())
        self.shipped: dict[Path, int] = {}  # local segment -> bytes already in S3
        self.shipped_whole: set[Path] = set()  # compacted segments already in S3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ship_once(self) -> list[str]:
        """One pass over the local files; the keys of the chunks uploaded."""
        uploaded = []
        files = sorted(self.root.glob("*/*/*.jsonl")) + sorted(self.root.glob("*/*/*.parquet"))
        for path in files:
            if DAY.match(path.parent.name) and not path.name.startswith("."):
                try:
                    key = self._ship_file(path)
                except FileNotFoundError:  # compacted meanwhile: its Parquet file ships next
                    continue
                uploaded += [key] if key else []
        self.shipped = {p: end for p, end in self.shipped.items() if p.exists()}
        self.shipped_whole = {p for p in self.shipped_whole if p.exists()}
        return uploaded

    def _ship_file(self, path: Path) -> str | None:
        model, day = path.parent.parent.name, path.parent.name
        name = f"{self.source}-{segment_of(path)}"
        if path.suffix == ".parquet":
            if path in self.shipped_whole or self._in_s3(model, day, name)[1]:
                self.shipped_whole.add(path)
                return None
            key = self._put(model, day, f"{name}.parquet", path.read_bytes(), "parquet")
            self.shipped_whole.add(path)
            return key
        start = self.shipped.get(path)
        if start is None:
            start = self._in_s3(model, day, name)[0]
        with path.open("rb") as f:
            f.seek(start)
            data = f.read()
        data = data[: data.rfind(b"\n") + 1]  # a line still being written waits for next pass
        if not data:
            self.shipped[path] = start
            return None
        end = start + len(data)
        key = self._put(model, day, f"{name}.{start:012d}-{end:012d}.jsonl", data, "x-ndjson")
        self.shipped[path] = end
        return key

    def _put(self, model: str, day: str, name: str, data: bytes, kind: str) -> str:
        key = self.location.key(model, day, name)
        tags = {f"{TAG_PREFIX}run-id": self.run_id, f"{TAG_PREFIX}model": model}
        self.s3.put_object(
            Bucket=self.location.bucket,
            Key=key,
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_sha256(data),  # S3 refuses the upload if the bytes arrive changed
            ContentType=f"application/{kind}",
            Tagging="&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags.items()),
        )
        return key

    def _in_s3(self, model: str, day: str, name: str) -> tuple[int, bool]:
        """Where the chunks of one local segment already in S3 end (0: none yet), and
        whether its Parquet file is there."""
        prefix = self.location.key(model, day, f"{name}.")
        ends, whole = [0], False
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=prefix
        )
        for obj in (o for page in pages for o in page.get("Contents", [])):
            file = obj["Key"].rsplit("/", 1)[-1]
            match = CHUNK.match(file)
            if match and match["segment"] == name:
                ends.append(int(match["end"]))
            whole = whole or file == f"{name}.parquet"
        return max(ends), whole

    def start(self) -> InferenceLogShipper:
        """Ship every `interval_s` in a daemon thread until `stop()`."""
        self._thread = threading.Thread(
            target=self._loop, name="inference-log-shipper", daemon=True
        )
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.ship_once()
            except Exception:  # the next pass retries; the lines are still on disk
                log.exception("shipping the inference log to %s failed", self.location)

    def stop(self, timeout_s: float = 30.0) -> list[str]:
        """Stop the thread, then ship what is left (a model API's shutdown calls this)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.ship_once()


def shipper_for(settings, root: Path) -> InferenceLogShipper | None:
    """The shipper a model API starts when FEARLESS_INFERENCE_LOG_S3 is set; None otherwise."""
    if not settings.inference_log_s3:
        return None
    from fearless.aws import aws_client

    s3 = aws_client(settings, "s3")
    return InferenceLogShipper(
        s3, S3Location.parse(settings.inference_log_s3), root, run_id=settings.run_id
    )


def sync_inference_logs(
    s3,
    location: S3Location,
    dest: Path,
    model: str | None = None,
    since_day: str | None = None,
    modified_since: datetime | None = None,
) -> list[Path]:
    """Fetch the objects not yet under `dest` (as `<dest>/<model>/<day>/<name>`); the new files.
    `modified_since`: only objects uploaded since (a bake's window, not the day before it).

    Objects are immutable, so one already here at its full size is skipped, and so are the
    chunks of a segment whose Parquet file is in S3. Each download is checked against the
    SHA-256 checksum S3 verified at upload, which (unlike the ETag) stays the content's digest
    whatever the bucket's encryption.
    """
    fetched = []
    prefix = location.key(model or "")
    prefix = prefix + "/" if prefix else ""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix)
    wanted = []
    for obj in (o for page in pages for o in page.get("Contents", [])):
        parts = obj["Key"][len(location.key()) :].strip("/").split("/")
        if len(parts) != 3 or not ID_PATTERN.fullmatch(parts[0]):  # a model name, not `..`
            continue
        whole = parts[2].endswith(".parquet") and not parts[2].startswith(".")
        if not DAY.match(parts[1]) or not (whole or CHUNK.match(parts[2])):
            continue
        if modified_since is not None and obj["LastModified"] < modified_since:
            continue
        if since_day is None or parts[1] >= since_day:
            wanted.append((obj, parts))
    compacted = {
        (p[0], p[1], segment_of(Path(p[2]))) for _, p in wanted if p[2].endswith(".parquet")
    }
    for obj, parts in wanted:
        if (
            parts[2].endswith(".jsonl")
            and (parts[0], parts[1], segment_of(Path(parts[2]))) in compacted
        ):
            continue
        target = dest.joinpath(*parts)
        if target.is_file() and target.stat().st_size == obj["Size"]:
            continue
        got = s3.get_object(Bucket=location.bucket, Key=obj["Key"], ChecksumMode="ENABLED")
        body = got["Body"].read()
        if "ChecksumSHA256" not in got:
            raise OSError(f"s3://{location.bucket}/{obj['Key']}: no SHA-256 checksum to check")
        if _sha256(body) != got["ChecksumSHA256"]:
            raise OSError(
                f"s3://{location.bucket}/{obj['Key']}: download does not match its checksum"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(body)
        partial.replace(target)  # a reader never sees half a chunk
        fetched.append(target)
    return fetched


class ProductionLogSync:
    """The nightly drift check's source of production logs on AWS: one model's chunks since a
    day, fetched into `dest` (as a local production service would have written them)."""

    def __init__(self, s3, location: S3Location, dest: Path) -> None:
        self.s3, self.location, self.dest = s3, location, dest

    def __call__(self, model: str, since: datetime) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            sync_inference_logs(self.s3, self.location, self.dest, model, f"{since:%Y-%m-%d}")
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"cannot fetch {model}'s logs from {self.location.url}: {exc}") from exc
        return self.dest
