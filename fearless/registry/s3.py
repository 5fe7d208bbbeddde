"""A registry in an S3 bucket: bundles under their digest, aliases moved by conditional writes.

Layout under `<prefix>/<model>/`: `bundles/<digest>/<file>` (manifest.json written last, so a
bundle without one is incomplete), `aliases/<alias>.json` and `history/<time>-<id>.json`.

An alias moves by compare-and-swap on the object's ETag: `IfMatch=<etag>` when the alias
exists, `IfNoneMatch="*"` when it does not; S3 answers 412 (or 409 on a concurrent write) to
the loser. An unset alias is a tombstone (`digest: null`), so unsetting is a conditional write
too. The alias object carries the move that set it, so a writer that died between the alias
and its history entry still leaves a complete history, and a retried write whose first
attempt landed (its answer lost) knows the alias holds its own move, not another writer's.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from fearless.bundles.bundle import MANIFEST, Bundle, BundleError, open_bundle
from fearless.bundles.integrity import is_plain_file_name
from fearless.ids import checked_digest, checked_id
from fearless.registry import AliasConflict, AliasMove

LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


def _listed_files(manifest: Path) -> list[str] | None:
    """The file names a downloaded manifest lists, if it is one and they are plain names."""
    try:
        names = list(json.loads(manifest.read_text())["files"])
    except (ValueError, KeyError, TypeError):
        return None
    return names if all(is_plain_file_name(n) for n in names) else None


class S3Registry:
    def __init__(self, s3, bucket: str, prefix: str, cache: Path) -> None:
        """`cache` is a local folder bundles are downloaded to: a Bundle is a local folder."""
        self.s3, self.bucket, self.prefix, self.cache = s3, bucket, prefix.strip("/"), cache

    def _key(self, model: str, *parts: str) -> str:
        return "/".join([self.prefix, checked_id(model, "model name"), *parts])

    def _bundle_key(self, model: str, digest: str, name: str = "") -> str:
        return self._key(model, "bundles", checked_digest(digest), name)

    def store_bundle(self, staged: Path, digest: str) -> Bundle:
        name = json.loads((staged / MANIFEST).read_text())["name"]
        if not self._exists(self._bundle_key(name, digest, MANIFEST)):
            files = sorted(p for p in staged.iterdir() if p.is_file() and p.name != MANIFEST)
            for path in [*files, staged / MANIFEST]:
                self.s3.upload_file(
                    str(path), self.bucket, self._bundle_key(name, digest, path.name)
                )
        return self.get_bundle(name, digest)

    def get_bundle(self, model: str, digest: str) -> Bundle:
        """The bundle, downloaded into the cache once: only the files its manifest lists, each
        checked against it (and the manifest against `digest`) before the cache keeps it."""
        target = self.cache / checked_id(model, "model name") / "bundles" / checked_digest(digest)
        if (target / MANIFEST).is_file():
            return open_bundle(target, digest)
        prefix = self._bundle_key(model, digest)
        keys = {o["Key"] for o in self._objects(prefix)}
        if prefix + MANIFEST not in keys:
            raise BundleError(f"{model}@{digest}: no such bundle in s3://{self.bucket}/{prefix}")
        tmp = target.with_name(f".{target.name}.{uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        try:
            self.s3.download_file(self.bucket, prefix + MANIFEST, str(tmp / MANIFEST))
            names = _listed_files(tmp / MANIFEST)
            if names is None:
                raise BundleError(f"s3://{self.bucket}/{prefix}{MANIFEST}: not a usable manifest")
            for name in names:
                if prefix + name not in keys:
                    raise BundleError(f"s3://{self.bucket}/{prefix}{name}: listed but missing")
                self.s3.download_file(self.bucket, prefix + name, str(tmp / name))
            open_bundle(tmp, digest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            tmp.rename(target)
        except OSError:  # another download of the same digest won: it is identical
            shutil.rmtree(tmp, ignore_errors=True)
        return open_bundle(target, digest)

    def _source_key(self, model: str, digest: str) -> str:
        return self._key(model, "sources", checked_digest(digest) + ".tar")

    def store_source(self, model: str, digest: str, archive: Path) -> None:
        """Upload a project's source pack under its digest (the same digest is the same pack)."""
        key = self._source_key(model, digest)
        if not self._exists(key):
            self.s3.upload_file(str(archive), self.bucket, key)

    def get_source(self, model: str, digest: str) -> Path:
        """The pack, downloaded into the cache; a missing one is a path that does not exist
        (the caller checks it against its digest before using it)."""
        name = checked_digest(digest) + ".tar"
        target = self.cache / checked_id(model, "model name") / "sources" / name
        if not target.is_file() and self._exists(self._source_key(model, digest)):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid4().hex[:8]}")
            self.s3.download_file(self.bucket, self._source_key(model, digest), str(tmp))
            tmp.replace(target)
        return target

    def _read_alias(self, model: str, alias: str) -> tuple[dict | None, str | None]:
        try:
            obj = self.s3.get_object(
                Bucket=self.bucket, Key=self._key(model, "aliases", alias + ".json")
            )
        except self.s3.exceptions.NoSuchKey:
            return None, None
        return json.loads(obj["Body"].read()), obj["ETag"]

    def get_alias(self, model: str, alias: str) -> str | None:
        body, _ = self._read_alias(model, alias)
        return body["digest"] if body else None

    def set_alias(
        self,
        model: str,
        alias: str,
        digest: str | None,
        *,
        expected: str | None,
        actor: str,
        reason: str,
    ) -> AliasMove:
        """Point `alias` at `digest` only if it still points at `expected` (None: unset)."""
        body, etag = self._read_alias(model, alias)
        current = body["digest"] if body else None
        if current != expected:
            raise AliasConflict(
                f"{model}:{alias} is at {current}, not {expected}: someone moved it first"
            )
        move = AliasMove(
            model=model,
            alias=alias,
            from_digest=current,
            to_digest=digest,
            actor=actor,
            reason=reason,
            at=datetime.now(UTC),
        )
        move_id = f"{move.at:%Y%m%dT%H%M%S%fZ}-{uuid4().hex[:8]}"
        record = {"digest": digest, "since": move.at.isoformat(), "move_id": move_id}
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self._key(model, "aliases", alias + ".json"),
                Body=json.dumps({**record, "move": move.to_json()}).encode(),
                ContentType="application/json",
                **condition,
            )
        except self.s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] not in LOST_RACE:
                raise
            # A retry whose first attempt landed but whose answer was lost fails its own
            # condition: the alias then carries this very move.
            landed, _ = self._read_alias(model, alias)
            if not (landed and landed.get("move_id") == move_id):
                raise AliasConflict(
                    f"{model}:{alias} moved while we moved it from {expected}: someone moved it first"
                ) from None
        self._put_history(model, move_id, move)
        return move

    def _put_history(self, model: str, move_id: str, move: AliasMove) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._key(model, "history", move_id + ".json"),
            Body=json.dumps(move.to_json()).encode(),
            ContentType="application/json",
        )

    def history(self, model: str) -> list[AliasMove]:
        recorded = {}
        for obj in self._objects(self._key(model, "history", "")):
            move_id = obj["Key"].rsplit("/", 1)[-1].removesuffix(".json")
            body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
            recorded[move_id] = AliasMove.from_json(json.loads(body))
        for obj in self._objects(self._key(model, "aliases", "")):
            body = json.loads(self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read())
            if body.get("move_id") and body["move_id"] not in recorded:
                recorded[body["move_id"]] = AliasMove.from_json(body["move"])
        return [recorded[k] for k in sorted(recorded)]

    def models(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "/", Delimiter="/"
        )
        names = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
        return sorted(n.removeprefix(self.prefix + "/").rstrip("/") for n in names)

    def _objects(self, prefix: str) -> list[dict]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [obj for page in pages for obj in page.get("Contents", [])]

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
