"""The load plan of each reproduction: ``[reproduce.NAME]`` in ``config/phases.toml``.

Steps, holds and users are configuration, not code (a laptop and a CI box want different
plans), so they live beside the phases; the claim, the two configurations and the metric
that explains the result are code (:mod:`analysis.reproduce.registry`). Parsed by the
phase config's own loader, so a bad table is rejected with its key like any other.

A plan becomes a run through a derived phase config: the base file plus a
``[phases.N.ramp]`` table with the plan's steps, written into the reproduction's output
directory so both runs, and anyone rerunning one, read the very same file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class ReproducePlan(BaseModel):
    """One load plan: a stepped ramp to ``users`` on fixtures of ``fixture_size``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: Annotated[int, Field(ge=1)]
    """Peak users (the last step); step k has users x k / steps."""
    steps: Annotated[int, Field(ge=2, le=20)]
    """Load levels: at least two, or there is no "last step that held" to bracket with."""
    step_ramp_s: NonNegativeFloat = 10
    step_hold_s: PositiveFloat = 30
    warmup_s: NonNegativeFloat = 5
    fixture_size: str | None = None
    """Fixture size of both runs (default: the phase's)."""

    @property
    def load_seconds(self) -> float:
        return self.steps * (self.step_ramp_s + self.step_hold_s)


class ReproduceSpec(ReproducePlan):
    """``[reproduce.NAME]``: the default plan, the ``--quick`` one, and the judging phase."""

    phase: Annotated[int, Field(ge=0)] = 1
    """Whose gate criteria decide where each side breaks (and whose config both runs use)."""
    quick: ReproducePlan
    """``--quick``: a few short steps on small fixtures (CI)."""

    def plan(self, quick: bool) -> ReproducePlan:
        return self.quick if quick else self


def derived_config(base: Path, phase: int, plan: ReproducePlan, out: Path) -> Path:
    """Write ``base`` plus the plan's ramp for ``phase`` to ``out``; returns ``out``.

    The ramp is appended as a ``[phases.N.ramp]`` table (numbers only), so everything
    else in the file stays byte for byte what the user's config says.
    """
    text = base.read_text()
    raw = tomllib.loads(text)
    if "ramp" in raw.get("phases", {}).get(str(phase), {}):
        raise ValueError(
            f"{base}: phases.{phase} has its own ramp; a reproduction's steps come from "
            f"[reproduce.NAME]: remove phases.{phase}.ramp or use another --config"
        )
    ramp = (
        f"\n\n# Added by loadgate reproduce: the plan of [reproduce.*]\n[phases.{phase}.ramp]\n"
        f"steps = {plan.steps}\nstep_ramp_s = {plan.step_ramp_s:g}\n"
        f"step_hold_s = {plan.step_hold_s:g}\nwarmup_s = {plan.warmup_s:g}\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.rstrip("\n") + ramp)
    return out
