"""A storm on the AWS provisioning path (moto): test environments created at once, as that many
releases would, then each torn down by its release at once, leaving no tagged resource behind.
Ten here; `bench/storm_aws.py` runs a hundred. A release finds its own resources by their
names, so its teardown's calls do not grow with the environments of other releases."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from fearless.aws import TAG_PREFIX
from fearless.environments.ecs.backend import EcsEnvironments
from tests.integration.test_aws_environments import (  # noqa: F401 (the fixture)
    aws,
    bundle,
    in_hour,
    resources,
)

RELEASES = 10
AT_ONCE = 16  # threads, each one release's provisioning or teardown at a time


def test_environments_made_at_once_are_each_tagged_and_all_torn_down(aws, tmp_path):  # noqa: F811
    config, ecs, discovery, ecr = aws
    backend = EcsEnvironments(config, ecs, discovery, tmp_path, ecr=ecr, waiter=lambda env: None)
    release_ids = [f"storm-{n:04d}" for n in range(RELEASES)]
    candidate = bundle(tmp_path)
    began = time.monotonic()
    with ThreadPoolExecutor(AT_ONCE) as pool:
        envs = list(
            pool.map(lambda r: backend.provision(r, "candidate", candidate, in_hour()), release_ids)
        )
        created = resources(aws)
        provisioned_s = time.monotonic() - began
        torn = list(pool.map(backend.teardown, release_ids))
    print(f"{RELEASES} environments: provisioned in {provisioned_s:.1f} s, all gone in "
          f"{time.monotonic() - began:.1f} s")  # fmt: skip

    assert len({e.url for e in envs}) == RELEASES
    # three resources each (service, task definition, Cloud Map service), each tagged with its
    # own release
    assert len(created) == 3 * RELEASES
    owners = sorted(tags[f"{TAG_PREFIX}release-id"] for tags in created.values())
    assert owners == sorted(release_ids * 3)
    assert [len(found) for found in torn] == [1] * RELEASES
    assert resources(aws) == {}
    assert backend.list() == []


def calls_to_find(backend: EcsEnvironments, clients, release_id: str) -> Counter:
    """The AWS API calls finding one release's environments makes, by operation."""
    calls: Counter = Counter()

    def count(event_name: str, **_) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    for client in clients:
        client.meta.events.register("before-call.*.*", count)
    try:
        assert [e.release_id for e in backend.inventory.found(release_id)] == [release_id]
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", count)
    return calls


def test_finding_one_release_costs_the_same_beside_two_or_eight_others(aws, tmp_path):  # noqa: F811
    config, ecs, discovery, ecr = aws
    backend = EcsEnvironments(config, ecs, discovery, tmp_path, ecr=ecr, waiter=lambda env: None)
    candidate = bundle(tmp_path)
    for n in range(3):
        backend.provision(f"few-{n:04d}", "candidate", candidate, in_hour())
    beside_two = calls_to_find(backend, (ecs, discovery), "few-0000")
    for n in range(3, 9):
        backend.provision(f"few-{n:04d}", "candidate", candidate, in_hour())
    beside_eight = calls_to_find(backend, (ecs, discovery), "few-0000")
    assert beside_eight == beside_two, (beside_two, beside_eight)
    assert sum(beside_two.values()) <= 10, beside_two
