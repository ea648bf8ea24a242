"""The load plan a Locust process follows: stages in time, users and rates.

Written by ``loadgate run`` as ``plan.json`` (a resolved phase: model,
stages, think times, persona mix, traffic) and read by every Locust process through
``--loadgate-plan``, so the master's shape and the workers' open-model
arrival drivers follow the same numbers without any shared state. Within one
process the file is read once (:func:`load_plan`), whichever part asks first
(the plugin at init, the shape, the open model, the traffic context).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runconfig.traffic import Traffic


@dataclass(frozen=True)
class PlanStage:
    name: str
    kind: str
    start_s: float
    end_s: float
    users: int
    rate: float | None = None


@dataclass(frozen=True)
class LoadPlan:
    model: str
    stages: tuple[PlanStage, ...]
    think_time_s: tuple[float, float]
    persona_mix: dict[str, float]
    traffic: Traffic
    gate_hold_max_s: float = 0.0
    """Longest extension of the last stage (the gate step) while loadgate holds it
    (scenarios.gate_hold); 0 = the plan ends where its stages end."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadPlan:
        return cls(
            model=data["model"],
            stages=tuple(
                PlanStage(
                    name=s["name"],
                    kind=s["kind"],
                    start_s=float(s["start_s"]),
                    end_s=float(s["end_s"]),
                    users=int(s["users"]),
                    rate=s.get("rate"),
                )
                for s in data["stages"]
            ),
            think_time_s=tuple(data["think_time_s"]),  # type: ignore[arg-type]
            persona_mix=dict(data["persona_mix"]),
            traffic=Traffic.model_validate(data["traffic"]),
            gate_hold_max_s=float(data.get("gate_hold_max_s") or 0.0),
        )

    @classmethod
    def load(cls, path: Path | str) -> LoadPlan:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def duration_s(self) -> float:
        return self.stages[-1].end_s if self.stages else 0.0

    @property
    def gate_stage(self) -> PlanStage | None:
        """The last stage: the gate step, the one an extended hold prolongs."""
        return self.stages[-1] if self.stages else None

    def stage_at(self, t: float) -> PlanStage | None:
        for stage in self.stages:
            if stage.start_s <= t < stage.end_s:
                return stage
        return None

    def level_before(self, stage: PlanStage) -> tuple[int, float]:
        """Users and rate a stage starts from (the previous stage's end level)."""
        index = self.stages.index(stage)
        if index == 0:
            return 0, 0.0
        previous = self.stages[index - 1]
        return previous.users, previous.rate or 0.0

    def users_at(self, t: float) -> int | None:
        """Closed model: users at ``t`` (linear within a ramp), ``None`` after the end."""
        stage = self.stage_at(t)
        if stage is None:
            return None
        if stage.kind == "hold":
            return stage.users
        before, _ = self.level_before(stage)
        share = (t - stage.start_s) / (stage.end_s - stage.start_s)
        return max(1, round(before + (stage.users - before) * share))

    def rate_at(self, t: float) -> float | None:
        """Open model: target arrivals/s at ``t`` (linear within a ramp)."""
        stage = self.stage_at(t)
        if stage is None:
            return None
        target = stage.rate or 0.0
        if stage.kind == "hold":
            return target
        _, before = self.level_before(stage)
        share = (t - stage.start_s) / (stage.end_s - stage.start_s)
        return before + (target - before) * share


def load_plan(path: Path | str) -> LoadPlan:
    """The plan at ``path``, read and parsed once per process.

    A run writes its ``plan.json`` once, before any Locust process starts, so
    a cached copy is the file's content for the life of the process.
    """
    return _read_plan(Path(path).resolve())


@functools.cache
def _read_plan(path: Path) -> LoadPlan:
    return LoadPlan.load(path)
