"""The drift alert: what the `fearless-drift-alert` automation records when a model drifts.

Kept as a plain JSON-lines file under the state dir (one line per alert), so an alert is seen
by `tail -f` or any log shipper without a notification service or block to configure.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path


def alert_message(model: str, payload: dict) -> str:
    """One line for people: which model drifted, on how many records, and why."""
    reasons = "; ".join(payload.get("reasons") or []) or "drift detected"
    return f"drift in production for {model} ({payload.get('rows', '?')} records): {reasons}"


def record_alert(alerts_file: Path, model: str, payload: dict) -> str:
    """Append the alert to `alerts_file` and return its message. The payload's fields go
    beside the alert's own (`at`, `model`, `message`), never over them."""
    message = alert_message(model, payload)
    alerts_file.parent.mkdir(parents=True, exist_ok=True)
    line = {"at": datetime.now(UTC).isoformat(), "model": model, "message": message}
    line |= {key: value for key, value in payload.items() if key not in line}
    with alerts_file.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    return message
