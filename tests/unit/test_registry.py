import threading
from pathlib import Path

import pytest

from fearless.registry import AliasConflict
from fearless.registry.local import LocalRegistry


def test_alias_moves_by_compare_and_swap(tmp_path):
    registry = LocalRegistry(tmp_path)
    assert registry.get_alias("credit", "production") is None
    registry.set_alias("credit", "production", "sha256:a", expected=None, actor="ann", reason="r1")
    with pytest.raises(AliasConflict, match="someone moved it first"):
        registry.set_alias(
            "credit", "production", "sha256:b", expected=None, actor="bob", reason="r2"
        )
    registry.set_alias(
        "credit", "production", "sha256:b", expected="sha256:a", actor="bob", reason="r2"
    )
    assert registry.get_alias("credit", "production") == "sha256:b"
    moves = registry.history("credit")
    assert [(m.from_digest, m.to_digest, m.actor) for m in moves] == [
        (None, "sha256:a", "ann"),
        ("sha256:a", "sha256:b", "bob"),
    ]


def race_for_the_alias(registry, racers: int = 8) -> tuple[list[int], list[int]]:
    """`racers` threads move `credit:production` from nothing at the same moment; who won."""
    winners, losers = [], []
    barrier = threading.Barrier(racers)

    def race(i: int) -> None:
        barrier.wait()
        try:
            registry.set_alias(
                "credit", "production", f"sha256:{i}", expected=None, actor=str(i), reason="race"
            )
            winners.append(i)
        except AliasConflict:
            losers.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return winners, losers


def test_racing_moves_have_exactly_one_winner(tmp_path):
    registry = LocalRegistry(Path(tmp_path))
    winners, losers = race_for_the_alias(registry)
    assert len(winners) == 1 and len(losers) == 7
    assert registry.get_alias("credit", "production") == f"sha256:{winners[0]}"
    assert len(registry.history("credit")) == 1


def test_one_source_kept_by_many_threads_at_once_is_kept_whole(tmp_path):
    """Releases of one source started together from one process (a trigger, the storm bench):
    each keeps the pack, and none finds its staged copy gone."""
    registry, archive = LocalRegistry(tmp_path / "registry"), tmp_path / "source.tar"
    archive.write_bytes(b"pack" * 100_000)
    digest = "ab" * 32
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def keep():
        start.wait()
        try:
            registry.store_source("credit", digest, archive)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=keep) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert registry.get_source("credit", digest).read_bytes() == archive.read_bytes()
    assert [p.name for p in registry.get_source("credit", digest).parent.iterdir()] == [
        f"{digest}.tar"
    ]
