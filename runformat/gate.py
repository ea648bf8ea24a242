"""The gate of a phase and the validity bounds, as the manifest records them.

``loadgate run`` writes ``config.gate`` and ``config.validity`` from the resolved phase;
analysis reads them back with :meth:`GateSpec.from_dict` / :meth:`ValiditySpec.from_dict`,
which accept exactly this shape (unknown keys or criteria are a format error, not ignored):

    gate = {"users": 1500, "rate": null, "target_users": 1000,
            "criteria": {"p95_ms": 2000, "error_rate": 0.01},
            "routes": {"POST /checkout": {"p95_ms": 3000, "error_rate": 0.01}}}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from runformat.criteria import CRITERIA

#: Event-loop lag P99 of a Locust worker above which its timings are distorted (ms).
#: A gevent worker sleeping 0.1 s that wakes 10 ms late is delaying every send and every
#: response read by as much: latencies of a few ms to a few hundred ms are then measured
#: with an error of that size.
DEFAULT_GENERATOR_LAG_P99_MS = 10.0
#: Share of the gate step's steady window that must hold data.
DEFAULT_MIN_WINDOW_COVERAGE = 0.90
#: Allowed relative gap between achieved throughput and users / (R + Z) (closed model).
DEFAULT_LITTLES_LAW_TOLERANCE = 0.15
#: Allowed share of offered arrivals not achieved (open model).
DEFAULT_ARRIVAL_SHORTFALL = 0.01


class GateFormatError(ValueError):
    """The manifest's gate is not in the one accepted shape."""


@dataclass(frozen=True)
class GateSpec:
    users: int | None = None  # gate load of the closed model
    rate: float | None = None  # gate load of the open model (arrivals/s)
    target_users: int | None = None
    criteria: dict[str, float] = field(default_factory=dict)
    routes: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.criteria and not any(self.routes.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GateSpec:
        data = dict(data or {})
        unknown = sorted(set(data) - {"users", "rate", "target_users", "criteria", "routes"})
        if unknown:
            raise GateFormatError(f"gate: unknown key {unknown[0]!r}")
        criteria = _criteria(data.get("criteria") or {}, "gate", route=False)
        routes = {
            str(r): _criteria(c or {}, f"gate.routes.{r}", route=True)
            for r, c in (data.get("routes") or {}).items()
        }
        return cls(
            users=None if data.get("users") is None else int(data["users"]),
            rate=None if data.get("rate") is None else float(data["rate"]),
            target_users=None if data.get("target_users") is None else int(data["target_users"]),
            criteria=criteria,
            routes=routes,
        )


def _criteria(raw: dict[str, Any], where: str, route: bool) -> dict[str, float]:
    out = {}
    for name, limit in raw.items():
        spec = CRITERIA.get(name)
        if spec is None:
            raise GateFormatError(
                f"{where}: unknown criterion {name!r} (allowed: {', '.join(CRITERIA)})"
            )
        if route and not spec.per_route:
            raise GateFormatError(f"{where}: {name!r} is not a per-route criterion")
        try:
            out[name] = spec.check_limit(limit)
        except ValueError as exc:
            raise GateFormatError(f"{where}: {exc}") from None
    return out


@dataclass(frozen=True)
class ValiditySpec:
    """Bounds of the validity checks that make a verdict INVALID (docs/run-directory.md)."""

    generator_lag_p99_ms: float = DEFAULT_GENERATOR_LAG_P99_MS
    min_window_coverage: float = DEFAULT_MIN_WINDOW_COVERAGE
    littles_law_tolerance: float = DEFAULT_LITTLES_LAW_TOLERANCE
    arrival_shortfall: float = DEFAULT_ARRIVAL_SHORTFALL

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ValiditySpec:
        data = dict(data or {})
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - names)
        if unknown:
            raise GateFormatError(f"validity: unknown key {unknown[0]!r}")
        return cls(**{k: float(v) for k, v in data.items()})
