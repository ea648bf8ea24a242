"""The incident watcher (a service that stops answering is recorded once, with its log
tail, and again when it answers) and the log streamer (service logs copied into the
run directory while the run goes)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from loadgate.incidents import FAILURES_NEEDED, IncidentWatcher
from stack.logs import LogStreamer, _parse_stamp


class Switch:
    """A probe that answers until switched off."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if not self.up:
            raise ConnectionRefusedError("Error 111 connecting to 127.0.0.1:6379")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_probe_that_starts_failing_is_recorded_once_with_its_log_tail(tmp_path):
    redis, postgres = Switch(), Switch()
    tails = {"redis": [f"line {i}" for i in range(50)], "postgres": []}
    watcher = IncidentWatcher(tmp_path, {"redis": redis, "postgres": postgres}, tails.__getitem__)
    watcher.check_once()
    assert not (tmp_path / "incidents.jsonl").exists()
    redis.up = False
    watcher.check_once()  # one failure may be a hiccup: not yet an incident
    assert lines(tmp_path / "incidents.jsonl") == []
    for _ in range(5):
        watcher.check_once()
    records = lines(tmp_path / "incidents.jsonl")
    assert len(records) == 1, records  # recorded once, however long it stays down
    incident = records[0]
    assert incident["service"] == "redis" and incident["planned"] is False
    assert incident["end_us"] is None and "Error 111" in incident["reason"]
    assert incident["log_tail"] == [f"line {i}" for i in range(30, 50)]
    assert incident["start_us"] <= incident["detected_us"]
    redis.up = True
    watcher.check_once()
    records = lines(tmp_path / "incidents.jsonl")
    assert len(records) == 2 and records[1]["id"] == incident["id"]
    assert records[1]["end_us"] >= incident["detected_us"]
    assert postgres.calls == 8  # every round probes every service


def test_a_service_down_for_an_injected_fault_is_a_planned_incident(tmp_path):
    osrm = Switch()
    osrm.up = False
    watcher = IncidentWatcher(
        tmp_path,
        {"osrm": osrm},
        lambda name: [],
        expected=lambda name: "cut:osrm@30s+10s" if name == "osrm" else None,
    )
    for _ in range(FAILURES_NEEDED):
        watcher.check_once()
    (incident,) = lines(tmp_path / "incidents.jsonl")
    assert incident["planned"] is True and incident["fault"] == "cut:osrm@30s+10s"


def test_a_failing_log_tail_does_not_lose_the_incident(tmp_path):
    probe = Switch()
    probe.up = False

    def broken_tail(name: str) -> list[str]:
        raise OSError("log gone")

    watcher = IncidentWatcher(tmp_path, {"pgbouncer": probe}, broken_tail)
    for _ in range(FAILURES_NEEDED):
        watcher.check_once()
    (incident,) = lines(tmp_path / "incidents.jsonl")
    assert incident["service"] == "pgbouncer" and incident["log_tail"] == []


def test_the_watcher_thread_starts_and_stops(tmp_path):
    probe = Switch()
    watcher = IncidentWatcher(tmp_path, {"redis": probe}, lambda name: [], interval_s=0.05)
    watcher.start()
    import time

    time.sleep(0.3)
    watcher.stop()
    assert probe.calls >= 3


def test_log_streamer_copies_new_bytes_of_local_logs(tmp_path):
    source = tmp_path / "service.log"
    source.write_text("first\n")
    service = SimpleNamespace(name="redis", log_path=source, container_id=None)
    stack = SimpleNamespace(services={"redis": service}, provider=None)
    streamer = LogStreamer(stack, tmp_path / "run" / "logs")  # type: ignore[arg-type]
    streamer.logs_dir.mkdir(parents=True)
    streamer.copy_once()
    with source.open("a") as f:
        f.write("second\n")
    streamer.copy_once()
    streamer.copy_once()  # nothing new: nothing doubled
    copied = (tmp_path / "run" / "logs" / "redis.log").read_text()
    assert copied == "first\nsecond\n"
    assert streamer.tail("redis", 1) == ["second"]


def test_docker_timestamps_parse_to_microseconds():
    when = _parse_stamp("2026-11-27T16:10:01.123456789Z")
    assert when is not None and when.microsecond == 123456 and when.second == 1
    assert _parse_stamp("not-a-stamp") is None


def test_a_slow_service_is_not_down_until_its_probes_time_out_for_slow_for_s(tmp_path, monkeypatch):
    """Timeouts from a service saturated by the load are latency, not an outage; refusals
    are an outage at once; timeouts that last SLOW_FOR_S are an outage too."""
    import loadgate.incidents as inc

    clock = [1_000_000_000]
    monkeypatch.setattr(inc, "now_us", lambda: clock[0])

    def slow() -> None:
        raise TimeoutError("ReadTimeout: timed out")

    watcher = IncidentWatcher(tmp_path, {"stripe": slow}, lambda name: [])
    for _ in range(5):  # 5 s of timed-out probes: slow
        watcher.check_once()
        clock[0] += 1_000_000
    assert watcher.incidents == []
    clock[0] += int(inc.SLOW_FOR_S * 1e6)
    watcher.check_once()
    assert len(watcher.incidents) == 1 and "timed out" in watcher.incidents[0]["reason"]
    assert inc.is_timeout(TimeoutError()) and not inc.is_timeout(ConnectionRefusedError("111"))
