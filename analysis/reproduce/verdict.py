"""A reproduction's verdict: confirmed, refuted or inconclusive, always with its reason.

What is common to every claim is decided here, before the claim's own judge looks:

- both runs must have completed their load plan (otherwise: inconclusive);
- only steps *below* the load where the machine saturated count (the first step whose
  deciding validity check failed on that side: generator lag or CPU, Little's law,
  window coverage). If a side has no such valid step, the machine saturated before that
  side could show anything: inconclusive, and the reason says at which load.

The claim's judge (``analysis.reproduce.registry``) then compares the two sides' valid
steps and says confirmed or refuted (or inconclusive when the valid data cannot decide).
"""

from __future__ import annotations

from analysis.reproduce.outcome import Outcome, SideResult, Verdict
from analysis.reproduce.registry import Reproduction


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
