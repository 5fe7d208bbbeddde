"""The micro-batcher on its own: who shares a predict call, and when a batch stops waiting."""

from __future__ import annotations

import asyncio

from fearless.serving.batching import BatchOptions, MicroBatcher


def _batcher(calls: list[list[str]], **options) -> MicroBatcher:
    def score(jobs):
        calls.append([job.request_id for job in jobs])
        return [[f"{job.request_id}:{len(job.records)}"] for job in jobs]

    return MicroBatcher(score, BatchOptions(**options))


def _run(scenario):
    async def main():
        calls: list[list[str]] = []
        result = await scenario(calls)
        return calls, result

    return asyncio.run(main())


def test_jobs_submitted_together_share_one_call():
    async def scenario(calls):
        batcher = _batcher(calls)
        await batcher.start()
        answers = await asyncio.gather(*(batcher.submit(f"r{i}", [{}]) for i in range(5)))
        await batcher.stop()
        return answers

    calls, answers = _run(scenario)

    assert calls == [["r0", "r1", "r2", "r3", "r4"]]
    assert answers == [[f"r{i}:1"] for i in range(5)]


def test_a_batch_waits_for_a_request_still_being_received():
    async def scenario(calls):
        batcher = _batcher(calls, max_wait_s=30.0)
        await batcher.start()
        batcher.receiving = 1  # a handler is reading its body
        first = asyncio.create_task(batcher.submit("early", [{}]))
        for _ in range(20):  # many loop turns: the batch must not have gone yet
            await asyncio.sleep(0)
        went_early = list(calls)
        batcher.receiving = 0
        late = await batcher.submit("late", [{}])
        answers = [await first, late]
        await batcher.stop()
        return went_early, answers

    calls, (went_early, answers) = _run(scenario)

    assert went_early == []
    assert calls == [["early", "late"]]
    assert answers == [["early:1"], ["late:1"]]


def test_a_batch_stops_waiting_after_max_wait():
    async def scenario(calls):
        batcher = _batcher(calls, max_wait_s=0.01)
        await batcher.start()
        batcher.receiving = 1  # a body that never completes
        answer = await asyncio.wait_for(batcher.submit("alone", [{}]), timeout=30)
        batcher.receiving = 0
        await batcher.stop()
        return answer

    calls, answer = _run(scenario)

    assert calls == [["alone"]] and answer == ["alone:1"]


def test_a_batch_holds_at_most_max_records():
    async def scenario(calls):
        batcher = _batcher(calls, max_records=4)
        await batcher.start()
        answers = await asyncio.gather(*(batcher.submit(f"r{i}", [{}, {}]) for i in range(3)))
        await batcher.stop()
        return answers

    calls, answers = _run(scenario)

    assert calls == [["r0", "r1"], ["r2"]]
    assert answers == [["r0:2"], ["r1:2"], ["r2:2"]]


def test_a_failing_batch_is_scored_again_one_job_at_a_time():
    async def scenario(calls):
        def score(jobs):
            calls.append([job.request_id for job in jobs])
            if any(job.request_id == "bad" for job in jobs):
                raise ValueError("cannot score")
            return [job.request_id for job in jobs]

        batcher = MicroBatcher(score, BatchOptions())
        await batcher.start()
        answers = await asyncio.gather(
            *(batcher.submit(name, [{}]) for name in ("a", "bad", "b")), return_exceptions=True
        )
        await batcher.stop()
        return answers

    calls, answers = _run(scenario)

    assert calls == [["a", "bad", "b"], ["a"], ["bad"], ["b"]]
    assert answers[0] == "a" and answers[2] == "b"
    assert isinstance(answers[1], ValueError)
