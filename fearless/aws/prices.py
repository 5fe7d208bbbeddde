"""What a test environment reserves on Fargate, and what that costs at list prices.

Prices are on-demand Linux list prices per hour (USD), checked against the public Fargate
pricing page; update the table when AWS changes them. Fargate bills the task size it
reserves, so a spec's cpu/memory is first rounded up to the nearest valid Fargate size.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_CHECKED = "2025-01"

FARGATE_PRICES: dict[tuple[str, str], tuple[float, float]] = {
    # (region, architecture): (USD per vCPU-hour, USD per GB-hour)
    ("us-east-1", "x86_64"): (0.04048, 0.004445),
    ("us-east-1", "arm64"): (0.03238, 0.00356),
    ("eu-west-1", "x86_64"): (0.04048, 0.004445),
    ("eu-west-1", "arm64"): (0.03238, 0.00356),
    ("eu-central-1", "x86_64"): (0.04656, 0.00511),
    ("eu-central-1", "arm64"): (0.03725, 0.00409),
}

# cpu units: allowed memory (MiB), from the ECS task size table
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}


class PriceError(ValueError):
    """No valid Fargate size or no price for the request."""


@dataclass(frozen=True)
class TaskSize:
    cpu_units: int
    memory_mib: int

    @property
    def vcpu(self) -> float:
        return self.cpu_units / 1024

    @property
    def memory_gb(self) -> float:
        return self.memory_mib / 1024


@dataclass(frozen=True)
class ComputeCost:
    """Compute an environment reserved for its life, and its cost at list prices."""

    size: TaskSize
    hours: float
    vcpu_hours: float
    gb_hours: float
    usd: float


def fargate_size(cpu: float, memory_mb: int) -> TaskSize:
    """The smallest valid Fargate task size with at least `cpu` vCPU and `memory_mb` MiB."""
    for units, memories in FARGATE_SIZES.items():
        if units / 1024 < cpu:
            continue
        fitting = [m for m in memories if m >= memory_mb]
        if fitting:
            return TaskSize(units, fitting[0])
    raise PriceError(f"no Fargate task size has {cpu} vCPU and {memory_mb} MiB")


def compute_cost(
    cpu: float, memory_mb: int, hours: float, region: str, architecture: str = "x86_64"
) -> ComputeCost:
    """vCPU-hours, GB-hours and USD of one task of the given size running for `hours`."""
    if hours < 0:
        raise PriceError(f"negative duration {hours} h")
    try:
        per_vcpu, per_gb = FARGATE_PRICES[(region, architecture)]
    except KeyError:
        raise PriceError(f"no Fargate price for {region}/{architecture} in the table") from None
    size = fargate_size(cpu, memory_mb)
    vcpu_hours, gb_hours = size.vcpu * hours, size.memory_gb * hours
    return ComputeCost(
        size=size,
        hours=hours,
        vcpu_hours=vcpu_hours,
        gb_hours=gb_hours,
        usd=round(vcpu_hours * per_vcpu + gb_hours * per_gb, 6),
    )
