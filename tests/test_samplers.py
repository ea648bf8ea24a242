"""Samplers read real services once a second into samples/*.parquet."""

from __future__ import annotations

import json
import time

import pandas as pd
import psycopg
import pytest

from loadgate.samplers import SamplerLoop, stack_samplers
from stack.config import PG_MAX_CONNECTIONS

pytestmark = pytest.mark.integration


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


def test_host_sampler_reports_whole_host_cpu(tmp_path):
    """Whole-host CPU (100 = every core) is sampled beside the services."""
    from loadgate.samplers import HostSampler

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

    from loadgate.samplers import ProcessSampler

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
