"""The typed form a person fills in to start a release from the Prefect UI.

Each field overrides one spec value for this run only; a field left empty keeps the spec's
value. Ranges are checked again by the spec's own validation.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ReleaseOptions(BaseModel):
    load_profile: Literal["steady", "ramp", "spike", "step", "soak"] | None = Field(
        default=None, description="Locust load profile (spec: load.profile)."
    )
    rate: float | None = Field(
        default=None, gt=0, le=100_000, description="Requests/s to send (spec: load.rate)."
    )
    users: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Most requests in flight; with load.mode closed, users sending at once.",
    )
    duration_s: int | None = Field(
        default=None, ge=1, le=86_400, description="Load test length, seconds."
    )
    p95_ms: float | None = Field(
        default=None, gt=0, description="SLO: 95th percentile latency, ms."
    )
    p99_ms: float | None = Field(
        default=None, gt=0, description="SLO: 99th percentile latency, ms."
    )
    max_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="SLO: largest error rate."
    )
    column_threshold: float | None = Field(
        default=None, gt=0, le=1, description="Drift score at which one column counts as drifted."
    )
    max_drifted_share: float | None = Field(
        default=None, ge=0, le=1, description="Share of drifted columns that fails the drift gate."
    )
    approval_timeout_s: int | None = Field(
        default=None, ge=1, description="How long the approval gate waits before rejecting."
    )

    def to_overrides(self) -> dict[str, Any]:
        """The options as spec overrides (`{"load": {"users": 5}, ...}`), empty ones left out."""
        sections = {
            "load": {
                "profile": self.load_profile,
                "rate": self.rate,
                "users": self.users,
                "duration_s": self.duration_s,
            },
            "slos": {
                "p95_ms": self.p95_ms,
                "p99_ms": self.p99_ms,
                "max_error_rate": self.max_error_rate,
            },
            "drift": {
                "column_threshold": self.column_threshold,
                "max_drifted_share": self.max_drifted_share,
            },
            "approval": {"timeout_s": self.approval_timeout_s},
        }
        overrides = {
            section: {k: v for k, v in values.items() if v is not None}
            for section, values in sections.items()
        }
        return {section: values for section, values in overrides.items() if values}
