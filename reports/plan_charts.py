"""The capacity plan's chart: required capacity per resource vs users, milestones marked.

One panel per resource (units differ), log-log: the projected requirement at the planning
utilisation as a dashed line with its 95 % band (hatched: projected), the run's steps as
dots (measured), the seed's capacity per phase as a step line, M1–M4 as vertical lines.
matplotlib (Agg) to PNG bytes, embedded in the page as a data URI like the run report.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.plan import PLAN_RESOURCES, CapacityPlan  # noqa: E402
from analysis.seed_plan import SEED_PHASES  # noqa: E402

DPI = 96
LABELS = {r.key: (r.label, r.unit) for r in PLAN_RESOURCES}


def required_capacity(plan: CapacityPlan) -> bytes:
    keys = [k for k in LABELS if k in plan.curves]
    cols = 3
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(10.5, 2.9 * rows), squeeze=False)
    for ax, key in zip(axes.ravel(), keys, strict=False):
        c = plan.curves[key]
        label, unit = LABELS[key]
        users, point = c["users"], c["point"]
        pos = point > 0
        ax.plot(users[pos], point[pos], "--", color="tab:purple", lw=1.2, label="projected")
        band = pos & (c["hi"] > 0)
        ax.fill_between(
            users[band],
            np.maximum(c["lo"][band], point[band] * 1e-3),
            c["hi"][band],
            color="tab:purple",
            alpha=0.15,
            hatch="//",
            lw=0,
        )
        mu, mv = c["measured_users"], c["measured"]
        ok = mv > 0
        if ok.any():
            ax.plot(mu[ok], mv[ok], "o", ms=3, color="tab:green", label="measured steps")
        _capacity_steps(ax, plan, key)
        for m in plan.milestones:
            ax.axvline(m.users, color="0.5", ls=":", lw=0.8)
            ax.text(
                m.users,
                1.0,
                m.milestone,
                transform=ax.get_xaxis_transform(),
                fontsize=7,
                ha="center",
                va="bottom",
            )
        ax.set_xscale("log")
        if (point[pos] > 0).any():
            ax.set_yscale("log")
        ax.set_title(f"{label} ({unit})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(keys) :]:
        ax.axis("off")
    handles, names = [], []
    for ax in axes.ravel():
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(
        f"Required capacity at {plan.utilisation:.0%} utilisation vs users (projected with "
        f"{plan.milestones[-1].milestone}'s mix and think time, 95% band; dots: the run's steps, "
        "measured; red: the seed's capacity per phase)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _capacity_steps(ax, plan: CapacityPlan, key: str) -> None:
    """The seed's capacity for each milestone phase, drawn over that phase's user range."""
    phases = sorted(plan.phase_users)
    edges = [0.0, *[float(plan.phase_users[p]) for p in phases]]
    first = True
    for (lo, hi), phase in zip(zip(edges[:-1], edges[1:], strict=True), phases, strict=True):
        cap = SEED_PHASES[phase].capacities.get(key)
        if key == "stripe_rps":
            cap = plan.stripe_limit
        if cap is None:
            continue
        ax.hlines(
            cap.amount,
            max(lo, 1.0),
            hi * 1.5,
            color="tab:red",
            lw=1,
            label="seed capacity" if first else None,
        )
        first = False


def chart_or_reason(plan: CapacityPlan) -> bytes | str:
    """The chart, or why it could not be drawn (a chart never ends the plan step)."""
    try:
        return required_capacity(plan)
    except Exception as exc:  # noqa: BLE001 - any drawing failure is shown in its place
        plt.close("all")
        return f"chart not drawn: {type(exc).__name__}: {exc}"
