"""The plan's sentences: the assumptions it rests on and where the seed and the
measurement disagree.
"""

from __future__ import annotations

import math

from analysis import demands as dm
from analysis import seed_plan
from analysis.plan.types import (
    PLANNING_UTILISATION,
    TESTED_RANGE,
    MilestonePlan,
    fmt_amount,
)


def assumptions(d: dm.Demands, profiles: list[str], milestones: list[MilestonePlan]) -> list[str]:
    out = [
        "Linear demand per request: each request costs every resource what it cost in the "
        "measured range (utilisation law); caches, indexes and query plans behave at "
        "milestone scale as on the run's fixtures.",
        "Users behave as in the run: each persona's per-user request rate as measured, with "
        "the milestone phase's persona mix and think times; throughput is linear in users.",
        f"No new contention: each resource is sized to run at {PLANNING_UTILISATION:.0%} "
        "(the seed's HPA target, §6.3), where response times stay near the measured ones; "
        "contention beyond what the run's steps showed (USL/knee) is not modelled.",
        "Background use (the regression's intercept) is counted once, as on one instance.",
        "The operator's cron (batch generation, payouts) stays one user at every milestone.",
        "Capacities are the seed's (§1.1–§7.2, cited per row); where the seed states none "
        "the requirement is listed to provision, not judged.",
    ]
    top = d.top_users
    far = [m for m in milestones if m.factor > TESTED_RANGE]
    if far:
        out.append(
            "Where it breaks: "
            + ", ".join(f"{m.milestone} is {m.factor:,.0f}x" for m in far)
            + f" the highest measured load ({top:,.0f} users); beyond {TESTED_RANGE:g}x the "
            "linearity was never tested. These are requirements under the assumptions above, "
            "not predictions of this machine."
        )
    if d.per_user_trend is not None and d.per_user_trend < -0.10:
        out.append(
            f"The per-user request rate fell {-d.per_user_trend:.0%} from the lowest to the "
            "highest step: the system under test slowed its users down, so the measured rate "
            "understates what users offer to a system that keeps up; milestone throughput is "
            "a lower bound."
        )
    for m in milestones:
        if m.profile not in profiles:
            out.append(
                f"{m.milestone} runs profile {m.profile}; demands were measured on "
                f"{', '.join(sorted(set(profiles)))}: caching, replicas and queues change "
                f"demands, so plan {m.milestone} from a {m.profile} run to trust it."
            )
    return out


def findings(
    milestones: list[MilestonePlan],
    formulas: list[tuple[str, seed_plan.SeedFormula]],
    d: dm.Demands,
) -> list[str]:
    """Where the seed and the measurement disagree, and which seed assumption breaks."""
    out = []
    for m in milestones:
        for p in m.projections:
            if p.status == "exceeds" and p.capacity is not None:
                why = m.seed.assumptions.get(p.resource.key, "its capacity figure")
                out.append(
                    f"{m.milestone}: {p.resource.label} needs "
                    f"{fmt_amount(p.required, p.resource.unit)} (projected) against "
                    f"{fmt_amount(p.capacity.amount, p.resource.unit)} planned "
                    f"({p.capacity.section}): the measurement contradicts the seed's assumption "
                    f"{why}."
                )
    bind = next((m.binding for m in milestones if m.binding is not None), None)
    for run_id, f in formulas:
        if f.result is None:
            continue
        text = (
            f"Run {run_id}: the seed's calculateCapacity gives {f.result:,.0f} users "
            f"(CPU {_num(f.cpu_capacity)}, latency {_num(f.latency_capacity)}, errors "
            f"{_num(f.error_capacity)}) from one step at {f.max_users:,.0f} users, assuming "
            "everything scales linearly with CPU, P95 and errors as the only limits"
        )
        if bind is not None and bind.binds_at is not None:
            text += (
                f"; the measured demands say {bind.resource.label} binds first, at "
                f"{bind.binds_at:,.0f} users on the seed's phase capacities — a resource the "
                "formula does not look at"
            )
        out.append(text + ".")
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "Infinity"
    return f"{v:,.0f}"
