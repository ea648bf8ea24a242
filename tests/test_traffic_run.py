"""The traffic in short real runs: every hot path the seed names is exercised,
product reads spread over the catalogue, and a seed reproduces its arrivals.

One real phase-2 stack (local provider: Postgres, PgBouncer, Redis, OSRM,
Stripe mock, the service with its job queue) with the ``tiny`` fixtures,
driven by ``loadgate run --target`` so the stack outlives each run and can be
inspected afterwards. Distinct product reads are counted from the service's
own ``product:{id}`` cache entries (phase2 caches every detail read, 5 min
TTL), not from anything the load generator says about itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis

from fixtures.load import load
from runconfig.phase_config import DEFAULT_CONFIG
from runconfig.sizes import get_size
from stack.config import StackConfig, StripeRealism
from stack.stack import Stack
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.load
SEED = 7


def fast_config(directory: Path) -> Path:
    """The shipped config with short think times and the operator's jobs every 6 s."""
    text = DEFAULT_CONFIG.read_text()
    for old, new in (
        ("think_time_s = [1.0, 5.0]", "think_time_s = [0.2, 0.6]"),
        ("batch_interval_s = 60", "batch_interval_s = 6"),
        ("payout_interval_s = 60", "payout_interval_s = 6"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = directory / "phases.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[tuple[Stack, Path, Path]]:
    home = tmp_path_factory.mktemp("traffic")
    config = StackConfig(provider="local", profile="phase2", stripe=StripeRealism.off())
    # Payouts run 1 s after they are queued (the seed's 60 s delay would make every run
    # wait for its payouts before ending: loadgate/queue_drain.py).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LOADGATE_PAYOUT_DELAY_S", "1")
        stack = Stack(config)
        stack.start()
    try:
        credentials = home / "credentials.csv"
        load(
            stack.url("postgres"),
            get_size("tiny"),
            SEED,
            stack.url("osrm"),
            credentials,
            migrate_profile="phase2",
            secret=stack.config.auth_secret,
        )
        yield stack, credentials, fast_config(home)
    finally:
        stack.stop()


def _run(target, out: Path, *extra: str) -> pd.DataFrame:
    stack, credentials, config = target
    result = run_cli(
        [
            "run",
            "--phase",
            "2",
            "--target",
            stack.url("marketplace"),
            "--credentials",
            str(credentials),
            "--config",
            str(config),
            "--workers",
            "1",
            "--seed",
            str(SEED),
            "--no-report",
            "--out",
            str(out),
            *extra,
        ],
        out.parent / f"state-{out.name}",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return pd.read_parquet(out / "events")


@pytest.fixture(scope="module")
def closed_events(target, tmp_path_factory) -> pd.DataFrame:
    stack, _, _ = target
    redis.Redis.from_url(stack.url("redis")).flushdb()
    out = tmp_path_factory.mktemp("runs") / "closed"
    return _run(target, out, "--users", "24", "--duration", "45s")


def test_a_run_exercises_batches_payouts_and_driver_routes(closed_events) -> None:
    calls = set(zip(closed_events.method, closed_events.name, strict=True))
    assert ("POST", "/admin/batches/generate") in calls
    assert ("GET", "/admin/jobs/[id]") in calls  # phase2 queues the generation
    assert ("POST", "/payouts") in calls
    assert ("GET", "/driver/batches/[id]") in calls
    assert ("PATCH", "/driver/batches/[id]/stops/[id]") in calls
    assert ("PATCH", "/farmer/products/[id]") in calls
    ops = closed_events[closed_events.persona == "operations"]
    payouts = ops[ops.name == "/payouts"]
    assert (payouts.status.isin([201, 202])).any(), payouts.status.value_counts()
    assert (closed_events.error_class == "5xx").sum() == 0


def test_product_reads_cover_a_fifth_of_the_catalogue(target, closed_events) -> None:
    stack, _, _ = target
    client = redis.Redis.from_url(stack.url("redis"))
    read = {key for key in client.scan_iter("product:*") if key.split(b":")[1].isdigit()}
    assert len(read) >= get_size("tiny").products / 5, len(read)
    names = set(closed_events.name)
    assert {"/products", "/products/search", "/products/[id]"} <= names


def _arrivals(events: pd.DataFrame) -> pd.DataFrame:
    """Each arrival's first request (the one measured from its intended start), in order.

    Its intended start is the arrival time: ``ts_us + latency_us - intended_latency_us``;
    times are made relative to the first arrival, since the two runs start apart.
    """
    first = events[events.intended_latency_us > events.latency_us].copy()
    first["intended_us"] = first.ts_us + first.latency_us - first.intended_latency_us
    first = first.sort_values("intended_us").reset_index(drop=True)
    first["offset_ms"] = (first.intended_us - first.intended_us.iloc[0]) / 1000
    return first[["persona", "name", "offset_ms"]]


def test_two_open_runs_with_one_seed_offer_the_same_arrivals(target, tmp_path) -> None:
    """The first 40 arrivals (well before the plan's end cuts the runs) match exactly."""
    args = ("--model", "open", "--rate", "6", "--duration", "24s")
    runs = [_arrivals(_run(target, tmp_path / f"open{i}", *args)) for i in (1, 2)]
    assert min(len(r) for r in runs) >= 50, [len(r) for r in runs]
    first, second = (r.head(40) for r in runs)
    assert list(zip(first.persona, first.name, strict=True)) == list(
        zip(second.persona, second.name, strict=True)
    )
    # Same arrival times; µs rounding of the recorded columns is the only slack.
    assert (first.offset_ms - second.offset_ms).abs().max() < 1.0
    assert first.persona.nunique() >= 2 and first.offset_ms.iloc[-1] > 1000


def test_a_short_phase_2_run_evaluates_job_completion(phase2_run) -> None:
    """A whole `loadgate run` (its own stack, samplers on the service; tests/conftest.py
    ``phase2_run``) measures job completion from the queue's counters: the criterion gets
    a value, not "not sampled"."""
    out = phase2_run.out
    report = json.loads((out / "report" / "report.json").read_text())
    jobs = next(c for c in report["gate"]["criteria"] if c["name"] == "job_completion_rate")
    assert jobs["value"] is not None and 0 < jobs["value"] <= 1, jobs
    assert "jobs enqueued in the window completed" in jobs["detail"], jobs
