"""SSH signatures over approval statements, made and checked by OpenSSH's `ssh-keygen -Y`.

An approver signs with the SSH key they already have; the platform lists who may approve in an
ssh-keygen `allowed_signers` file (one `principal key` per line). Nothing here decides what a
statement says: see `fearless.release.approval`.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "fearless-approval"
ARMOR = re.compile(
    r"-----BEGIN SSH SIGNATURE-----(?P<body>[A-Za-z0-9+/=\s]+)-----END SSH SIGNATURE-----"
)
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]+")


class SigningError(RuntimeError):
    """The approver's key could not sign (no such key, ssh-keygen missing, passphrase refused)."""


@dataclass(frozen=True)
class SignatureCheck:
    """Whether a signature is `principal`'s over a statement; `reason` says why not."""

    ok: bool
    reason: str = ""
    key: str = ""  # the signing key's fingerprint, once the signature itself checked out


def sign(statement: str, key: Path) -> str:
    """The armored signature of `statement` by `key` (a private key, or a public key whose
    private half an ssh-agent holds). Prompts on the terminal for a passphrase if it has one."""
    with tempfile.TemporaryDirectory(prefix="fearless-sign-") as tmp:
        message = Path(tmp) / "approval"
        message.write_text(statement)
        args = ["-Y", "sign", "-n", NAMESPACE, "-f", str(key), str(message)]
        done = _ssh_keygen(args, timeout_s=600)  # a passphrase is typed at the terminal
        if done.returncode != 0:
            raise SigningError(f"could not sign with {key}: {_last_line(done)}")
        return message.with_name("approval.sig").read_text()


def normalized(signature: str) -> str | None:
    """The signature as ssh-keygen reads it, whatever a paste did to its line breaks; None if
    it holds no armored SSH signature."""
    match = ARMOR.search(signature or "")
    if match is None:
        return None
    body = "".join(match["body"].split())
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----", ""])


def verify(statement: str, signature: str, principal: str, allowed_signers: Path) -> SignatureCheck:
    """Whether `signature` is a signature of `statement`, in the approval namespace, by a key
    `allowed_signers` lists for `principal`; the reason names what failed."""
    try:
        return _verify(statement, signature, principal, allowed_signers)
    except (SigningError, subprocess.TimeoutExpired, OSError) as exc:
        return SignatureCheck(False, f"the signature could not be checked: {exc}")


def _verify(statement: str, signature: str, principal: str, allowed_signers: Path):
    armored = normalized(signature)
    if armored is None:
        return SignatureCheck(False, "the signature is not an SSH signature block")
    if not allowed_signers.is_file():
        return SignatureCheck(False, f"the allowed_signers file {allowed_signers} is missing")
    with tempfile.TemporaryDirectory(prefix="fearless-verify-") as tmp:
        sig = Path(tmp) / "approval.sig"
        sig.write_text(armored)
        own = _ssh_keygen(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], statement)
        if own.returncode != 0:
            return SignatureCheck(
                False,
                "the signature is not over this decision (made for another release, digest, "
                f"decision, approver or gate, or altered): {_last_line(own)}",
            )
        key = _fingerprint(own)
        listed = ["-Y", "find-principals", "-f", str(allowed_signers), "-s", str(sig)]
        found = _ssh_keygen(listed)
        if found.returncode != 0:
            return SignatureCheck(False, f"key {key} is not in {allowed_signers}", key)
        args = ["-Y", "verify", "-f", str(allowed_signers), "-I", principal, "-n", NAMESPACE]
        checked = _ssh_keygen([*args, "-s", str(sig)], statement)
        if checked.returncode != 0:
            owners = found.stdout.split()
            listed = f"not for {principal!r}" if principal not in owners else "but not for this"
            return SignatureCheck(
                False,
                f"key {key} is listed for {', '.join(owners)}, {listed}: {_last_line(checked)}",
                key,
            )
        return SignatureCheck(True, key=key)


def _ssh_keygen(
    args: list[str], stdin: str | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            ["ssh-keygen", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        raise SigningError("ssh-keygen is not installed (Debian: openssh-client)") from None


def _fingerprint(done: subprocess.CompletedProcess) -> str:
    match = FINGERPRINT.search(done.stdout + done.stderr)
    return match.group(0) if match else "(unknown key)"


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"ssh-keygen exited {done.returncode}"
