"""The phase config (``config/phases.toml``): loaded, validated, resolved.

The file is the single source of what a phase runs: persona mix, think times,
ramps, fixture sizes, validity bounds and gates. The models below only check it,
so every ``[defaults]`` key is required here (no second copy of its values in
code); a phase may override some of them.

Why pydantic: a malformed config must be rejected *before* anything starts,
with the offending key and the allowed values named; pydantic's validation
errors carry exactly that (a location path and the constraint), so we only
reformat them into one line. Resolution turns a phase plus command-line
overrides into concrete load stages (the stepped ramp the analysis slices
into steady-state steps).
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from runconfig.constants import PERSONAS, PROFILES, ProfileName
from runconfig.faults import FaultSpec
from runconfig.reproduce import ReproduceSpec
from runconfig.sizes import SIZES, Size, get_size
from runconfig.traffic import Traffic
from runformat.gate import GateFormatError, GateSpec

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "phases.toml"
MODELS = ("closed", "open")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class ConfigError(ValueError):
    """The phase config is invalid; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ramp(_Strict):
    steps: Annotated[int, Field(ge=1, le=100)]
    step_ramp_s: NonNegativeFloat
    step_hold_s: PositiveFloat
    warmup_s: NonNegativeFloat
    final_hold_s: PositiveFloat | None = None
    """Hold of the last level, the gate step (default ``step_hold_s``): its intervals need
    several batches of the latencies' memory (docs/statistics.md), more than a ramp step."""

    def hold_of(self, level: int) -> float:
        return (self.final_hold_s or self.step_hold_s) if level == self.steps else self.step_hold_s


class OpenModel(_Strict):
    rate_per_user: PositiveFloat


class Gate(_Strict):
    """Gate criteria: flat ``name = limit`` pairs from the criterion registry
    (``runformat.criteria``), plus ``routes."METHOD /path" = { name = limit }``."""

    criteria: dict[str, float] = Field(default_factory=dict)
    routes: dict[str, dict[str, float]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "criteria" in raw:
            return raw
        routes = raw.get("routes", {})
        criteria = {k: v for k, v in raw.items() if k != "routes"}
        try:
            spec = GateSpec.from_dict({"criteria": criteria, "routes": routes})
        except GateFormatError as exc:
            raise ValueError(str(exc).removeprefix("gate: ").removeprefix("gate.")) from None
        for route in spec.routes:
            method, _, path = route.partition(" ")
            if method not in HTTP_METHODS or not path.startswith("/"):
                raise ValueError(
                    f"routes.{route!r}: name a route as 'METHOD /template', e.g. 'POST /checkout'"
                )
        return {"criteria": spec.criteria, "routes": spec.routes}


class Validity(_Strict):
    """Bounds of the validity checks (a failed one makes the verdict INVALID)."""

    generator_lag_p99_ms: PositiveFloat
    min_window_coverage: Annotated[float, Field(gt=0, le=1)]
    littles_law_tolerance: PositiveFloat
    arrival_shortfall: Annotated[float, Field(ge=0, le=1)]


def _check_mix(mix: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(mix) - set(PERSONAS))
    if unknown:
        raise ValueError(f"unknown persona {unknown[0]!r} (allowed: {', '.join(PERSONAS)})")
    if any(weight < 0 for weight in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError("weights must be >= 0 with a positive sum")
    return mix


def _check_think(think: tuple[float, float]) -> tuple[float, float]:
    if think[0] < 0 or think[1] < think[0]:
        raise ValueError("need [min, max] with 0 <= min <= max")
    return think


class Defaults(_Strict):
    """``[defaults]``: every key required, so the file states every value a run uses."""

    model: Literal["closed", "open"]
    think_time_s: tuple[float, float]
    persona_mix: dict[str, float]
    ramp: Ramp
    open: OpenModel
    validity: Validity
    traffic: Traffic
    isolation: Literal["auto", "cpuset", "weights", "none"]
    """CPU isolation of the generator from a stack on the same host (stack.isolation)."""
    generator_cpus: str
    """"auto", a count or a CPU list: the generator's share of the host's CPUs."""
    gate_hold_max_s: NonNegativeFloat
    """Longest extension of the gate step while a criterion is undecided (0 = never)."""

    @field_validator("persona_mix")
    @classmethod
    def _valid_mix(cls, mix: dict[str, float]) -> dict[str, float]:
        return _check_mix(mix)

    @field_validator("generator_cpus", mode="before")
    @classmethod
    def _cpus_text(cls, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise ValueError('give "auto", a count ("1") or a CPU list ("0-1,3")')
        return value

    @field_validator("think_time_s")
    @classmethod
    def _valid_think(cls, think: tuple[float, float]) -> tuple[float, float]:
        return _check_think(think)


class Phase(_Strict):
    name: str
    target_users: Annotated[int, Field(ge=1)]
    gate_users: Annotated[int, Field(ge=1)]
    gate_rate: PositiveFloat | None = None
    """Open model: the gate load as arrivals/s (default gate_users x open.rate_per_user)."""
    profile: ProfileName
    fixture_size: str
    """A named size of ``runconfig/sizes.py`` (the row counts are defined there)."""
    gate: Gate = Gate()
    model: Literal["closed", "open"] | None = None
    think_time_s: tuple[float, float] | None = None
    persona_mix: dict[str, float] | None = None
    ramp: Ramp | None = None
    open: OpenModel | None = None
    traffic: Traffic | None = None
    faults: list[FaultSpec] = []
    """Faults injected during this phase's run (``loadgate.faults``; ``--fault`` replaces)."""

    @field_validator("persona_mix")
    @classmethod
    def _valid_mix(cls, mix: dict[str, float] | None) -> dict[str, float] | None:
        return None if mix is None else _check_mix(mix)

    @field_validator("fixture_size")
    @classmethod
    def _known_size(cls, size: str) -> str:
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r} (known: {', '.join(SIZES)})")
        return size

    @field_validator("think_time_s")
    @classmethod
    def _valid_think(cls, think: tuple[float, float] | None) -> tuple[float, float] | None:
        return None if think is None else _check_think(think)


class PhasesFile(_Strict):
    # phases first: a broken phase is reported before a missing default.
    phases: dict[int, Phase]
    defaults: Defaults
    reproduce: dict[str, ReproduceSpec] = Field(default_factory=dict)  # loadgate reproduce


class Stage(_Strict):
    """One segment of the load shape; analysis measures the ``hold`` ones."""

    name: str
    kind: Literal["ramp", "hold"]
    start_s: float
    end_s: float
    users: int
    """Users at the end of the stage (closed model; also the open model's level)."""
    rate: float | None = None
    """Target arrivals/s at the end of the stage (open model only)."""
    warmup_s: float = 0.0


class ResolvedPhase(_Strict):
    """A phase with defaults and overrides applied: what a run executes."""

    phase: int
    name: str
    profile: str
    model: Literal["closed", "open"]
    target_users: int
    gate_users: int
    peak_users: int
    fixture_size: str
    think_time_s: tuple[float, float]
    persona_mix: dict[str, float]
    stages: list[Stage]
    gate: dict[str, Any]
    """A ``runformat.gate.GateSpec`` as a dict: what the manifest records."""
    validity: dict[str, float]
    traffic: Traffic
    gate_hold_max_s: float = 0.0
    """Longest extension of the gate step (the last stage) while a criterion is undecided;
    the Locust shape holds past the plan only while loadgate says so (loadgate.hold)."""

    @property
    def duration_s(self) -> float:
        return self.stages[-1].end_s if self.stages else 0.0


def _format_error(error: ValidationError, source: str) -> ConfigError:
    """The first problem as one line; a misspelt key first (it also makes one "missing")."""
    errors = error.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    first = unknown[0] if unknown else errors[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "value_error":
        message = str(first.get("ctx", {}).get("error", message))
    if first["type"] == "extra_forbidden":
        missing = [
            str(e["loc"][-1])
            for e in errors
            if e["type"] == "missing" and e["loc"][:-1] == first["loc"][:-1]
        ]
        close = difflib.get_close_matches(str(first["loc"][-1]), missing, n=1)
        message = (
            f"unknown key: did you mean {close[0]!r}?"
            if close
            else ("unknown key: remove it or fix its spelling (see the shipped config/phases.toml)")
        )
    if first["type"] == "missing":
        message = "missing: add it (the shipped config/phases.toml has every key)"
    if first["type"] == "literal_error":
        message = f"{message} (got {first.get('input')!r})"
    return ConfigError(f"{source}: {key}: {message}")


def load_phases(path: Path | None = None) -> PhasesFile:
    """Parse and validate the phase config; raises :class:`ConfigError`."""
    path = path or DEFAULT_CONFIG
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"phase config {path} not found: pass --config PATH") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return PhasesFile.model_validate(raw)
    except ValidationError as exc:
        raise _format_error(exc, str(path)) from None


def size_for_phase(phase: int, path: Path | None = None) -> Size:
    """The fixture size a phase names in the config (``loadgate fixtures load --phase N``).

    The phase -> size map is the config's ``fixture_size``, not a table of its own.
    """
    config = load_phases(path)
    if phase not in config.phases:
        known = ", ".join(str(p) for p in sorted(config.phases))
        raise ConfigError(f"unknown phase {phase} (known: {known})")
    return get_size(config.phases[phase].fixture_size)


def build_stages(
    peak_users: int, ramp: Ramp, model: str, rate_per_user: float, peak_rate: float | None
) -> list[Stage]:
    """A stepped ramp: ``steps`` load levels up to the peak, each ramped then held."""
    stages: list[Stage] = []
    clock = 0.0
    for level in range(1, ramp.steps + 1):
        users = max(1, round(peak_users * level / ramp.steps))
        rate = None
        if model == "open":
            top = peak_rate if peak_rate is not None else peak_users * rate_per_user
            rate = round(top * level / ramp.steps, 3)
        if ramp.step_ramp_s > 0:
            stages.append(
                Stage(
                    name=f"ramp-{level}",
                    kind="ramp",
                    start_s=clock,
                    end_s=clock + ramp.step_ramp_s,
                    users=users,
                    rate=rate,
                )
            )
            clock += ramp.step_ramp_s
        hold = ramp.hold_of(level)
        stages.append(
            Stage(
                name=f"hold-{level}",
                kind="hold",
                start_s=clock,
                end_s=clock + hold,
                users=users,
                rate=rate,
                warmup_s=min(ramp.warmup_s, hold / 2),
            )
        )
        clock += hold
    return stages


def resolve(
    config: PhasesFile,
    phase: int,
    *,
    users: int | None = None,
    duration_s: float | None = None,
    rate: float | None = None,
    profile: str | None = None,
    model: str | None = None,
    gate_hold_max_s: float | None = None,
) -> ResolvedPhase:
    """Apply defaults and overrides to one phase; raises :class:`ConfigError`."""
    if phase not in config.phases:
        known = ", ".join(str(p) for p in sorted(config.phases))
        raise ConfigError(f"unknown phase {phase}: choose one of {known}")
    spec, defaults = config.phases[phase], config.defaults
    _check_overrides(users, duration_s, rate, profile, model)
    chosen_model = model or spec.model or defaults.model
    if rate is not None and chosen_model != "open":
        raise ConfigError("--rate applies to the open model only: add --model open")
    ramp = spec.ramp or defaults.ramp
    if duration_s is not None:
        ramp = _ramp_for_duration(ramp, duration_s)
    peak = users or spec.gate_users
    open_model = spec.open or defaults.open
    stages = build_stages(peak, ramp, chosen_model, open_model.rate_per_user, rate)
    gate_rate = None
    if chosen_model == "open":
        gate_rate = spec.gate_rate or round(spec.gate_users * open_model.rate_per_user, 3)
    gate = GateSpec(
        users=spec.gate_users,
        rate=gate_rate,
        target_users=spec.target_users,
        criteria=dict(spec.gate.criteria),
        routes={r: dict(c) for r, c in spec.gate.routes.items()},
    ).to_dict()
    return ResolvedPhase(
        phase=phase,
        name=spec.name,
        profile=profile or spec.profile,
        model=chosen_model,
        target_users=spec.target_users,
        gate_users=spec.gate_users,
        peak_users=peak,
        fixture_size=spec.fixture_size,
        think_time_s=spec.think_time_s or defaults.think_time_s,
        persona_mix=spec.persona_mix or defaults.persona_mix,
        stages=stages,
        gate=gate,
        validity=defaults.validity.model_dump(),
        traffic=spec.traffic or defaults.traffic,
        gate_hold_max_s=_hold_cap(gate_hold_max_s, defaults.gate_hold_max_s, stages, gate),
    )


def _hold_cap(
    override: float | None, default: float, stages: list[Stage], gate: dict[str, Any]
) -> float:
    """The gate hold's cap; 0 when the plan cannot apply the gate load or has no criteria
    (holding more of a load below the gate cannot decide a criterion measured at it)."""
    if override is not None and override < 0:
        raise ConfigError(f"--gate-hold-max {override:g}: must be >= 0 seconds (0 = never extend)")
    cap = default if override is None else override
    last = stages[-1] if stages else None
    if last is None or not (gate.get("criteria") or gate.get("routes")):
        return 0.0
    if gate.get("rate") is not None:
        return cap if (last.rate or 0.0) >= gate["rate"] else 0.0
    return cap if last.users >= (gate.get("users") or 0) else 0.0


def _check_overrides(
    users: int | None,
    duration_s: float | None,
    rate: float | None,
    profile: str | None,
    model: str | None,
) -> None:
    if users is not None and users < 1:
        raise ConfigError(f"--users {users}: must be at least 1")
    if duration_s is not None and duration_s <= 0:
        raise ConfigError(f"--duration {duration_s:g}: must be positive seconds")
    if rate is not None and rate <= 0:
        raise ConfigError(f"--rate {rate:g}: must be positive arrivals per second")
    if profile is not None and profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if model is not None and model not in MODELS:
        raise ConfigError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")


def _ramp_for_duration(ramp: Ramp, duration_s: float) -> Ramp:
    """Scale ramp and hold times (the gate step's longer hold too) so the whole shape
    lasts ``duration_s``."""
    base = sum(ramp.step_ramp_s + ramp.hold_of(level) for level in range(1, ramp.steps + 1))
    scale = duration_s / base
    hold = ramp.step_hold_s * scale
    return Ramp(
        steps=ramp.steps,
        step_ramp_s=ramp.step_ramp_s * scale,
        step_hold_s=hold,
        warmup_s=min(ramp.warmup_s, hold / 2),
        final_hold_s=ramp.final_hold_s * scale if ramp.final_hold_s else None,
    )
