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
