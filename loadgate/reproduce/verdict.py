"""A reproduction's verdict: confirmed, refuted or inconclusive, always with its reason.

What is common to every claim is decided here, before the claim's own judge looks:

- both runs must have completed their load plan (otherwise: inconclusive);
- only steps *below* the load where the machine saturated count (the first step whose
  deciding validity check failed on that side: generator lag or CPU, Little's law,
  window coverage). If a side has no such valid step, the machine saturated before that
  side could show anything: inconclusive, and the reason says at which load.

The claim's judge (``loadgate.reproduce.registry``) then compares the two sides' valid
steps and says confirmed or refuted (or inconclusive when the valid data cannot decide).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.analyze import AnalysisResult
from loadgate.reproduce.breaking import BreakingPoint, StepResult

if TYPE_CHECKING:
    from loadgate.reproduce.registry import Reproduction


class Verdict(StrEnum):
    CONFIRMED = "confirmed"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"

    @property
    def exit_code(self) -> int:
        """0 confirmed, 1 refuted, 3 inconclusive (2 stays the harness error's)."""
        return {"confirmed": 0, "refuted": 1, "inconclusive": 3}[self.value]


@dataclass
class SideResult:
    """One side (before / after) of a reproduction: its run and what it showed."""

    label: str  # "before" | "after"
    configuration: str  # e.g. "phase1 + rate_limiter=db_table"
    run_dir: Path
    status: str  # the run's manifest status
    analysis: AnalysisResult | None
    steps: list[StepResult]
    breaking: BreakingPoint

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def valid_steps(self) -> list[StepResult]:
        """Steps below the load at which this side's machine saturated."""
        limit = self.breaking.saturated_at
        return [s for s in self.steps if limit is None or s.load < limit]

    def values(self, key: str) -> list[tuple[float, float]]:
        """(load, value) of metric ``key`` over the valid steps where it was measured."""
        return [(s.load, v) for s in self.valid_steps if (v := s.metrics.get(key)) is not None]

    def saturation_text(self) -> str:
        at = self.breaking.saturated_at
        if at is None:
            return f"the {self.label} side never saturated the machine"
        first = next(s for s in self.steps if s.load == at)
        return (
            f"the machine saturated on the {self.label} side at {at:,.0f} users "
            f"({first.invalid[0]})"
        )


@dataclass
class Outcome:
    verdict: Verdict
    reason: str


def decide(repro: Reproduction, before: SideResult, after: SideResult) -> Outcome:
    """Common preconditions first (module doc), then the claim's own judge."""
    for side in (before, after):
        if not side.completed:
            return Outcome(
                Verdict.INCONCLUSIVE,
                f"the {side.label} run did not complete (status {side.status}): rerun it",
            )
        if not side.steps:
            return Outcome(
                Verdict.INCONCLUSIVE,
                f"the {side.label} run has no steady-state step with data: the generator "
                "did not apply the plan's load (see its locust/ logs), rerun it",
            )
        if not side.valid_steps:
            return Outcome(
                Verdict.INCONCLUSIVE,
                f"{side.saturation_text()}, at its lowest step, before it could show "
                "anything about the architecture: lower users in "
                f"[reproduce.{repro.name}] or run the generator on other hardware",
            )
    return repro.judge(before, after)
