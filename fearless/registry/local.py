"""A registry in a local folder: bundles under their digest, aliases as small JSON files.

An alias moves by compare-and-swap under a file lock and an atomic rename, so two promotions
racing on one model cannot both win, and a reader never sees a half-written alias.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fearless.ids import checked_digest, checked_id
from fearless.registry import AliasConflict, AliasMove
from fearless.staging import staging_path

if TYPE_CHECKING:
    from fearless.bundles.bundle import Bundle


class LocalRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _model_dir(self, model: str) -> Path:
        return self.root / checked_id(model, "model name")

    def store_bundle(self, staged: Path, digest: str) -> Bundle:
        from fearless.bundles.bundle import open_bundle

        name = json.loads((staged / "manifest.json").read_text())["name"]
        target = self._model_dir(name) / "bundles" / checked_digest(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = staging_path(target)
            shutil.copytree(staged, tmp)
            try:
                tmp.rename(target)
            except OSError:  # another build of the same digest won: it is identical
                shutil.rmtree(tmp, ignore_errors=True)
        return open_bundle(target, digest)

    def get_bundle(self, model: str, digest: str) -> Bundle:
        from fearless.bundles.bundle import BundleError, open_bundle

        path = self._model_dir(model) / "bundles" / checked_digest(digest)
        if not path.is_dir():
            raise BundleError(f"{model}@{digest}: no such bundle in the registry at {self.root}")
        return open_bundle(path, digest)

    def _source_file(self, model: str, digest: str) -> Path:
        return self._model_dir(model) / "sources" / (checked_digest(digest) + ".tar")

    def store_source(self, model: str, digest: str, archive: Path) -> None:
        """Keep a project's source pack under its digest (written beside, then renamed)."""
        target = self._source_file(model, digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = staging_path(target)
        shutil.copyfile(archive, tmp)
        tmp.replace(target)

    def get_source(self, model: str, digest: str) -> Path:
        """The stored pack (the caller checks it against its digest before using it)."""
        return self._source_file(model, digest)

    def _alias_file(self, model: str, alias: str) -> Path:
        return self._model_dir(model) / "aliases" / f"{checked_id(alias, 'alias')}.json"

    def get_alias(self, model: str, alias: str) -> str | None:
        try:
            return json.loads(self._alias_file(model, alias).read_text())["digest"]
        except FileNotFoundError:
            return None

    @contextmanager
    def _locked(self, model: str):
        lock = self._model_dir(model) / ".lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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
        with self._locked(model):
            current = self.get_alias(model, alias)
            if current != expected:
                raise AliasConflict(
                    f"{model}:{alias} is at {current}, not {expected}: someone moved it first"
                )
            path = self._alias_file(model, alias)
            path.parent.mkdir(parents=True, exist_ok=True)
            move = AliasMove(
                model=model,
                alias=alias,
                from_digest=current,
                to_digest=digest,
                actor=actor,
                reason=reason,
                at=datetime.now(UTC),
            )
            if digest is None:
                path.unlink(missing_ok=True)
            else:
                tmp = staging_path(path)
                tmp.write_text(json.dumps({"digest": digest, "since": move.at.isoformat()}))
                os.replace(tmp, path)
            with (self._model_dir(model) / "history.jsonl").open("a") as log:
                log.write(json.dumps(move.to_json()) + "\n")
            return move

    def history(self, model: str) -> list[AliasMove]:
        path = self._model_dir(model) / "history.jsonl"
        if not path.is_file():
            return []
        return [
            AliasMove.from_json(json.loads(line)) for line in path.read_text().splitlines() if line
        ]

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "bundles").is_dir())
