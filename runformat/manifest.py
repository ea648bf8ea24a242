"""``manifest.json``: what ran, with which config, and how it ended.

Written when a run starts (status ``running``) and updated as it goes, so a killed run
still says what it was; only a run whose status is ``completed`` finished its load plan.
Every reader and writer goes through :class:`Manifest` (pydantic: a field of the wrong
type or an unknown status is rejected with its name).  Keys this model does not list
are kept as they are (new record types add their own), but the ones it lists have
exactly one spelling.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from runformat.gate import GateFormatError, GateSpec, ValiditySpec

MANIFEST_FILE = "manifest.json"
RunStatus = Literal["running", "completed", "interrupted", "failed", "timed_out"]
#: Statuses that mean the load plan did not run to its end.
NOT_COMPLETED: tuple[str, ...] = ("running", "interrupted", "failed", "timed_out")


class RunFormatError(ValueError):
    """The directory is not a readable run directory (a harness error, exit code 2)."""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    run_id: str | None = None
    phase: int | None = None
    profile: str | None = None
    model: Literal["closed", "open"] = "closed"
    status: RunStatus | None = None
    status_detail: str | None = None  # e.g. "locust exited with code 2"
    started_at: str
    load_started_at: str | None = None
    ended_at: str | None = None
    config: dict[str, Any] = {}
    seed: int | None = None
    git_sha: str | None = None
    command_line: list[str] | None = None
    host: dict[str, Any] = {}
    provider: str | None = None
    workers: int | None = None
    target: str | None = None
    requests: int | None = None
    stripe: dict[str, Any] | None = None  # the Stripe mock's realism: headroom's Stripe limit
    #: CPU isolation of the generator from a stack on the same host: requested, mechanism,
    #: generator_cpus, stack_cpus, note (absent in older runs and with --target)
    isolation: dict[str, Any] | None = None
    #: the gate step held past its plan while a criterion was undecided: planned_end_s,
    #: cap_s, end_s, extended_s, outcome, reason, checks (absent when the plan had no cap)
    gate_hold: dict[str, Any] | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def gate(self) -> GateSpec:
        return GateSpec.from_dict(self.config.get("gate"))

    @property
    def validity(self) -> ValiditySpec:
        return ValiditySpec.from_dict(self.config.get("validity"))

    @property
    def start_us(self) -> int:
        """Origin of the stage offsets: when the load shape's t = 0 was (else start)."""
        return iso_to_us(self.load_started_at or self.started_at)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --- what a reader checks before analysis (loadgate report, compare) --------------


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _timestamp(value: str) -> Any:
    """pandas' ISO 8601 parser (ns precision, any offset), imported on first use: a
    command that only names a run format type should not pay ~0.4 s for pandas."""
    import pandas as pd

    return pd.Timestamp(value)


def _date_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"is {type(value).__name__}, not an ISO 8601 date string"
    try:
        _timestamp(value)
    except (ValueError, TypeError):
        return f"{value!r} is not an ISO 8601 date"
    return None


def manifest_problems(manifest: Any) -> list[str]:
    """Every problem with the fields analysis reads, as 'field: what is wrong'.

    Looser than :class:`Manifest` on purpose: it lists *every* problem (a report names
    up to three) and checks inside ``config`` (stages, think times), which the model
    keeps as a plain dict."""
    if not isinstance(manifest, dict):
        return [f"manifest.json holds a {type(manifest).__name__}, not an object"]
    out = []
    for key in ("started_at", "load_started_at"):
        if key in manifest and manifest[key] is not None:
            problem = _date_problem(manifest[key])
            if problem:
                out.append(f"{key} {problem}")
        elif key == "started_at":
            out.append("started_at is missing")
    phase = manifest.get("phase")
    if phase is not None and not (isinstance(phase, int) and not isinstance(phase, bool)):
        out.append(f"phase is {phase!r}, not an integer")
    config = manifest.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, dict):
        return [*out, f"config is {type(config).__name__}, not an object"]
    for key in ("gate",):
        if config.get(key) is not None and not isinstance(config[key], dict):
            out.append(f"config.{key} is {type(config[key]).__name__}, not an object")
    think = config.get("think_time_s", [0.0, 0.0])
    if not (isinstance(think, list) and len(think) == 2 and all(_number(t) for t in think)):
        out.append(f"config.think_time_s is {think!r}, not [min, max] seconds")
    stages = config.get("stages", [])
    if not isinstance(stages, list):
        return [*out, f"config.stages is {type(stages).__name__}, not a list"]
    for i, stage in enumerate(stages):
        where = f"config.stages[{i}]"
        if not isinstance(stage, dict):
            out.append(f"{where} is {type(stage).__name__}, not an object")
            continue
        for key in ("start_s", "end_s"):
            if not _number(stage.get(key)):
                out.append(f"{where}.{key} is {stage.get(key)!r}, not a number of seconds")
        for key in ("users", "rate", "warmup_s"):
            if stage.get(key) is not None and not _number(stage[key]):
                out.append(f"{where}.{key} is {stage[key]!r}, not a number")
    return out


def iso_to_us(value: str) -> int:
    ts = _timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1000)


def parse_manifest(data: dict[str, Any], source: str = MANIFEST_FILE) -> Manifest:
    try:
        manifest = Manifest.model_validate(data)
        manifest.gate  # noqa: B018  (validates the gate's one shape)
        manifest.validity  # noqa: B018
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise RunFormatError(f"{source}: {key}: {first['msg']}") from None
    except GateFormatError as exc:
        raise RunFormatError(f"{source}: config.{exc}") from None
    return manifest


def read_manifest(run_dir: Path) -> Manifest:
    path = Path(run_dir) / MANIFEST_FILE
    if not path.exists():
        raise RunFormatError(f"{run_dir}: no manifest.json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFormatError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise RunFormatError(f"{path}: not a JSON object")
    return parse_manifest(data, str(path))


def update_manifest(
    run_dir: Path, defaults: dict[str, Any] | None = None, **fields: Any
) -> Manifest:
    """Merge ``fields`` into ``manifest.json`` (validated, written atomically).

    ``defaults`` fill a manifest that does not exist yet (git sha, host, packages).
    """
    path = Path(run_dir) / MANIFEST_FILE
    data = json.loads(path.read_text()) if path.exists() else dict(defaults or {})
    data.update(fields)
    manifest = parse_manifest(data, str(path))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, default=str))
    tmp.replace(path)
    return manifest
