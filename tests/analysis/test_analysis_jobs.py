"""analysis.jobs: job completion from the queue's counters, attributed to the window."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from analysis.jobs import job_completion

S = 1_000_000


def samples(series: dict[tuple[str, str], list[tuple[int, float]]]) -> SimpleNamespace:
    """A run whose samples hold the given (outcome, queue) -> [(second, value)] counters."""
    rows = [
        (t * S, "service", f"marketplace_queue_jobs_{outcome}_total", v, json.dumps({"queue": q}))
        for (outcome, q), points in series.items()
        for t, v in points
    ]
    frame = pd.DataFrame(rows, columns=["ts_us", "source", "metric", "value", "labels"])
    return SimpleNamespace(samples=frame)


def test_all_jobs_of_the_window_completed_within_grace() -> None:
    run = samples(
        {
            ("enqueued", "batches"): [(0, 0), (100, 40), (220, 40), (400, 45)],
            ("completed", "batches"): [(0, 0), (100, 30), (220, 40), (400, 45)],
            ("enqueued", "payouts"): [(0, 0), (100, 10), (220, 10), (400, 10)],
            ("completed", "payouts"): [(0, 0), (100, 0), (220, 10), (400, 10)],
        }
    )
    rate, ci, detail = job_completion(run, 0, 100 * S, grace_s=120)
    assert rate == 1.0
    assert ci is not None and ci[0] < 1.0 and ci[1] == 1.0
    assert "50 of 50" in detail


def test_jobs_before_the_window_are_not_credited_to_it() -> None:
    # 20 jobs were pending when the window began; 30 enqueued in it; 40 ended by T:
    # FIFO says those are the 20 old ones and 20 of the window's 30.
    run = samples(
        {
            ("enqueued", "batches"): [(0, 20), (100, 50), (220, 50), (300, 50)],
            ("completed", "batches"): [(0, 0), (100, 10), (220, 40), (300, 50)],
        }
    )
    rate, _, detail = job_completion(run, 0, 100 * S, grace_s=120)
    assert rate == pytest.approx(20 / 30)
    assert "batches 20/30" in detail


def test_failures_in_the_window_count_against_it() -> None:
    run = samples(
        {
            ("enqueued", "payouts"): [(0, 0), (100, 100), (220, 100)],
            ("completed", "payouts"): [(0, 0), (220, 97)],
            ("failed", "payouts"): [(0, 0), (220, 3)],
        }
    )
    rate, ci, _ = job_completion(run, 0, 100 * S, grace_s=120)
    assert rate == pytest.approx(0.97)
    assert ci is not None and ci[0] < 0.97 < ci[1] < 0.999  # a 99.9 % gate would fail


def test_pending_jobs_when_samples_end_early_make_the_window_undecidable() -> None:
    run = samples(
        {
            ("enqueued", "payouts"): [(0, 0), (100, 20), (130, 20)],
            ("completed", "payouts"): [(0, 0), (100, 5), (130, 12)],
        }
    )
    rate, ci, detail = job_completion(run, 0, 100 * S, grace_s=120)
    assert rate is None and ci is None
    assert "8 of 20 jobs still pending" in detail and "12/20" in detail


def test_a_drained_queue_is_decided_before_the_grace_is_over() -> None:
    run = samples(
        {
            ("enqueued", "batches"): [(0, 0), (100, 20), (110, 20)],
            ("completed", "batches"): [(0, 0), (100, 18), (110, 20)],
        }
    )
    rate, _, detail = job_completion(run, 0, 100 * S, grace_s=120)
    assert rate == 1.0, detail


def test_jobs_that_never_end_within_the_grace_count_as_not_completed() -> None:
    run = samples(
        {
            ("enqueued", "batches"): [(0, 0), (100, 20), (220, 20), (300, 20)],
            ("completed", "batches"): [(0, 0), (100, 10), (220, 19), (300, 20)],
        }
    )
    rate, _, detail = job_completion(run, 0, 100 * S, grace_s=120)
    assert rate == pytest.approx(19 / 20)
    assert "1 never ended" in detail


def test_no_counters_or_no_jobs_is_undecidable() -> None:
    empty = SimpleNamespace(
        samples=pd.DataFrame(columns=["ts_us", "source", "metric", "value", "labels"])
    )
    assert job_completion(empty, 0, S)[0] is None
    idle = samples(
        {("enqueued", "batches"): [(0, 5), (300, 5)], ("completed", "batches"): [(0, 5)]}
    )
    rate, ci, detail = job_completion(idle, 0, 100 * S)
    assert rate is None and ci is None and "no batch or payout job" in detail
