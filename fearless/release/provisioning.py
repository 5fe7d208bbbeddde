"""Provisioning a release's test environments: the candidate, and the champion beside it."""

from __future__ import annotations

from fearless.release.candidate import Candidate, TestEnvironments, environment_expiry
from fearless.release.liveness import (
    WHILE_PROVISIONING,
    CandidateDown,
    candidate_of,
    environments_down,
)


def provision_test_environments(
    services, release_id: str, candidate: Candidate
) -> TestEnvironments:
    """Start the candidate's model API, and the current champion's when there is one.

    The champion runs in the test environment too, so the two can be compared on the same
    records without sending test traffic to production. A candidate whose model API stopped
    before both were up raises `CandidateDown`; a champion that did is left for the load test
    to note (it skips the comparison).
    """
    expires_at = environment_expiry(candidate.spec, services.settings.env_grace_s)
    backend = services.environments
    candidate_env = backend.provision(release_id, "candidate", candidate.bundle(), expires_at)
    champion_digest = services.registry.get_alias(candidate.name, "production")
    champion_env = None
    if champion_digest is not None and champion_digest != candidate.digest:
        champion = services.registry.get_bundle(candidate.name, champion_digest)
        champion_env = backend.provision(release_id, "champion", champion, expires_at)
    envs = TestEnvironments(candidate=candidate_env, champion=champion_env)
    down = candidate_of(environments_down(backend, envs, WHILE_PROVISIONING))
    if down is not None:
        raise CandidateDown(down)
    return envs
