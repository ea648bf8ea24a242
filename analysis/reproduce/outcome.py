"""What a reproduction's sides showed and what was concluded: the types its judges share.

Its own module so that the claims' judges (:mod:`analysis.reproduce.registry`) and the
common preconditions (:mod:`analysis.reproduce.verdict`) both import it and neither
imports the other back (they used to form an import loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from analysis.analyze import AnalysisResult
from analysis.reproduce.breaking import BreakingPoint, StepResult


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
