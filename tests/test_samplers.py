"""Samplers read real services once a second into samples/*.parquet."""

from __future__ import annotations

import contextlib
import json
import os
import time

import pandas as pd
import psycopg
import pytest

from loadgate.samplers.for_stack import stack_samplers
from loadgate.samplers.loop import SamplerLoop
from loadgate.samplers.stores import PgBouncerSampler
from stack.config import PG_MAX_CONNECTIONS

pytestmark = pytest.mark.services


def test_sampler_loop_records_every_service(full_stack, tmp_path):
    services = full_stack.services.values()
    urls = {s.name: s.url for s in services}
    pids = {s.name: s.pid for s in services if s.pid}
    containers = {s.name: s.container_id for s in services if s.container_id}
    loop = SamplerLoop(tmp_path, stack_samplers(urls, pids, containers), interval_s=0.5)
    # Hold a connection through PgBouncer so its pool shows an active client.
    with psycopg.connect(full_stack.url("pgbouncer"), prepare_threshold=None) as conn:
        conn.execute("SELECT 1")
        loop.start()
        time.sleep(2.2)
        loop.stop()
    frame = pd.read_parquet(tmp_path / "samples")
    assert loop.errors == {}
    assert len(frame["ts_us"].unique()) >= 3

    def values(source: str, metric: str) -> pd.Series:
        return frame[(frame.source == source) & (frame.metric == metric)]["value"]

    assert (values("postgres", "max_connections") == PG_MAX_CONNECTIONS).all()
    assert values("postgres", "connections_total").max() >= 1
    assert (values("replica", "max_connections") == PG_MAX_CONNECTIONS).all()
    assert values("pgbouncer", "cl_active").max() >= 1
    assert not values("redis", "keyspace_hits").empty
    assert values("process:postgres", "rss_bytes").max() > 1_000_000
    labels = frame[(frame.source == "postgres") & (frame.metric == "connections")]["labels"]
    assert all("state" in json.loads(text) for text in labels)
    assert values("process:postgres", "open_fds").min() > 0
    assert values("process:postgres", "sockets").max() >= 1  # the sampler's own connection
    # One admin connection for the run, closed by stop; a closed one is opened again.
    bouncer = next(s for s in loop.samplers if isinstance(s, PgBouncerSampler))
    assert bouncer._conn is not None and bouncer._conn.closed
    assert {m for _, m, _, _ in bouncer.sample()} >= {"cl_active", "total_xact_count"}
    bouncer.close()


def test_host_sampler_reports_whole_host_cpu(tmp_path):
    """Whole-host CPU (100 = every core) is sampled beside the services."""
    from loadgate.samplers.processes import HostSampler

    loop = SamplerLoop(tmp_path, [HostSampler()], interval_s=0.2)
    loop.start()
    time.sleep(0.7)
    loop.stop()
    frame = pd.read_parquet(tmp_path / "samples")
    cpu = frame[(frame.source == "host") & (frame.metric == "host_cpu_percent")]["value"]
    assert len(cpu) >= 3 and cpu.between(0, 100).all()


def test_process_sampler_follows_a_restarted_service():
    """A fault restarts a local service under a new pid: the sampler finds it again
    through ``locate`` instead of failing every tick from then on."""
    import subprocess
    import sys

    import psutil

    from loadgate.samplers.processes import ProcessSampler

    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    first = subprocess.Popen(sleeper)
    current = {"pid": first.pid}
    following = ProcessSampler("svc", first.pid, locate=lambda: current["pid"])
    blind = ProcessSampler("svc", first.pid)
    try:
        assert {m for _, m, _, _ in following.sample()} >= {"cpu_percent", "rss_bytes"}
        first.kill()
        first.wait()
        second = subprocess.Popen(sleeper)
        current["pid"] = second.pid
        try:
            rows = {m: v for _, m, v, _ in following.sample()}
            assert following.pid == second.pid
            assert rows["rss_bytes"] > 0
            with pytest.raises(psutil.NoSuchProcess):
                list(blind.sample())
        finally:
            second.kill()
            second.wait()
    finally:
        if first.poll() is None:
            first.kill()


def _tree_of_sleepers():
    """A child process holding a socket pair, with a grandchild of its own."""
    import subprocess
    import sys

    code = (
        "import socket, subprocess, sys, threading, time\n"
        "a, b = socket.socketpair()\n"
        "g = subprocess.Popen([sys.executable, '-c', GRANDCHILD])\n"
        "threading.Thread(target=g.wait, daemon=True).start()  # reaps it when killed\n"
        "print(g.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    # The grandchild says when its interpreter has started: until then it opens and
    # closes files, and the fd counts the test compares would move under it.
    grandchild_code = "import sys, time; print('ready', flush=True); time.sleep(60)"
    code = f"GRANDCHILD = {grandchild_code!r}\n" + code
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    grandchild = int(child.stdout.readline())
    assert child.stdout.readline().strip() == "ready"
    return child, grandchild


def test_process_sampler_covers_the_tree_with_one_shared_process_table():
    """Descendants come from one /proc scan shared by the samplers of a tick, and the
    tree's fds and sockets are still counted (sockets every few seconds only)."""
    import psutil

    from loadgate.samplers.processes import ProcessSampler, ProcessTable, count_fds, count_sockets

    child, grandchild = _tree_of_sleepers()
    try:
        table = ProcessTable(max_age_s=3600)  # one scan for the whole test
        assert table.descendants(child.pid) == [grandchild]
        assert table.descendants(grandchild) == []
        assert child.pid in table.descendants(os.getpid())
        assert count_sockets(child.pid) >= 2  # the socket pair
        assert count_fds(child.pid) >= count_sockets(child.pid) + 3  # stdio too
        assert count_fds(os.getpid()) == len(os.listdir(f"/proc/{os.getpid()}/fd")) - 1

        sampler = ProcessSampler("svc", child.pid, table=table, sockets_every_s=3600)
        first = {m: v for _, m, v, _ in sampler.sample()}
        assert set(sampler._procs) == {child.pid, grandchild}
        expected_fds = count_fds(child.pid) + count_fds(grandchild)
        assert first["open_fds"] == expected_fds
        assert first["sockets"] >= 2
        second = {m: v for _, m, v, _ in sampler.sample()}
        assert "sockets" not in second and second["open_fds"] == expected_fds
        every_tick = ProcessSampler("svc", child.pid, table=table, sockets_every_s=0)
        assert all("sockets" in {m for _, m, _, _ in every_tick.sample()} for _ in range(2))

        psutil.Process(grandchild).kill()
        deadline = time.monotonic() + 30
        while psutil.pid_exists(grandchild):
            assert time.monotonic() < deadline, "the killed grandchild was not reaped"
            time.sleep(0.05)
        fresh = ProcessTable()
        sampler.table = fresh
        list(sampler.sample())
        assert set(sampler._procs) == {child.pid}  # the gone pid is forgotten
    finally:
        child.kill()
        child.wait()
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(grandchild).kill()


def test_prometheus_prefilter_drops_only_what_the_parser_would_skip():
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from loadgate.samplers.service_metrics import without_skipped_series

    registry = CollectorRegistry()
    requests = Counter("app_requests", "r", ["path", "status"], registry=registry)
    latency = Histogram("app_latency_seconds", "l", ["path"], registry=registry)
    Gauge("app_bucket_size", "a gauge whose name contains 'bucket'", registry=registry).set(3)
    for path in ("/a", "/b{x}", "/c d"):
        requests.labels(path, "200").inc(2)
        latency.labels(path).observe(0.2)
    text = generate_latest(registry).decode()

    def kept(exposition: str) -> list[tuple[str, dict, float]]:
        return [
            (s.name, s.labels, s.value)
            for family in text_string_to_metric_families(exposition)
            for s in family.samples
            if not s.name.endswith(("_bucket", "_created"))
        ]

    filtered = without_skipped_series(text)
    assert kept(filtered) == kept(text)
    series = [line for line in filtered.splitlines() if line and not line.startswith("#")]
    assert not [line for line in series if "_bucket{" in line or "_created" in line]
    assert len(filtered) < len(text) / 2
    assert ("app_bucket_size", {}, 3.0) in kept(filtered)


def test_http_probes_share_one_client_and_still_open_a_connection_each():
    """One client (one SSL context) for every probe; each probe a new connection, as a
    new client of the service would make; a service that does not answer fails it."""
    import http.server
    import threading

    from stack import probes

    connections = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            connections.append(self.client_address)
            super().setup()

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    try:
        probes.probe_http_ok(url)
        probes.probe_http_ok(url)
        assert probes._http() is probes._http()
        assert len(connections) == 2
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(Exception):  # noqa: B017, PT011 - any failure means "not answering"
        probes.probe_http_ok(url)
