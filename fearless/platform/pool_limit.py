"""The embedded server holds a work pool's concurrency limit where a run takes its slot.

Prefect applies a pool's `concurrency_limit` only in the query that hands scheduled runs to
workers. On PostgreSQL that query locks the runs it picks with `FOR UPDATE SKIP LOCKED`, so two
workers polling at the same moment each skip the run the other holds and take a different one:
with a limit of 1, two runs proposed at once both got the place (a fresh-clone CI waited in vain
for one release running and the other waiting). The query cannot see a claim another
transaction has not committed, so no tuning of it closes this.

`HoldWorkPoolLimit` is an orchestration rule on the move into Pending, the step a worker takes
before it starts a run: it counts the pool's Pending and Running runs, as Prefect's query does,
and sends a run that finds the pool full back to Scheduled ("AwaitingConcurrencySlot", Prefect's
own name for a run that waits for a limit) in its queue, where the query hands it out again once
a slot is free. The count is serialized per pool: on PostgreSQL by a transaction-scoped advisory
lock on the pool, on SQLite by the write lock every transaction takes when it begins
(`busy_retry.begin_sqlite_writes_immediately`). Prefect lets a server choose its flow policy
(`ORCHESTRATION_DEPENDENCIES`); `hold_pool_limits_at_pending` installs one with the rule added.
"""

from __future__ import annotations

from typing import Any, ClassVar

AWAITING_SLOT = "AwaitingConcurrencySlot"  # Prefect's name for a run sent back to wait for a limit


def _rule_class():
    """Built on first use: Prefect's server modules are imported only by the server."""
    import sqlalchemy as sa
    from prefect.server import models
    from prefect.server.orchestration.core_policy import ALL_ORCHESTRATION_STATES
    from prefect.server.orchestration.rules import FlowRunOrchestrationRule
    from prefect.server.schemas import states
    from prefect.server.utilities.database import get_dialect

    class HoldWorkPoolLimit(FlowRunOrchestrationRule):
        """A run that would take a slot of a full work pool waits Scheduled in its queue."""

        FROM_STATES: ClassVar = ALL_ORCHESTRATION_STATES - {
            states.StateType.PENDING,
            states.StateType.RUNNING,
            states.StateType.CANCELLING,
        }
        TO_STATES: ClassVar = {states.StateType.PENDING}

        async def before_transition(
            self, initial_state: Any, proposed_state: Any, context: Any
        ) -> None:
            session, queue_id = context.session, context.run.work_queue_id
            if session is None or queue_id is None or proposed_state is None:
                return
            queue = await models.workers.read_work_queue(session=session, work_queue_id=queue_id)
            pool = queue and await models.workers.read_work_pool(
                session=session, work_pool_id=queue.work_pool_id
            )
            if pool is None or pool.concurrency_limit is None:
                return
            if get_dialect(session.get_bind().engine).name == "postgresql":
                key = pool.id.int % 2**63  # pg_advisory_xact_lock takes a bigint
                await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            taken = await models.workers.count_work_pool_slot_holders(
                session=session, work_pool_id=pool.id
            )
            if taken >= pool.concurrency_limit:
                await self.reject_transition(
                    state=states.Scheduled(name=AWAITING_SLOT),
                    reason=(
                        f"Work pool {pool.name} runs {pool.concurrency_limit} at once, "
                        f"all taken: {taken}."
                    ),
                )

    return HoldWorkPoolLimit


def flow_policy():
    """Prefect's core flow policy with `HoldWorkPoolLimit` before the deployment limit's rule,
    so a run sent back to wait never holds a deployment slot."""
    from prefect.server.orchestration.core_policy import CoreFlowPolicy, SecureFlowConcurrencySlots

    rule = _rule_class()

    class PoolLimitedFlowPolicy(CoreFlowPolicy):
        @staticmethod
        def priority():
            rules = list(CoreFlowPolicy.priority())
            rules.insert(rules.index(SecureFlowConcurrencySlots), rule)
            return rules

    return PoolLimitedFlowPolicy


def hold_pool_limits_at_pending() -> None:
    """Make this server's flow runs take their pool's slot through `HoldWorkPoolLimit`."""
    from prefect.server.orchestration.dependencies import ORCHESTRATION_DEPENDENCIES

    policy = flow_policy()

    async def provide():
        return policy

    ORCHESTRATION_DEPENDENCIES["flow_policy_provider"] = provide
