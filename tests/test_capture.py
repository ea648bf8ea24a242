"""Raw capture: error classes, latencies in µs, complete files per flush."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from scenarios.capture import RawCapture, classify_error


@pytest.mark.parametrize(
    ("status", "exception", "expected"),
    [
        (200, None, ""),
        (201, None, ""),
        (200, AssertionError("bad body"), "assertion"),
        (404, Exception("404"), "4xx"),
        (409, None, ""),  # accepted by the scenario as a business outcome
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
