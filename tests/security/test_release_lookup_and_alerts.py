"""A release is looked up among release-pipeline runs only (a run of another flow given the
release's name once stood in for it, so `fearless approve` could resume it), and a drift alert's
payload cannot overwrite the alert's own fields."""

from __future__ import annotations

import json
from types import SimpleNamespace
from uuid import uuid4

import pytest

from fearless.drift.alerts import record_alert
from fearless.release.runs import find_flow_run


class Runs:
    """A Prefect client over a few flow runs, filtering as the server does."""

    def __init__(self, *runs: tuple[str, str]) -> None:
        self.flows = {name: uuid4() for _, name in runs}
        self.runs = [
            SimpleNamespace(id=uuid4(), name=run, flow_id=self.flows[flow]) for run, flow in runs
        ]

    def read_flow_run(self, run_id):
        return next(r for r in self.runs if r.id == run_id)

    def read_flow(self, flow_id):
        return SimpleNamespace(name=next(n for n, i in self.flows.items() if i == flow_id))

    def read_flow_runs(self, flow_run_filter=None, flow_filter=None, **_):
        names = set(flow_run_filter.name.any_)
        flows = None if flow_filter is None else {self.flows.get(n) for n in flow_filter.name.any_}
        return [r for r in self.runs if r.name in names and (flows is None or r.flow_id in flows)]


def test_a_run_of_another_flow_named_like_a_release_is_not_the_release():
    client = Runs(("credit-1a2b3c4d", "evil-flow"), ("credit-1a2b3c4d", "release-pipeline"))

    found = find_flow_run(client, "credit-1a2b3c4d")

    assert client.read_flow(found.flow_id).name == "release-pipeline"


def test_only_another_flows_run_of_that_name_is_no_release():
    client = Runs(("credit-1a2b3c4d", "evil-flow"))

    with pytest.raises(LookupError, match="credit-1a2b3c4d"):
        find_flow_run(client, "credit-1a2b3c4d")
    with pytest.raises(LookupError, match="release-pipeline"):
        find_flow_run(client, str(client.runs[0].id))


def test_a_drift_alert_payload_cannot_overwrite_the_alerts_own_fields(tmp_path):
    alerts = tmp_path / "drift.jsonl"
    payload = {
        "model": "someone-else",
        "message": "all is well",
        "at": "1970-01-01T00:00:00+00:00",
        "rows": 600,
        "reasons": ["income drifted"],
        "scores": {"drifted_share": 0.5},
    }

    message = record_alert(alerts, "credit", payload)

    [line] = [json.loads(x) for x in alerts.read_text().splitlines()]
    assert (line["model"], line["message"]) == ("credit", message)
    assert "income drifted" in message and line["at"].startswith("20")
    assert line["scores"] == {"drifted_share": 0.5} and line["rows"] == 600
