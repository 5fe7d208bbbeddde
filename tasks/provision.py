from __future__ import annotations

from prefect import get_run_logger, task

from fearless.composition import build_services
from fearless.environments import EnvironmentDown
from fearless.release.candidate import Candidate, TestEnvironments
from fearless.release.liveness import candidate_of, environments_down
from fearless.release.provisioning import provision_test_environments
from tasks import PROVISION_STEP, STEP, beside_no_load_test


@task(name="provision-env", **PROVISION_STEP)
def provision_env(release_id: str, candidate: Candidate) -> TestEnvironments:
    """Start the candidate's test environment (and the champion's beside it)."""
    services = build_services()
    with beside_no_load_test(services, release_id, "provisioning"):
        envs = provision_test_environments(services, release_id, candidate)
    logger = get_run_logger()
    logger.info("candidate API at %s, expires %s", envs.candidate.url, envs.candidate.expires_at)
    if envs.champion:
        logger.info("champion %s API at %s", envs.champion.digest, envs.champion.url)
    return envs


@task(name="check-environments", **STEP)
def check_environments(
    release_id: str, envs: TestEnvironments, during: str
) -> EnvironmentDown | None:
    """After a wait nothing watched: each model API found stopped is logged with its last
    lines; the candidate's end is returned, as the flow fails the release on it."""
    down = environments_down(build_services().environments, envs, during)
    for stopped in down:
        get_run_logger().error("%s; its last log lines:\n%s", stopped.describe(), stopped.log_tail)
    return candidate_of(down)
