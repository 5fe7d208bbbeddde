"""Prefect tasks: each a thin wrapper over one plain function of the `fearless` library."""

from __future__ import annotations

from typing import Any


def run_scoped(context: Any, parameters: dict[str, Any]) -> str:
    """Cache a step within its flow run only.

    A release resumed after approval re-runs its flow from the top; finished steps then return
    their persisted results instead of running again. A new release never reuses them.
    """
    return f"{context.task_run.flow_run_id}:{context.task.name}"


STEP = {"cache_key_fn": run_scoped, "persist_result": True}
