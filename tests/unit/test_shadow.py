"""Shadow traffic in the bake: pairing the two versions' rows, and the verdict's thresholds."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fearless.production.bake import Scrape, evaluate_bake
from fearless.production.shadow import ShadowPairs
from tests.unit.test_bake import spec_with, traffic


def append(root: Path, pid: int, *rows: dict, day: str = "2026-12-02") -> None:
    folder = root / "credit" / day
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{pid}-1.jsonl").open("ab") as out:
        out.write(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows))


def row(request: str, age: int, prediction: int, score: float) -> dict:
    return {"request_id": request, "inputs": {"age": age}, "prediction": prediction, "score": score}


def test_rows_pair_by_request_and_inputs_whichever_side_comes_first(tmp_path):
    live, shadow = tmp_path / "live", tmp_path / "shadow"
    pairs = ShadowPairs.of("credit", live=(live, 11), shadow=(shadow, 22))
    append(live, 11, row("a", 30, 1, 0.9), row("a", 40, 0, 0.2), row("b", 30, 1, 0.7))
    append(live, 99, row("c", 30, 1, 0.7))  # another process's rows: not production's
    assert pairs.read() == (0, 0, 0.0)
    append(shadow, 22, row("a", 40, 1, 0.6), row("a", 30, 1, 0.8), row("c", 30, 0, 0.1))
    compared, agreed, shift = pairs.read()
    assert (compared, agreed, shift) == (2, 1, pytest.approx(0.5))
    with (shadow / "credit" / "2026-12-02" / "22-1.jsonl").open("ab") as out:
        out.write(orjson.dumps(row("b", 30, 1, 0.75))[:-3])  # a torn line: wait for the rest
    assert pairs.read()[0] == 2
    with (shadow / "credit" / "2026-12-02" / "22-1.jsonl").open("ab") as out:
        out.write(orjson.dumps(row("b", 30, 1, 0.75))[-3:] + b"\n")
    append(shadow, 22, row("b", 30, 1, 0.75), day="2026-12-03")  # a new day's file: read too
    assert pairs.read() == (3, 2, pytest.approx(0.55))
    pairs.close()


def shadowed(compared: int, agreed: int, shift: float) -> Scrape:
    return traffic(100).model_copy(update={"compared": compared, "agreed": agreed, "shift": shift})


@pytest.mark.parametrize(
    ("bake", "passed"),
    [
        ({"min_agreement": 0.9}, True),  # 90% agreement == the threshold
        ({"min_agreement": 0.91}, False),
        ({"max_prediction_shift": 0.05}, True),  # mean shift 0.05 == the threshold
        ({"max_prediction_shift": 0.049}, False),
        ({}, True),  # no threshold: reported only
    ],
)
def test_prediction_drift_thresholds_at_their_boundaries(bake, passed):
    verdict = evaluate_bake(Scrape(), shadowed(40, 36, 2.0), spec_with(min_requests=20, **bake))
    assert verdict.passed is passed, verdict.reasons
    assert (verdict.compared, verdict.agreement) == (40, 0.9)
    assert verdict.prediction_shift == pytest.approx(0.05)
    assert "agreement 90.00%" in verdict.summary()


def test_too_few_compared_records_are_noted_not_judged():
    spec = spec_with(min_requests=20, min_agreement=1.0)
    verdict = evaluate_bake(Scrape(), shadowed(19, 0, 19.0), spec)
    assert verdict.passed and "only 19 records compared" in verdict.notes[0]
