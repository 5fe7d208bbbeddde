"""Who may decide a release: the model's approver list, and never whoever started it.

The gate compares names. An approver's name is proven where approvals are signed (see
`fearless.release.signing`); a starter's is what the starting machine reported: the login of
whoever ran `fearless release`, CI's actor for `fearless trigger`, and the git author of the
commit released. A person is the same as a starter identity when the approver's name equals,
ignoring case, the login, the author's email, or a part of that email's local part
(`alice` for `alice@example.com`, `alice+ci@...`, and GitHub's `123+alice@users.noreply...`).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterable, Mapping

# Where CI names the person whose push or click started the job.
CI_ACTORS = ("GITHUB_ACTOR", "GITLAB_USER_LOGIN")


def starting_user(started_by: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """Who runs the command starting a release: CI's actor from CI, the login from a terminal;
    None from the launcher flow (the UI has no users, and the worker's login is no one's)."""
    if started_by == "prefect":
        return None
    actor = next((environ[name] for name in CI_ACTORS if environ.get(name)), None)
    if actor or started_by == "ci":
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def starters_of(source) -> list[str]:
    """The identities of whoever started the release `source` (a ProjectSource) was packed for."""
    if source is None:
        return []
    return [who for who in (source.user, source.git_author) if who]


def names_of(identity: str) -> set[str]:
    """The names one identity goes by: `Ann Lee <ann.lee+ci@x.org>` -> its email, `ann.lee+ci`,
    `ann.lee` and `ci`; a bare login is itself."""
    found = re.search(r"<([^<>]+)>", identity)
    email = (found.group(1) if found else identity).strip().lower()
    names = {identity.strip().lower(), email}
    if "@" in email:
        local = email.split("@", 1)[0]
        names |= {local, *local.split("+")}
    return {n for n in names if n}


def same_person(approver: str, identities: Iterable[str]) -> str | None:
    """The identity `approver` is, among `identities`; None when none."""
    return next((i for i in identities if approver.strip().lower() in names_of(i)), None)


def policy_refusal(
    approve: bool, approver: str, approvers: list[str], starters: list[str]
) -> str | None:
    """Why the gate refuses this decision by its policy; None when it may stand. Only listed
    approvers decide (when the model lists any); a starter may reject their own release, never
    approve it."""
    if approvers and approver not in approvers:
        return (
            f"{approver} is not an approver of this model (approval.approvers: "
            f"{', '.join(approvers)})"
        )
    starter = same_person(approver, starters) if approve else None
    if starter is not None:
        return (
            f"four eyes: {approver} started this release ({starter}), so someone else "
            "must approve it"
        )
    return None
