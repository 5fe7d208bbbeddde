"""Whether a release's test environments still run, looked at between the steps that watch them.

The load test and the drift check watch their model APIs while they run (`gates.Watch`). A
model API can also stop where nothing watches: while the champion is still being provisioned,
or during an approval wait that may last a day. The next step would then judge a process that
is gone, or promote a candidate whose API crashed while idle, so these looks name it instead.
"""

from __future__ import annotations

from fearless.environments import EnvironmentBackend, EnvironmentDown, EnvironmentError_
from fearless.release.candidate import TestEnvironments

WHILE_PROVISIONING = "while its test environments were provisioned"
WHILE_AWAITING_APPROVAL = "while the release waited for approval"


class CandidateDown(EnvironmentError_):
    """The candidate's model API stopped between watched steps; `down` says how."""

    def __init__(self, down: EnvironmentDown) -> None:
        super().__init__(down.describe())
        self.down = down

    def __reduce__(self):  # Prefect keeps a failed task's exception: it must round-trip
        return (type(self), (self.down,))


def environments_down(
    backend: EnvironmentBackend, envs: TestEnvironments, during: str
) -> list[EnvironmentDown]:
    """Each of the release's model APIs found stopped, marked with when it was seen so."""
    down = []
    for env in (envs.candidate, envs.champion):
        if env is not None and (found := backend.check(env)) is not None:
            down.append(found.model_copy(update={"during": during}))
    return down


def candidate_of(down: list[EnvironmentDown]) -> EnvironmentDown | None:
    return next((d for d in down if d.role == "candidate"), None)
