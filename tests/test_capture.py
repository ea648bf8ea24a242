"""Raw capture: error classes, business outcomes by code, latencies in µs, complete files
per flush; the generator probe and the drain at the end of the last hold."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from loadgate.locust_cluster import REPO_ROOT
from runformat.schemas import EVENT_COLUMNS
from scenarios.capture import RawCapture, classify_error, outcome_of


@pytest.mark.parametrize(
    ("status", "exception", "expected"),
    [
        (200, None, ""),
        (201, None, ""),
        (200, AssertionError("bad body"), "assertion"),
        (404, Exception("404"), "4xx"),
        (409, None, "4xx"),  # a 409 is accepted by its code, not by its status alone
        (429, None, "429"),
        (500, None, "5xx"),
        (429, Exception("429"), "429"),
        (503, Exception("503"), "5xx"),
        (0, ConnectionRefusedError("refused"), "connection"),
        (0, TimeoutError("timed out"), "timeout"),
        (0, None, "connection"),
    ],
)
def test_error_classes(status, exception, expected):
    assert classify_error(status, exception) == expected


class _Response(SimpleNamespace):
    def json(self):
        return self.body


@pytest.mark.parametrize(
    ("status", "body", "outcome", "error_class"),
    [
        (409, {"error": {"code": "insufficient_stock"}}, "insufficient_stock", ""),
        (409, {"error": {"code": "already_claimed"}}, "already_claimed", ""),
        # Paying twice and spending credits one does not have are failures, 409 or not.
        (409, {"error": {"code": "insufficient_credits"}}, "insufficient_credits", "4xx"),
        (409, {"error": {"code": "not_payable"}}, "not_payable", "4xx"),
        (202, {"order_id": 7, "status": "payment_pending"}, "payment_pending", ""),
        (201, {"order_id": 7, "status": "paid"}, "", ""),
        (404, None, "", "4xx"),
        (404, {"error": {"code": "not_found"}}, "not_found", "4xx"),  # on another route
    ],
)  # fmt: skip
def test_outcomes_are_classified_by_their_code(status, body, outcome, error_class):
    response = _Response(status_code=status, body=body)
    assert outcome_of(status, response) == outcome
    # Whatever the scenario said (success() leaves no exception), the code decides.
    assert classify_error(status, None, outcome_of(status, response), "GET /orders") == error_class


def test_a_route_scoped_outcome_is_expected_on_its_route_only():
    assert classify_error(404, None, "not_found", "GET /products/[id]") == ""
    assert classify_error(404, None, "not_found", "GET /orders/[id]") == "4xx"


def test_records_are_flushed_as_complete_parquet_files(tmp_path):
    capture = RawCapture(tmp_path, worker_id="w1", users=lambda: 7)
    capture.on_request(
        request_type="GET",
        name="/products/[id]",
        response_time=12.3456,
        response_length=512,
        response=SimpleNamespace(status_code=200),
        context={"persona": "shopper"},
        exception=None,
        start_time=1_700_000_000.25,
    )
    assert capture.flush() == 1
    capture.on_request(
        request_type="POST",
        name="/checkout",
        response_time=250.0,
        response_length=0,
        response=SimpleNamespace(status_code=429),
        exception=Exception("429"),
        context={"persona": "buyer", "intended_start": 1_700_000_000.0},
        start_time=1_700_000_000.5,
    )
    capture.close()
    files = sorted((tmp_path / "events").glob("*.parquet"))
    assert [f.name for f in files] == ["w1-000001.parquet", "w1-000002.parquet"]
    frame = pd.read_parquet(tmp_path / "events").sort_values("ts_us")
    first, second = frame.iloc[0], frame.iloc[1]
    assert first.ts_us == 1_700_000_000_250_000
    assert first.latency_us == 12346 and first.intended_latency_us == 12346
    assert (first.persona, first["name"], first.status, first.users) == (
        "shopper",
        "/products/[id]",
        200,
        7,
    )
    assert first.error_class == ""
    # Open model: latency counted from the intended start (500 ms earlier).
    assert second.latency_us == 250_000
    assert second.intended_latency_us == 750_000
    assert second.error_class == "429"
    assert capture.records_written == 2
    assert list(frame.columns) == list(EVENT_COLUMNS)


def test_a_sold_out_checkout_is_recorded_with_its_outcome(tmp_path):
    capture = RawCapture(tmp_path, worker_id="w1")
    body = {"error": {"code": "insufficient_stock", "message": "sold out"}}
    capture.on_request(
        request_type="POST",
        name="/checkout",
        response_time=40.0,
        response_length=10,
        response=_Response(status_code=409, body=body),
        context={"persona": "buyer"},
        exception=None,
        start_time=1_700_000_000.0,
    )
    capture.close()
    row = pd.read_parquet(tmp_path / "events").iloc[0]
    assert (row.status, row.outcome, row.error_class) == (409, "insufficient_stock", "")


def test_generator_probe_records_event_loop_lag_and_cpu(tmp_path):
    """The probe runs in a real gevent loop; a greenlet hogging the loop shows as lag."""
    script = f"""
from gevent import monkey
monkey.patch_all()  # as in every Locust process
import gevent, time
from scenarios.generator_probe import GeneratorProbe
probe = GeneratorProbe({str(tmp_path)!r}, "w9", flush_s=0.5)
probe.start()
gevent.sleep(1.3)
end = time.perf_counter() + 0.25
while time.perf_counter() < end:  # hogs the loop: the probe oversleeps by up to 250 ms
    pass
gevent.sleep(0.5)
probe.close()
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO_ROOT, timeout=60)
    frame = pd.read_parquet(tmp_path / "samples")
    assert set(frame.source) == {"generator"}
    assert set(frame.labels) == {'{"worker": "w9"}'}
    lag = frame[frame.metric == "event_loop_lag_ms"]["value"]
    assert len(lag) >= 10 and (lag >= 0).all()
    assert lag.max() > 100  # the blocked quarter second
    assert (frame.metric == "cpu_percent").sum() >= 1
    assert (frame.metric == "gc_pause_ms").sum() >= 1


def test_gc_pauses_keep_the_longest_collection_of_each_second():
    """A full collection of a large heap is a pause every greenlet waits through: the probe
    keeps the longest one since it last looked, then starts again from zero."""
    from scenarios.generator_probe import GcPauses

    pauses = GcPauses()
    pauses.install()
    try:
        heap = [[i] for i in range(300_000)]  # enough tracked objects for a visible pause
        gc.collect()
        first = pauses.take()
        assert first > 0
        assert pauses.take() == 0.0  # nothing collected since
        gc.collect(0)
        assert pauses.take() > 0  # a young-generation collection is timed too
    finally:
        pauses.remove()
        del heap
    assert pauses not in gc.callbacks


def test_users_drain_in_flight_requests_at_the_end():
    """Locust stops users with a stop timeout at least as long as a request may take, so a
    request in flight when the last hold ends completes and is recorded (thinking users
    stop at once)."""
    from loadgate.locust_cluster import DRAIN_TIMEOUT_S, LocustCluster

    script = (
        "from scenarios.personas import PersonaUser as U;"
        "print(max(U.network_timeout, U.connection_timeout))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert float(out.stdout.strip()) <= DRAIN_TIMEOUT_S
    cluster = LocustCluster(Path("/nonexistent"), "http://127.0.0.1:1", Path("p"), Path("c"), 1)
    spawned = []
    cluster._spawn = lambda args, name: spawned.append((name, args))  # type: ignore[method-assign]
    cluster.start()
    master = dict(spawned)["master"]
    assert float(master[master.index("--stop-timeout") + 1]) >= DRAIN_TIMEOUT_S


def test_a_finished_spawn_freezes_the_heap():
    """Users and their sessions, alive once spawned, leave the generations that full
    collections walk (scenarios/heap.py). In a child: Locust patches the process."""
    script = """
from gevent import monkey
monkey.patch_all()
import gc
from locust.env import Environment
from scenarios.heap import freeze_after_spawning
environment = Environment()
freeze_after_spawning(environment)
before = gc.get_freeze_count()
environment.events.spawning_complete.fire(user_count=3)
print(before, gc.get_freeze_count())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT,
        check=True, timeout=60,
    )  # fmt: skip
    before, after = map(int, out.stdout.split())
    assert after > before + 1000  # every object alive at the spawn's end
