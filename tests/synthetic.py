"""Synthetic run directories with known distributions, for tests and the benchmark.

The load shape is a staircase of ``levels`` (ramp then hold per level).  Throughput per
level follows the USL X(N) = lam N / (1 + sigma (N - 1) + kappa N (N - 1)); response
times follow Little's law, R(N) = N / X(N) - Z, drawn from a lognormal with shape
``latency_sigma`` whose mean is R(N).  Errors are drawn from ``error_mix`` (a class ->
probability map).  Resource samples are linear in throughput so headroom crossings are
known.  Everything is seeded.

Written through :mod:`runformat` exactly as ``loadgate run`` writes (same schemas, same
manifest model, same gate shape), so a test on a synthetic directory tests what a real
run would give.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.jobs import METRIC as QUEUE_METRIC
from runformat.gate import ValiditySpec
from runformat.manifest import update_manifest
from runformat.outcomes import classify_error
from runformat.schemas import (
    ARRIVAL_SCHEMA,
    EVENT_SCHEMA,
    GENERATOR_CPU_METRIC,
    GENERATOR_SOURCE,
    HOST_CPU_METRIC,
    HOST_SOURCE,
    LAG_INTERVAL_S,
    LAG_METRIC,
    PAYMENT_PENDING,
    SAMPLE_SCHEMA,
)

ENDPOINTS = (  # method, route template, weight, latency multiplier
    ("GET", "/products", 0.35, 1.0),
    ("GET", "/products/[id]", 0.30, 0.6),
    ("GET", "/search", 0.10, 1.5),
    ("POST", "/cart/items", 0.12, 0.8),
    ("POST", "/checkout", 0.05, 3.0),
    ("GET", "/orders", 0.08, 1.2),
)
CHECKOUT = 4  # index of POST /checkout in ENDPOINTS
PERSONAS = ("consumer", "farmer", "driver", "admin")
STATUS_OF = {
    "": 200,
    "connection": 0,
    "timeout": 0,
    "4xx": 404,
    "429": 429,
    "5xx": 503,
    "assertion": 200,
}
START = "2026-11-01T00:00:00+00:00"
START_US = 1_793_491_200_000_000  # START in µs since the epoch


@dataclass
class SyntheticSpec:
    """Parameters of a synthetic run; defaults give a small, fast closed-model run."""

    levels: tuple[int, ...] = (10, 20, 40, 60, 80, 100)
    hold_s: float = 60.0
    ramp_s: float = 10.0
    warmup_s: float = 5.0
    think_time_s: tuple[float, float] = (0.5, 1.5)
    sigma: float = 0.005
    kappa: float = 0.00002
    lam: float = 0.95  # requests/s of one user (below 1 / Z so that R = 1/lam - Z > 0)
    latency_sigma: float = 0.6
    latency_scale: float = 1.0  # multiplies every latency (a regression of +10% = 1.1)
    #: Realistic per-second dependence: every latency of second s is multiplied by
    #: exp(f_s), f an AR(1) over the run's seconds with lag-1 coefficient
    #: ``latency_ar_rho`` and stationary sd ``latency_ar_sd`` (queues building and
    #: draining, a noisy neighbour).  0 sd: independent records, as before.
    latency_ar_rho: float = 0.0
    latency_ar_sd: float = 0.0
    #: Drift inside every hold: latency x exp(drift * (t - hold middle)), t in seconds
    #: (a queue still filling: > 0).  Centred, so the hold's mean and Little's law keep.
    latency_drift_per_s: float = 0.0
    #: Clip every latency to [low, high] ms (e.g. an overloaded stack: every request
    #: 2.5-12 s).  None: no clip.
    latency_clip_ms: tuple[float, float] | None = None
    error_mix: dict[str, float] = field(
        default_factory=lambda: {"5xx": 0.002, "timeout": 0.001, "429": 0.001}
    )
    model: str = "closed"
    open_drop: float = 0.0  # fraction of offered arrivals dropped (open model)
    co_stall_ms: float = 0.0  # open model: extra delay from intended start (generator lag)
    workers: int = 2
    seed: int = 1
    phase: int = 1
    gate: dict = field(
        default_factory=lambda: {
            "users": 100,
            "target_users": 80,
            "criteria": {"p95_ms": 3000, "error_rate": 0.01},
        }
    )
    cpu_rps_at_100: float = 250.0  # service throughput at which CPU would read 100%
    cache_hit_rate: float = 0.85
    db_connection_errors: int = 0
    # enqueued, completed: 4,000 of 4,000 is the fewest that shows >= 99.9 % at 95 %
    jobs: tuple[int, int] = (4000, 4000)
    faults: list[dict] = field(default_factory=list)
    status: str | None = "completed"  # the manifest's run status (None: missing)
    generator_lag_ms: float = 0.5  # mean event-loop lag of each worker (exponential)
    host_cpu_percent: float = 60.0
    #: checkout outcomes besides plain success: code -> share of checkouts.  Expected
    #: ones (insufficient_stock) answer 409 and are no failure; payment_pending answers
    #: 202; any other code is a failed 409.
    checkout_outcomes: dict[str, float] = field(default_factory=dict)
    validity: dict = field(default_factory=dict)  # runformat.gate.ValiditySpec overrides
    #: Known service demands (issue 13, analysis/demands.py must recover them):
    #: "source/metric" -> {"background": busy rate, "METHOD /route": demand per request},
    #: in the resource's rate unit (cores for cpu_percent, increments/s for a counter).
    #: Written as extra samples driven by each second's route counts of the records.
    demands: dict[str, dict[str, float]] = field(default_factory=dict)
    demand_noise: float = 0.02  # sd of per-second noise, fraction of the mean busy rate
    persona_mix: dict[str, float] | None = None  # recorded in the manifest config when set
    stripe_rate_limit: float | None = None  # manifest stripe.rate_limit_per_s when set


def usl_throughput(spec: SyntheticSpec, n: float) -> float:
    return spec.lam * n / (1 + spec.sigma * (n - 1) + spec.kappa * n * (n - 1))


def mean_response_s(spec: SyntheticSpec, n: float) -> float:
    z = sum(spec.think_time_s) / 2
    r = n / usl_throughput(spec, n) - z
    if r <= 0:
        raise ValueError(f"lam too small for think time: R({n}) = {r:.3f} s")
    return r


def lognormal_mu(spec: SyntheticSpec, n: float) -> float:
    return math.log(mean_response_s(spec, n) * 1e6) - spec.latency_sigma**2 / 2


def stages(spec: SyntheticSpec) -> list[dict]:
    out, t, prev = [], 0.0, 0
    for i, users in enumerate(spec.levels):
        if spec.ramp_s > 0:
            out.append(
                {
                    "name": f"ramp{i}",
                    "start_s": t,
                    "end_s": t + spec.ramp_s,
                    "users": users,
                    "kind": "ramp",
                    "from_users": prev,
                }
            )
            t += spec.ramp_s
        hold = {
            "name": f"hold{i}",
            "start_s": t,
            "end_s": t + spec.hold_s,
            "users": users,
            "kind": "hold",
        }
        if spec.model == "open":
            hold["rate"] = round(usl_throughput(spec, users), 3)
        out.append(hold)
        t += spec.hold_s
        prev = users
    return out


def expected_records(spec: SyntheticSpec) -> int:
    total = 0.0
    for st in stages(spec):
        users = (st["users"] + st.get("from_users", st["users"])) / 2
        total += usl_throughput(spec, max(users, 1)) * (st["end_s"] - st["start_s"])
    return int(total)


def ar1_factor(spec: SyntheticSpec, seconds: int) -> np.ndarray:
    """The run's per-second log-latency factor f (AR(1), seeded apart from the records
    so that turning it on leaves every other draw as it was)."""
    rho, sd = spec.latency_ar_rho, spec.latency_ar_sd
    f = np.zeros(max(seconds, 1))
    if sd <= 0:
        return f
    rng = np.random.default_rng(spec.seed + 104_729)
    e = rng.normal(0.0, sd * math.sqrt(1 - rho * rho), f.size)
    f[0] = rng.normal(0.0, sd)
    for i in range(1, f.size):
        f[i] = rho * f[i - 1] + e[i]
    return f - sd * sd / 2  # E[exp(f)] = 1: the mean latency (Little's law) keeps


def true_quantile(spec: SyntheticSpec, users: float, p: float) -> float:
    """The p-quantile (ms) of the latency a hold at ``users`` draws from, exactly: a
    mixture over endpoints of lognormals, the AR(1) factor folded in (a lognormal times
    exp(f), f normal, is lognormal).  Without clip or drift; for tests that place a
    limit a few percent from the truth."""
    from scipy import optimize, stats

    w = np.array([e[2] for e in ENDPOINTS])
    w = w / w.sum()
    mult = np.array([e[3] for e in ENDPOINTS])
    mult = mult / float((w * mult).sum())
    sd = spec.latency_ar_sd
    mu = lognormal_mu(spec, users) + np.log(mult * spec.latency_scale) - sd * sd / 2
    s = math.sqrt(spec.latency_sigma**2 + sd * sd)

    def below(log_x: float) -> float:
        return float((w * stats.norm.cdf((log_x - mu) / s)).sum()) - p

    lo, hi = float(mu.min()) - 10 * s, float(mu.max()) + 10 * s
    return math.exp(optimize.brentq(below, lo, hi)) / 1000.0


def _dependence(spec: SyntheticSpec, st: dict, t_in_stage: np.ndarray) -> np.ndarray:
    """Multiplier of every latency of a stage: the AR(1) factor of its second of the run,
    and the hold's centred drift."""
    out = np.ones(t_in_stage.size)
    if spec.latency_ar_sd > 0:
        f = ar1_factor(spec, int(math.ceil(stages(spec)[-1]["end_s"])) + 1)
        sec = np.minimum((st["start_s"] + t_in_stage).astype(np.int64), f.size - 1)
        out *= np.exp(f[sec])
    if spec.latency_drift_per_s and st["kind"] == "hold":
        mid = (st["end_s"] - st["start_s"]) / 2
        out *= np.exp(spec.latency_drift_per_s * (t_in_stage - mid))
    return out


def _hold_rate(spec: SyntheticSpec, st: dict) -> np.ndarray | None:
    """Requests per second of a hold whose latency moves (AR(1) factor, drift): the
    closed model's X(t) = N / (R(t) + Z), so Little's law holds in every part of the
    hold, as it does in a real closed loop.  None when the latency does not move."""
    if spec.latency_ar_sd <= 0 and not spec.latency_drift_per_s:
        return None
    seconds = int(math.ceil(st["end_s"] - st["start_s"]))
    g = _dependence(spec, st, np.arange(seconds) + 0.5)
    r = mean_response_s(spec, st["users"]) * spec.latency_scale
    if spec.latency_clip_ms is not None:
        r_t = np.clip(r * g, spec.latency_clip_ms[0] / 1e3, spec.latency_clip_ms[1] / 1e3)
    else:
        r_t = r * g
    return st["users"] / (r_t + sum(spec.think_time_s) / 2)


def _records(spec: SyntheticSpec, st: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    dur = st["end_s"] - st["start_s"]
    if st["kind"] == "ramp":
        u0, u1 = st["from_users"], st["users"]
        n = int(usl_throughput(spec, max((u0 + u1) / 2, 1)) * dur)
        frac = rng.random(n)
        users = np.maximum(np.round(u0 + (u1 - u0) * frac), 1).astype(np.int32)
    else:
        rate = _hold_rate(spec, st)
        n = int(rate.sum()) if rate is not None else int(usl_throughput(spec, st["users"]) * dur)
        frac = rng.random(n)
        if rate is not None:  # times follow the per-second rate (inverse CDF)
            cdf = np.concatenate([[0.0], np.cumsum(rate)]) / rate.sum()
            frac = np.interp(frac, cdf, np.linspace(0.0, 1.0, cdf.size))
        users = np.full(n, st["users"], dtype=np.int32)
    ts = START_US + ((st["start_s"] + frac * dur) * 1e6).astype(np.int64)
    weights = np.array([e[2] for e in ENDPOINTS])
    ep = rng.choice(len(ENDPOINTS), size=n, p=weights / weights.sum())
    mult = np.array([e[3] for e in ENDPOINTS])[ep]
    mult = mult / float((weights / weights.sum() * np.array([e[3] for e in ENDPOINTS])).sum())
    level = st["users"] if st["kind"] == "hold" else max((st["from_users"] + st["users"]) / 2, 1)
    mu = lognormal_mu(spec, level)
    lat = rng.lognormal(mu, spec.latency_sigma, n) * mult * spec.latency_scale
    lat *= _dependence(spec, st, frac * dur)
    if spec.latency_clip_ms is not None:
        lat = np.clip(lat, spec.latency_clip_ms[0] * 1e3, spec.latency_clip_ms[1] * 1e3)
    lat = np.maximum(lat, 1).astype(np.int64)
    intended = lat.copy()
    if spec.model == "open" and spec.co_stall_ms > 0:
        intended += rng.exponential(spec.co_stall_ms * 1000, n).astype(np.int64)
    classes = ["", *spec.error_mix]
    probs = [1 - sum(spec.error_mix.values()), *spec.error_mix.values()]
    err = rng.choice(len(classes), size=n, p=probs)
    outcome = np.zeros(n, dtype=np.int32)  # index into ["", *checkout_outcomes]
    checkout = np.flatnonzero((ep == CHECKOUT) & (err == 0))
    if spec.checkout_outcomes and checkout.size:
        shares = list(spec.checkout_outcomes.values())
        draw = rng.choice(len(shares) + 1, size=checkout.size, p=[1 - sum(shares), *shares])
        outcome[checkout] = draw
    return {
        "ts": ts,
        "ep": ep,
        "lat": lat,
        "intended": intended,
        "err": err,
        "users": users,
        "classes": classes,
        "outcome": outcome,
    }


def _outcome_columns(
    spec: SyntheticSpec, rec: dict[str, np.ndarray]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Outcome codes, status and error class per record (business outcomes of checkout)."""
    codes = ["", *spec.checkout_outcomes]
    status = np.array([STATUS_OF[c] for c in rec["classes"]], dtype=np.int16)[rec["err"]]
    error = np.array(rec["classes"], dtype=object)[rec["err"]]
    for k, code in enumerate(codes[1:], start=1):
        m = rec["outcome"] == k
        code_status = 202 if code == PAYMENT_PENDING else 409
        status[m] = code_status
        error[m] = classify_error(code_status, None, code)
    return codes, status, error


def _write_events(spec: SyntheticSpec, path: Path, rng: np.random.Generator) -> None:
    (path / "events").mkdir(parents=True, exist_ok=True)
    methods = pa.array([e[0] for e in ENDPOINTS])
    names = pa.array([e[1] for e in ENDPOINTS])
    for i, st in enumerate(stages(spec)):
        rec = _records(spec, st, rng)
        codes, status, error = _outcome_columns(spec, rec)
        outcome = pa.array(codes)
        worker = rng.integers(0, spec.workers, rec["ts"].size)
        for w in range(spec.workers):
            m = worker == w
            ep = pa.array(rec["ep"][m].astype(np.int32))
            table = pa.table(
                {
                    "ts_us": rec["ts"][m],
                    "persona": pa.array(np.array(PERSONAS)[rec["ep"][m] % len(PERSONAS)]),
                    "name": names.take(ep),
                    "method": methods.take(ep),
                    "status": status[m],
                    "latency_us": rec["lat"][m],
                    "intended_latency_us": rec["intended"][m],
                    "bytes": (rec["lat"][m] % 5000 + 200).astype(np.int64),
                    "error_class": pa.array(error[m].tolist(), pa.string()),
                    "outcome": outcome.take(pa.array(rec["outcome"][m])),
                    "worker": pa.array([f"w{w}"] * int(m.sum())),
                    "users": rec["users"][m],
                    "ack": pa.nulls(int(m.sum()), pa.string()),
                },
                schema=EVENT_SCHEMA,
            )
            pq.write_table(table, path / "events" / f"w{w}-{i:04d}.parquet", row_group_size=262_144)


def _users_at(spec: SyntheticSpec, t: np.ndarray) -> np.ndarray:
    users = np.zeros_like(t, dtype=float)
    for st in stages(spec):
        m = (t >= st["start_s"]) & (t < st["end_s"])
        if st["kind"] == "ramp":
            f = (t[m] - st["start_s"]) / (st["end_s"] - st["start_s"])
            users[m] = st["from_users"] + (st["users"] - st["from_users"]) * f
        else:
            users[m] = st["users"]
    return np.maximum(users, 1)


class _SampleColumns:
    """Columns of a samples table, filled one series at a time, written once.

    One writer for every synthetic samples file, so they all keep SAMPLE_SCHEMA."""

    def __init__(self) -> None:
        self.cols: dict[str, list] = {
            "ts_us": [],
            "source": [],
            "metric": [],
            "value": [],
            "labels": [],
        }

    def add(self, ts_us: np.ndarray, source: str, metric: str, values, label: str = "") -> None:
        n = ts_us.size
        self.cols["ts_us"].append(ts_us)
        self.cols["source"] += [source] * n
        self.cols["metric"] += [metric] * n
        self.cols["value"].append(np.asarray(values, dtype=float))
        self.cols["labels"] += [label] * n

    def write(self, path: Path) -> None:
        c = self.cols
        table = pa.table(
            {
                "ts_us": np.concatenate(c["ts_us"]),
                "source": c["source"],
                "metric": c["metric"],
                "value": np.concatenate(c["value"]),
                "labels": c["labels"],
            },
            schema=SAMPLE_SCHEMA,
        )
        pq.write_table(table, path)


def _write_samples(spec: SyntheticSpec, path: Path, rng: np.random.Generator) -> None:
    (path / "samples").mkdir(parents=True, exist_ok=True)
    end = stages(spec)[-1]["end_s"]
    # Like the sampler loop: one sample a second, and a last one after the load ended.
    t = np.arange(0, end + 2, 1.0)
    x = np.array([usl_throughput(spec, u) for u in _users_at(spec, t)])
    n = t.size
    noise = rng.normal(0, 1, (8, n))
    series = {
        # psutil convention (100 = one core) on a 2-core host: 200 = the whole machine
        ("service", "cpu_percent"): 2 * np.clip(100 * x / spec.cpu_rps_at_100 + noise[0], 0, 100),
        ("postgres", "cpu_percent"): 2 * np.clip(40 * x / spec.cpu_rps_at_100 + noise[1], 0, 100),
        ("service", "rss_bytes"): 300e6 + 2e5 * _users_at(spec, t),
        ("service", "memory_limit_bytes"): np.full(n, 2 * 2**30),
        ("postgres", "connections_total"): np.minimum(5 + x / 20, 95) + noise[2] * 0.2,
        ("postgres", "max_connections"): np.full(n, 100.0),
        ("pgbouncer", "cl_waiting"): np.zeros(n),
        (HOST_SOURCE, HOST_CPU_METRIC): np.clip(spec.host_cpu_percent + noise[4], 0, 100),
        ("service", "cache_hits"): np.cumsum(x * spec.cache_hit_rate),
        ("service", "cache_misses"): np.cumsum(x * (1 - spec.cache_hit_rate)),
        ("redis", "keyspace_hits"): np.cumsum(x * spec.cache_hit_rate),
        ("redis", "keyspace_misses"): np.cumsum(x * (1 - spec.cache_hit_rate)),
        ("service", "stripe_calls_total"): np.cumsum(x * 0.05),
        ("service", "db_connection_errors"): np.linspace(0, spec.db_connection_errors, n),
    }
    # The queue's own counters, as marketplace/jobs.py exports them (analysis/jobs.py).
    queue_series = {
        "enqueued": np.floor(np.linspace(0, spec.jobs[0], n)),
        "completed": np.floor(np.linspace(0, spec.jobs[1], n)),
        "failed": np.floor(np.linspace(0, spec.jobs[0] - spec.jobs[1], n)),
    }
    cols = _SampleColumns()
    ts = START_US + (t * 1e6).astype(np.int64)
    for (src, metric), values in series.items():
        cols.add(ts, src, metric, values)
    for outcome, values in queue_series.items():
        cols.add(ts, "service", QUEUE_METRIC.format(outcome), values, '{"queue": "batches"}')
    _generator_samples(spec, t, x, noise[3], rng, cols)
    cols.write(path / "samples" / "sampler-0000.parquet")


def _generator_samples(spec, t, x, noise, rng, cols: _SampleColumns) -> None:
    """Each worker's probe: CPU at 1 Hz, event-loop lag at 1 / LAG_INTERVAL_S Hz."""
    lag_t = np.arange(0, t[-1] + 1 if t.size else 0, LAG_INTERVAL_S)
    for w in range(spec.workers):
        label = f'{{"worker": "w{w}"}}'
        cpu = np.clip(10 + x / 20 + noise, 0, 100)
        lag = rng.exponential(spec.generator_lag_ms, lag_t.size)
        for times, metric, values in (
            (t, GENERATOR_CPU_METRIC, cpu),
            (lag_t, LAG_METRIC, lag),
        ):
            cols.add(
                START_US + (times * 1e6).astype(np.int64), GENERATOR_SOURCE, metric, values, label
            )


#: Sample unit per rate unit of a demand series (cpu_percent: 100 = one core busy).
DEMAND_SAMPLE_UNIT = {"cpu_percent": 100.0, "total_xact_time": 1e6}
#: Demand series that are levels, not running totals.
DEMAND_GAUGES = frozenset({"cpu_percent"})


def _write_demand_samples(spec: SyntheticSpec, path: Path) -> None:
    """Samples whose busy rate is background + Σ_r (requests of route r in the second)
    x demand_r, from the records just written: the utilisation law with known demands.

    Its own seeded generator, so every other series stays exactly as before.
    """
    rng = np.random.default_rng(spec.seed + 7919)
    ev = pq.read_table(path / "events", columns=["ts_us", "method", "name"]).to_pandas()
    route = (ev["method"].astype(str) + " " + ev["name"].astype(str)).to_numpy()
    end = stages(spec)[-1]["end_s"]
    ticks = START_US + (np.arange(0, end + 2, 1.0) * 1e6).astype(np.int64)
    second = np.searchsorted(ticks, ev["ts_us"].to_numpy(np.int64), side="right")  # (k-1, k]
    cols = _SampleColumns()
    for key, demand in spec.demands.items():
        source, metric = key.split("/", 1)
        busy = np.full(ticks.size, float(demand.get("background", 0.0)))
        for name, d in demand.items():
            if name != "background":
                busy += d * np.bincount(second[route == name], minlength=ticks.size)[: ticks.size]
        busy += rng.normal(0, spec.demand_noise * max(float(busy.mean()), 1e-12), ticks.size)
        busy[0] = 0.0
        if metric not in DEMAND_GAUGES:
            busy = np.cumsum(np.clip(busy, 0, None))
        cols.add(ticks, source, metric, busy * DEMAND_SAMPLE_UNIT.get(metric, 1.0))
    cols.write(path / "samples" / "demands-0000.parquet")


def _write_arrivals(spec: SyntheticSpec, path: Path, rng: np.random.Generator) -> None:
    (path / "arrivals").mkdir(parents=True, exist_ok=True)
    end = stages(spec)[-1]["end_s"]
    t = np.arange(0, end, 1.0)
    offered = np.round([usl_throughput(spec, u) for u in _users_at(spec, t)]).astype(np.int64)
    dropped = rng.binomial(offered, spec.open_drop)
    pq.write_table(
        pa.table(
            {
                "ts_us": START_US + (t * 1e6).astype(np.int64),
                "offered": offered,
                "achieved": offered - dropped,
                "dropped": dropped,
                "worker": ["w0"] * t.size,
            },
            schema=ARRIVAL_SCHEMA,
        ),
        path / "arrivals" / "arrivals-0000.parquet",
    )


def manifest(spec: SyntheticSpec, run_id: str) -> dict:
    """The manifest fields ``loadgate run`` writes, for this synthetic run."""
    end = stages(spec)[-1]["end_s"]
    ended = START_US + int(end * 1e6)
    return {
        "run_id": run_id,
        "phase": spec.phase,
        "profile": f"phase{spec.phase}",
        "model": spec.model,
        "started_at": START,
        "load_started_at": START,
        "ended_at": np.datetime_as_string(np.datetime64(ended, "us"), unit="s") + "Z",
        "status": spec.status,
        "git_sha": "synthetic",
        "seed": spec.seed,
        "workers": spec.workers,
        "host": {"cpus": 2, "memory_bytes": 24 * 2**30},
        "config": {
            "gate": spec.gate,
            "validity": ValiditySpec.from_dict(spec.validity).to_dict(),
            "model": spec.model,
            "think_time_s": list(spec.think_time_s),
            "warmup_s": spec.warmup_s,
            "target_users": spec.gate.get("target_users"),
            "stages": [{k: v for k, v in s.items() if k != "from_users"} for s in stages(spec)],
        },
        "synthetic": {
            "sigma": spec.sigma,
            "kappa": spec.kappa,
            "lam": spec.lam,
            "latency_sigma": spec.latency_sigma,
            "error_mix": spec.error_mix,
        },
    }


def write_run(
    path: str | Path, spec: SyntheticSpec | None = None, run_id: str | None = None
) -> Path:
    """Write a complete synthetic run directory at ``path`` and return it."""
    spec = spec or SyntheticSpec()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    fields = manifest(spec, run_id or path.name)
    if spec.status is None:
        fields.pop("status")
    if spec.persona_mix is not None:
        fields["config"]["persona_mix"] = dict(spec.persona_mix)
    if spec.stripe_rate_limit is not None:
        fields["stripe"] = {"rate_limit_per_s": spec.stripe_rate_limit}
    update_manifest(path, **fields)
    _write_events(spec, path, rng)
    _write_samples(spec, path, rng)
    if spec.demands:
        _write_demand_samples(spec, path)
    if spec.model == "open":
        _write_arrivals(spec, path, rng)
    if spec.faults:
        (path / "faults.jsonl").write_text("".join(json.dumps(f) + "\n" for f in spec.faults))
    (path / "logs").mkdir(exist_ok=True)
    return path


def truncate_last_events_file(path: str | Path) -> Path:
    """Simulate a killed writer: write a partial parquet file into events/."""
    events = Path(path) / "events"
    good = sorted(events.glob("*.parquet"))[0].read_bytes()
    bad = events / "zz-killed.parquet"
    bad.write_bytes(good[: len(good) // 2])
    return bad


def split_events_file(path: str | Path, name: str, parts: int) -> list[Path]:
    """Rewrite ``events/<name>`` as ``parts`` files in time order, ``<stem>-00.parquet``...
    (a writer that flushed every few seconds, as ``loadgate run``'s does)."""
    src = Path(path) / "events" / name
    table = pq.read_table(src)
    table = table.sort_by("ts_us")
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    out = []
    for i in range(parts):
        f = src.with_name(f"{src.stem}-{i:02d}.parquet")
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), f)
        out.append(f)
    src.unlink()
    return out


def truncate_events_file(path: str | Path) -> Path:
    """Cut an events file in half in place, as a writer killed mid-write leaves it."""
    f = Path(path)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    return f
