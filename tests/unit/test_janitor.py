"""The janitor against a fake backend that records what it tore down."""

from datetime import UTC, datetime, timedelta

from fearless.environments import Environment
from fearless.environments.janitor import sweep

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def env(release_id: str, role: str, expires_in_s: int) -> Environment:
    return Environment(
        release_id=release_id,
        role=role,
        model="credit",
        digest="sha256:x",
        url="http://x",
        created_at=NOW - timedelta(hours=1),
        expires_at=NOW + timedelta(seconds=expires_in_s),
        handle={},
    )


class FakeBackend:
    def __init__(self, envs):
        self.envs, self.torn_down = envs, []

    def list(self):
        return list(self.envs)

    def teardown(self, release_id):
        self.torn_down.append(release_id)


def test_only_expired_releases_are_removed_and_at_the_boundary_it_counts_as_expired():
    backend = FakeBackend(
        [
            env("a", "candidate", -5),
            env("a", "champion", -5),
            env("b", "candidate", 0),
            env("c", "candidate", 1),
        ]
    )
    removed = sweep(backend, now=NOW)
    assert sorted({e.release_id for e in removed}) == ["a", "b"]
    assert backend.torn_down == ["a", "b"]


def test_dry_run_removes_nothing():
    backend = FakeBackend([env("a", "candidate", -5)])
    assert [e.release_id for e in sweep(backend, dry_run=True, now=NOW)] == ["a"]
    assert backend.torn_down == []
