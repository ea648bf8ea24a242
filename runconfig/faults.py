"""Faults as a phase config or ``--fault`` declares them: the spec models and their parser.

The syntax and the kinds are documented in :mod:`loadgate.faults`, which resolves these
specs to seconds and injects them during a run. The models live here, in the config
layer, because ``[phases.N] faults`` is part of the phase config (:mod:`runconfig.phase_config`)
and the config must be readable without the harness that runs it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

Kind = Literal["kill", "pause", "restart", "cut", "stripe-errors", "stripe-latency"]
KINDS: tuple[str, ...] = ("kill", "pause", "restart", "cut", "stripe-errors", "stripe-latency")
SERVICES: tuple[str, ...] = ("redis", "pgbouncer", "osrm", "stripe", "replica", "worker")
SYNTAX = "KIND:TARGET@START[+DURATION], e.g. kill:redis@30s+20s or stripe-errors:1.0@40%+10%"

_SPEC = re.compile(r"^\s*(?P<kind>[a-z-]+):(?P<arg>[^@]+)@(?P<start>[^+]+)(?:\+(?P<dur>.+))?$")
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|%)?\s*$")


class FaultSpecError(ValueError):
    """A fault written wrongly; the message names the fault, the problem and the syntax."""


class FaultSpec(BaseModel):
    """One fault as declared (config or ``--fault``); times still relative (s or %)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    kind: Kind
    target: str
    settings: dict[str, float] = {}
    """Stripe mock settings during the fault (``error_rate``, ``latency_max_ms``, ...)."""
    start: float
    start_unit: Literal["s", "%"] = "s"
    duration: float | None = None
    duration_unit: Literal["s", "%"] = "s"

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, raw: Any) -> Any:
        return parse_fault(raw).model_dump() if isinstance(raw, str) else raw

    def seconds(self, load_s: float) -> tuple[float, float | None]:
        """(start, end) in seconds after the load start; end None = until the end."""
        start = _absolute(self.start, self.start_unit, load_s)
        if self.duration is None:
            return start, None
        return start, start + _absolute(self.duration, self.duration_unit, load_s)


def _absolute(value: float, unit: str, load_s: float) -> float:
    return value * load_s / 100 if unit == "%" else value


def _time(text: str, what: str, spec: str) -> tuple[float, Literal["s", "%"]]:
    match = _TIME.match(text)
    if not match:
        raise FaultSpecError(
            f"fault {spec!r}: {what} {text!r} is not a time: write 30, 30s, 500ms, 1.5m or 40%"
        )
    value, unit = float(match.group(1)), match.group(2) or "s"
    if unit == "%":
        if value > 100:
            raise FaultSpecError(f"fault {spec!r}: {what} {text!r} is beyond 100% of the load")
        return value, "%"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit], "s"


def parse_fault(text: str) -> FaultSpec:
    """``kill:redis@30s+20s`` → :class:`FaultSpec`; :class:`FaultSpecError` naming the fix."""
    match = _SPEC.match(text or "")
    if not match:
        raise FaultSpecError(f"fault {text!r}: write {SYNTAX}")
    kind, arg = match.group("kind"), match.group("arg").strip()
    if kind not in KINDS:
        raise FaultSpecError(f"fault {text!r}: unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    start, start_unit = _time(match.group("start"), "start", text)
    duration, duration_unit = (None, "s")
    if match.group("dur") is not None:
        duration, duration_unit = _time(match.group("dur"), "duration", text)
        if duration <= 0:
            raise FaultSpecError(f"fault {text!r}: the duration must be positive")
    target, settings = _target(kind, arg, text)
    if kind == "restart" and duration is not None:
        raise FaultSpecError(
            f"fault {text!r}: restart is instantaneous; for a window write kill:{target}@...+D"
        )
    if (kind in ("cut", "stripe-errors", "stripe-latency")) and duration is None:
        raise FaultSpecError(f"fault {text!r}: {kind} needs a duration: add +D, e.g. +20s")
    if target == "worker" and kind in ("kill", "restart") and duration is not None:
        raise FaultSpecError(
            f"fault {text!r}: a killed worker is replaced by uvicorn itself; drop the +D"
        )
    return FaultSpec(
        text=text.strip(),
        kind=kind,  # type: ignore[arg-type]
        target=target,
        settings=settings,
        start=start,
        start_unit=start_unit,
        duration=duration,
        duration_unit=duration_unit,
    )


def _target(kind: str, arg: str, text: str) -> tuple[str, dict[str, float]]:
    """The fault's target service and, for the Stripe mock, its settings."""
    if kind == "stripe-errors":
        rate_text, _, status_text = arg.partition("/")
        try:
            rate, status = float(rate_text), int(status_text or 500)
        except ValueError:
            raise FaultSpecError(
                f"fault {text!r}: write stripe-errors:RATE[/STATUS], e.g. stripe-errors:0.5/503"
            ) from None
        if not 0 < rate <= 1 or not 400 <= status <= 599:
            raise FaultSpecError(
                f"fault {text!r}: the error rate must be in (0, 1] and the status 400-599"
            )
        return "stripe", {"error_rate": rate, "error_status": float(status)}
    if kind == "stripe-latency":
        low, _, high = arg.partition("-")
        try:
            lo, hi = float(low), float(high or low)
        except ValueError:
            raise FaultSpecError(
                f"fault {text!r}: write stripe-latency:MIN-MAX in ms, e.g. stripe-latency:2000-4000"
            ) from None
        if not 0 <= lo <= hi or hi <= 0:
            raise FaultSpecError(f"fault {text!r}: need 0 <= MIN <= MAX and MAX > 0 (ms)")
        return "stripe", {"latency_min_ms": lo, "latency_max_ms": hi}
    if arg not in SERVICES:
        raise FaultSpecError(
            f"fault {text!r}: unknown service {arg!r} (services: {', '.join(SERVICES)})"
        )
    if kind == "cut" and arg != "osrm":
        raise FaultSpecError(f"fault {text!r}: cut applies to osrm; use pause:{arg} to freeze it")
    if arg == "stripe" and kind in ("kill", "restart"):
        raise FaultSpecError(
            f"fault {text!r}: the Stripe mock keeps its payments in memory, so killing it would "
            "lose them (a Stripe outage does not): use pause:stripe or stripe-errors:1.0"
        )
    return arg, {}
