"""The AWS provisioning path under a storm, on moto: N test environments created at once (as N
releases would, each its own), then each torn down by its release id at once, as each release
does at its end. Prints the wall times, the AWS calls each half made, and the tagged resources
left (the goal: none).

    uv run python bench/storm_aws.py            # 100 environments, 16 at a time
    uv run python bench/storm_aws.py --n 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

REGION = "us-east-1"
REPOSITORY = "fearless-environments"
DIGEST = "sha256:" + "ab" * 32


class CallCount:
    """AWS calls made by every client it is installed on (a botocore event hook)."""

    def __init__(self) -> None:
        self.count, self._lock = 0, threading.Lock()

    def install(self, client):
        client.meta.events.register("before-call", self._seen)
        return client

    def _seen(self, **_) -> None:
        with self._lock:
            self.count += 1


def moto_account(endpoint: str, calls: CallCount):
    """A cluster, a namespace, a subnet, a security group and a pushed image on moto."""
    import boto3

    from fearless.environments.ecs.config import EcsConfig

    def make(service):
        return calls.install(boto3.client(service, region_name=REGION, endpoint_url=endpoint))

    ecs, discovery, ec2, ecr = make("ecs"), make("servicediscovery"), make("ec2"), make("ecr")
    repository = ecr.create_repository(repositoryName=REPOSITORY)["repository"]["repositoryUri"]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "0" * 64,
        },
        "layers": [],
    }
    ecr.put_image(
        repositoryName=REPOSITORY, imageTag=DIGEST[7:19], imageManifest=json.dumps(manifest)
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="envs", Description="envs", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName="fearless")
    discovery.create_private_dns_namespace(Name="fearless.internal", Vpc=vpc)
    namespace = next(
        n["Id"]
        for n in discovery.list_namespaces()["Namespaces"]
        if n["Name"] == "fearless.internal"
    )
    config = EcsConfig(
        region=REGION,
        cluster="fearless",
        subnets=[subnet],
        security_groups=[group],
        image_repository=repository,
        namespace_id=namespace,
        execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        task_role_arn="arn:aws:iam::123456789012:role/fearless-task",
        log_group="/fearless/environments",
        creator="bench",
    )
    return config, ecs, discovery, ecr


def tagged_left(ecs, discovery, cluster: str) -> list[str]:
    """ECS services, task definitions and Cloud Map services still carrying a Fearless tag."""
    from fearless.aws import TAG_PREFIX, tag_dict

    def ours(tags) -> bool:
        return any(k.startswith(TAG_PREFIX) for k in tag_dict(tags))

    left = []
    for arn in ecs.list_services(cluster=cluster, maxResults=100)["serviceArns"]:
        service = ecs.describe_services(cluster=cluster, services=[arn], include=["TAGS"])
        if service["services"][0]["status"] == "ACTIVE" and ours(
            service["services"][0].get("tags")
        ):
            left.append(arn)
    for family in ecs.list_task_definition_families(status="ALL")["families"]:
        for arn in ecs.list_task_definitions(familyPrefix=family, status="ALL")[
            "taskDefinitionArns"
        ]:
            if ours(ecs.list_tags_for_resource(resourceArn=arn)["tags"]):
                left.append(arn)
    for service in discovery.list_services()["Services"]:
        if ours(discovery.list_tags_for_resource(ResourceARN=service["Arn"])["Tags"]):
            left.append(service["Arn"])
    return left


def storm(n: int, at_once: int) -> dict:
    from moto.server import ThreadedMotoServer

    from fearless.bundles.bundle import Bundle
    from fearless.environments.ecs.backend import EcsEnvironments
    from fearless.spec import ModelSpec

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "testing"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    calls = CallCount()
    try:
        config, ecs, discovery, ecr = moto_account(f"http://{host}:{port}", calls)
        with tempfile.TemporaryDirectory(prefix="fearless-storm-aws-") as tmp:
            spec = ModelSpec.model_validate(
                {
                    "name": "credit",
                    "model": "model.skops",
                    "reference_data": "reference.parquet",
                    "schema": {"age": {"type": "int"}},
                }
            )
            bundle = Bundle(path=Path(tmp), digest=DIGEST, spec=spec)
            backend = EcsEnvironments(
                config, ecs, discovery, Path(tmp), ecr=ecr, waiter=lambda env: None
            )
            releases = [f"storm-{i:04d}" for i in range(n)]
            expires = datetime.now(UTC) + timedelta(hours=1)
            before, began = calls.count, time.monotonic()
            with ThreadPoolExecutor(at_once) as pool:
                envs = list(
                    pool.map(lambda r: backend.provision(r, "candidate", bundle, expires), releases)
                )
                provisioned_s, provision_calls = time.monotonic() - began, calls.count - before
                before, began = calls.count, time.monotonic()
                torn = list(pool.map(backend.teardown, releases))
                teardown_s, teardown_calls = time.monotonic() - began, calls.count - before
            left = tagged_left(ecs, discovery, config.cluster)
    finally:
        server.stop()
    return {
        "n": n,
        "created": len({e.url for e in envs}),
        "torn_down": sum(len(t) for t in torn),
        "provision_s": provisioned_s,
        "provision_calls": provision_calls,
        "teardown_s": teardown_s,
        "teardown_calls": teardown_calls,
        "leaked": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="Environments (default 100).")
    parser.add_argument("--at-once", type=int, default=16, help="Threads (default 16).")
    args = parser.parse_args()
    if args.n < 1 or args.at_once < 1:
        parser.error("--n and --at-once must be at least 1")
    r = storm(args.n, args.at_once)
    print(f"\n{r['n']} test environments on moto, {args.at_once} at a time")
    print("| half | environments | wall s | AWS calls | calls per environment |")
    print("|---|---|---|---|---|")
    for half, count in (("provision", r["created"]), ("teardown", r["torn_down"])):
        calls = r[f"{half}_calls"]
        print(f"| {half} | {count} | {r[f'{half}_s']:.1f} | {calls} | {calls / r['n']:.1f} |")
    print(
        f"tagged resources left: {len(r['leaked'])}"
        + (f" {r['leaked'][:5]}" if r["leaked"] else "")
    )
    met = r["created"] == r["torn_down"] == r["n"] and not r["leaked"]
    load = os.getloadavg()
    print(f"(host: {os.cpu_count()} cores, load average {load[0]:.1f} at the end)")
    print(f"goal (all {r['n']} created and torn down, 0 left): {'met' if met else 'NOT met'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
