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


def test_racing_moves_have_exactly_one_winner(tmp_path):
    registry = LocalRegistry(Path(tmp_path))
    winners, losers = [], []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        try:
            registry.set_alias(
                "credit", "production", f"sha256:{i}", expected=None, actor=str(i), reason="race"
            )
            winners.append(i)
        except AliasConflict:
            losers.append(i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 7
    assert registry.get_alias("credit", "production") == f"sha256:{winners[0]}"
    assert len(registry.history("credit")) == 1
