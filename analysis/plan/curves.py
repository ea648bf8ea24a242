"""Required capacity against users, point and interval, for the plan's chart."""

from __future__ import annotations

import numpy as np

from analysis import demands as dm
from analysis.plan.model import (
    ResourceModel,
    UserLoad,
    interval,
)


def curves(
    d: dm.Demands,
    models: dict[str, ResourceModel],
    load: UserLoad,
    util: float,
) -> dict[str, dict[str, np.ndarray]]:
    """Required capacity vs users for the chart (the M4 phase's mix)."""
    grid = np.geomspace(max(d.top_users / 10, 1.0), 200_000, 60)
    out = {}
    for key, model in models.items():
        pts, lo, hi = [], [], []
        for n in grid:
            p = model.busy(load, n) / util
            q = interval(p * util, model.busy_draws(load, n))
            pts.append(p)
            lo.append(q[0] / util)
            hi.append(q[1] / util)
        meas_u = np.array(
            [lv.users for lv in d.levels if any(k in lv.busy for k in model.resource.demand)]
        )
        meas_v = np.array(
            [
                sum(lv.busy.get(k, 0.0) for k in model.resource.demand) / util
                for lv in d.levels
                if any(k in lv.busy for k in model.resource.demand)
            ]
        )
        out[key] = {
            "users": grid,
            "point": np.array(pts),
            "lo": np.array(lo),
            "hi": np.array(hi),
            "measured_users": meas_u,
            "measured": meas_v,
        }
    return out
