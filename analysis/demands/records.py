"""The two sides of every second's equation: each route's requests per second (from the
raw records, read with persona and bytes) and each resource's busy rate (from the
samples), both inside the steady-state windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.demands.resources import MIN_ROUTE_SHARE, OTHER, DemandError, ResourceSpec
from analysis.runs import parquet_files, read_tables
from analysis.steps import Step


@dataclass
class _Records:
    ts_us: np.ndarray
    route: pd.Categorical
    persona: pd.Categorical
    users: np.ndarray
    bytes: np.ndarray


def read_records(path: Path) -> _Records:
    """ts, route ("METHOD /template"), persona, users and bytes of every request.

    Read here rather than taken from ``Run.events``: the analysis keeps only the columns
    it needs, and persona and bytes are not among them.
    """
    cols = ["ts_us", "persona", "method", "name", "users", "bytes"]
    # a truncated file: load_run already warned about it
    tables = read_tables(parquet_files(path / "events"), cols, [], quiet=True)
    if not tables:
        raise DemandError(f"{path}: no readable events")
    t = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    route = (t["method"].astype(str) + " " + t["name"].astype(str)).str.strip()
    return _Records(
        ts_us=t["ts_us"].to_numpy(np.int64),
        route=pd.Categorical(route),
        persona=pd.Categorical(t["persona"].fillna("").astype(str)),
        users=t["users"].fillna(0).to_numpy(np.float64),
        bytes=t["bytes"].fillna(0).to_numpy(np.float64),
    )


def _in_steps(ts: np.ndarray, steps: list[Step]) -> np.ndarray:
    """Step index of each timestamp, -1 outside every steady-state window."""
    out = np.full(ts.shape, -1, dtype=np.int32)
    for i, st in enumerate(steps):
        out[(ts >= st.start_us) & (ts < st.end_us)] = i
    return out


def route_groups(records: list[_Records], step_lists: list[list[Step]]) -> list[str]:
    """Routes with at least MIN_ROUTE_SHARE of the steady requests, then OTHER if any."""
    counts: pd.Series = pd.Series(dtype=float)
    for rec, steps in zip(records, step_lists, strict=True):
        inside = _in_steps(rec.ts_us, steps) >= 0
        c = pd.Series(np.asarray(rec.route[inside], dtype=object)).value_counts()
        counts = counts.add(c[c > 0], fill_value=0)
    total = float(counts.sum())
    if total <= 0:
        raise DemandError("no request records inside a steady-state step")
    share = counts / total
    major = sorted(share[share >= MIN_ROUTE_SHARE].index.astype(str))
    return [*major, OTHER] if len(major) < len(share) else major


def _group_codes(route: pd.Categorical, groups: list[str]) -> np.ndarray:
    other = groups.index(OTHER) if OTHER in groups else -1
    lut = np.array([groups.index(c) if c in groups else other for c in route.categories])
    return lut[route.codes] if lut.size else np.zeros(0, dtype=np.int64)


def _find(samples: pd.DataFrame, spec: ResourceSpec) -> tuple[str, str] | None:
    """The first candidate (source, metric) sampled (``x`` also as ``x_total``)."""
    if samples.empty:
        return None
    pairs = samples[["source", "metric"]].drop_duplicates()
    present = set(zip(pairs["source"].astype(str), pairs["metric"].astype(str), strict=True))
    for source, metric in spec.candidates:
        for name in (metric, f"{metric}_total"):
            if (source, name) in present:
                return source, name
    return None


def busy_series(samples: pd.DataFrame, source: str, metric: str, kind: str, scale: float):
    """Per sample tick: (t0, t1, busy rate over (t0, t1]).

    A gauge sampled at t1 describes the interval since the previous tick (psutil's
    ``cpu_percent(None)`` is the average since its last call); a counter's increase
    between two ticks (per labelled series, positive increments only: a restart resets
    it) divided by their distance is its rate.
    """
    sel = samples[(samples["source"] == source) & (samples["metric"] == metric)]
    wide = sel.pivot_table(
        index="ts_us", columns="labels", values="value", aggfunc="last", observed=True
    ).sort_index()
    ts = wide.index.to_numpy(np.int64)
    if ts.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    dt = np.diff(ts) / 1e6
    if kind == "gauge":
        values = wide.to_numpy(float)[1:]
        y = np.where(np.isfinite(values).any(axis=1), np.nansum(values, axis=1), np.nan)
    else:
        # a tick a series missed (its sampler failed) moves the increase to the next tick
        inc = np.diff(wide.ffill().to_numpy(float), axis=0)
        y = np.where(np.isfinite(inc) & (inc > 0), inc, 0.0).sum(axis=1) / dt
    return ts[:-1], ts[1:], y * scale


def _windowed(t0: np.ndarray, t1: np.ndarray, steps: list[Step]) -> np.ndarray:
    """Tick intervals that lie wholly inside one steady-state window."""
    a, b = _in_steps(t0, steps), _in_steps(t1 - 1, steps)
    return (a >= 0) & (a == b)


def route_rates(
    ts_us: np.ndarray, groups: np.ndarray, n_groups: int, t0: np.ndarray, t1: np.ndarray
) -> np.ndarray:
    """Requests/s of each route group in each interval [t0, t1) (request start times)."""
    edges = np.empty(2 * t0.size, dtype=np.int64)
    edges[0::2], edges[1::2] = t0, t1
    pos = np.searchsorted(edges, ts_us, side="right")
    inside = (pos % 2 == 1) & (groups >= 0)
    k = (pos[inside] - 1) // 2
    counts = np.bincount(k * n_groups + groups[inside], minlength=t0.size * n_groups).reshape(
        t0.size, n_groups
    )
    return counts / ((t1 - t0) / 1e6)[:, None]
