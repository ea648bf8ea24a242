"""Remote workers on separate network hosts, no shared disk: records travel with the run.

The test builds its own hosts: three network namespaces joined by veth pairs, with
private addresses that exist only inside them (10.250.1.0/24 and 10.250.2.0/24):

    master ns  (10.250.1.1, 10.250.2.1): `loadgate run` with its own local stack (Postgres,
               PgBouncer, Redis, OSRM, the Stripe mock on the namespace's loopback; the
               marketplace on 10.250.1.1 via ``--service-host``), the Locust master and one
               local worker, its run directory in a temp dir of its own;
    worker ns a (10.250.1.2), worker ns b (10.250.2.2): `loadgate worker`, each in a
               private working directory no other process uses.

The service writes an access log (``LOADGATE_ACCESS_LOG=1``): one line per request with
the client's address, so each host's requests can be compared with the records the run
directory holds for that host. The generator runs on CPU 0, the stack on CPU 1
(``--isolation cpuset``). Worker b is SIGKILLed mid-run while records it captured are not
yet delivered. Every namespace and process is removed at the end, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from runformat.verdicts import Verdict
from tests.cli_helpers import fast_config, loadgate_env

pytestmark = [pytest.mark.load, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
REPO = Path(__file__).resolve().parent.parent
MASTER_PORT = 5557
USERS = 30
ACCESS_LINE = re.compile(r'(\d+\.\d+\.\d+\.\d+):\d+ - "(\w+) (\S+) HTTP/[\d.]+" (\d+)')
HARNESS_PATHS = ("/metrics", "/health", "/profile", "/_loadgate/")
"""Requests the harness itself makes (samplers, readiness): not the generator's."""
MASTER = {"a": "10.250.1.1", "b": "10.250.2.1"}
WORKER = {"a": "10.250.1.2", "b": "10.250.2.2"}


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


class Hosts:
    """Three namespaces named with a per-run prefix, so parallel runs never collide."""

    def __init__(self) -> None:
        self.prefix = f"lg24-{os.getpid()}"
        self.master = f"{self.prefix}-m"
        self.workers = {k: f"{self.prefix}-{k}" for k in WORKER}
        self.procs: list[subprocess.Popen] = []

    def up(self) -> None:
        for ns in (self.master, *self.workers.values()):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for key, ns in self.workers.items():
            # Both ends are created inside their namespaces: nothing on the host's own.
            sh("ip", "link", "add", f"to-{key}", "netns", self.master, "type", "veth",
               "peer", "name", "to-m", "netns", ns)  # fmt: skip
            sh("ip", "-n", self.master, "addr", "add", f"{MASTER[key]}/24", "dev", f"to-{key}")
            sh("ip", "-n", ns, "addr", "add", f"{WORKER[key]}/24", "dev", "to-m")
            sh("ip", "-n", self.master, "link", "set", f"to-{key}", "up")
            sh("ip", "-n", ns, "link", "set", "to-m", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", MASTER[key])

    def spawn(self, ns: str, cpu: int | None, args: list[str], cwd: Path, env: dict, log: Path):
        """``cpu``: pin the process there; None: it places itself (``--isolation``)."""
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *pin, *args],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def down(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for ns in (self.master, *self.workers.values()):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in pids.stdout.split():  # only processes inside our own namespaces
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def hosts():
    h = Hosts()
    try:
        h.up()
        yield h
    finally:
        h.down()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert h.prefix not in left


def _served(run_dir: Path) -> dict[str, int]:
    """Scenario requests the service answered, per client address, from its access log."""
    counts: dict[str, int] = {}
    for line in (run_dir / "logs" / "marketplace.log").read_text().splitlines():
        match = ACCESS_LINE.search(line)
        if match and not match.group(3).startswith(HARNESS_PATHS):
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def _wait(predicate, what: str, timeout: float, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _accounting(run_dir: Path) -> dict:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads((run_dir / "locust" / "records.json").read_text())
    return {}


def _events(run_dir: Path, worker: str) -> dict:
    account = _accounting(run_dir).get("workers", {}).get(worker, {})
    return account.get("streams", {}).get("events", {"lost": 0, "written": 0})


def _lost(run_dir: Path, worker: str) -> int:
    return _events(run_dir, worker)["lost"]


def _mid_run(run_dir: Path, worker: str) -> bool:
    """Some batches written (the worker is well into the run) and some not yet."""
    events = _events(run_dir, worker)
    return events["written"] >= 30 and events["lost"] > 0


def test_remote_workers_deliver_every_record_and_account_a_killed_ones_loss(hosts, tmp_path):
    master_dir, run_dir = tmp_path / "master", tmp_path / "master" / "run"
    master_dir.mkdir()
    env = {**loadgate_env(master_dir / "state"), "LOADGATE_ACCESS_LOG": "1"}
    run = hosts.spawn(
        hosts.master, None,  # --isolation cpuset: generator on CPU 0, the stack on CPU 1
        [sys.executable, "-m", "loadgate", "run", "--phase", "1", "--provider", "local",
         "--service-host", MASTER["a"], "--isolation", "cpuset", "--fixture-size", "tiny",
         "--workers", "1", "--remote-workers", "2", "--master-bind", "0.0.0.0",
         "--master-port", str(MASTER_PORT), "--users", str(USERS), "--duration", "30s",
         "--config", str(fast_config(master_dir)), "--out", str(run_dir)],
        master_dir, env, master_dir / "run.log",
    )  # fmt: skip
    _wait(lambda: (run_dir / "plan.json").exists(), "the master", 300, [run])
    workers = {}
    for key, ns in hosts.workers.items():
        private = tmp_path / f"worker-{key}"  # its own directory, not under the master's
        private.mkdir()
        workers[key] = hosts.spawn(
            ns, 0,
            [sys.executable, "-m", "loadgate", "worker", "--master", MASTER[key], "--master-port",
             str(MASTER_PORT)],
            private, {**env, "LOADGATE_WORKER_DIR": str(private / "files")}, private / "log",
        )  # fmt: skip
    names = {key: f"{os.uname().nodename}-{proc.pid}" for key, proc in workers.items()}

    # Kill b while it holds records it captured but the master has not written:
    # freeze it, let the master settle its view, and kill it if the loss is still there.
    b, killed = workers["b"], False
    for _ in range(20):
        _wait(lambda: _mid_run(run_dir, names["b"]), "worker b's records", 120, [run, b])
        b.send_signal(signal.SIGSTOP)
        # The master's next accounting write (every 2 s; in-flight batches are in by
        # then), well before it would miss b's heartbeats (3 s).
        accounting = run_dir / "locust" / "records.json"
        before = accounting.stat().st_mtime_ns
        _wait(lambda t=before, f=accounting: f.stat().st_mtime_ns != t, "an accounting write",
              10, [run])  # fmt: skip
        if _lost(run_dir, names["b"]) > 0:
            os.killpg(b.pid, signal.SIGKILL)
            killed = True
            break
        b.send_signal(signal.SIGCONT)
    assert killed
    code = run.wait(timeout=300)
    # Told to quit while the master still listens, the live worker ends with the run
    # (after Locust's `stop` it slept through the 60 s stop timeout instead).
    assert workers["a"].wait(timeout=20) == 0, (tmp_path / "worker-a" / "log").read_text()
    log = (master_dir / "run.log").read_text()
    assert (run_dir / "report" / "report.json").exists(), log[-3000:]
    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert code == Verdict(report["verdict"]).exit_code, log[-3000:]

    events = pd.read_parquet(run_dir / "events")
    per_worker = events.worker.value_counts().to_dict()
    (local,) = set(per_worker) - set(names.values())
    served = _served(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    accounts = manifest["record_channel"]["workers"]
    a, killed_b = accounts[names["a"]]["streams"]["events"], accounts[names["b"]]
    lost = {names["a"]: a["lost"], local: 0}  # the local worker writes its own files
    # Every request a live host recorded was served, once (a batch written twice would
    # exceed the service's count). The service may have answered more: what the worker
    # reports lost, and what was in flight when the load ended (Locust stops its users
    # mid-request: at most one request per user, served but never recorded).
    for host, worker in ((WORKER["a"], names["a"]), (MASTER["a"], local)):
        written = per_worker[worker]
        assert 0 < written <= served[host] <= written + lost[worker] + USERS, host
    assert not list((tmp_path / "worker-a").rglob("*.parquet"))  # nothing stayed there

    # The live worker lost nothing: told to stop before Locust's quit, it sent its last
    # batch and final tally, and all it captured was acknowledged and written once.
    written_a = per_worker[names["a"]]
    assert a == {"captured": written_a, "sent": written_a, "acked": written_a,
                 "written": written_a, "lost": 0}  # fmt: skip
    assert accounts[names["a"]]["finished"] and not killed_b["finished"]
    lost_b = killed_b["streams"]["events"]["lost"]
    written_b = killed_b["streams"]["events"]["written"]
    assert written_b == per_worker.get(names["b"], 0) >= 30 and lost_b > 0
    # What b lost was really sent to the service and is missing from the run directory.
    assert written_b + lost_b <= served[WORKER["b"]]

    print(f"\nserved per client {served}; records per worker {per_worker}")
    print(f"record_channel: {json.dumps(manifest['record_channel']['events'])}; killed b: "
          f"{json.dumps(killed_b['streams']['events'])}; a finished: "
          f"{accounts[names['a']]['finished']}, a: {json.dumps(a)}")  # fmt: skip
    # Still analysable: the report names the loss with its count.
    (delivery,) = [c for c in report["validity"] if c["check"] == "record_delivery"]
    assert delivery["observed"] == lost_b + a["lost"] and delivery["decides"] is False
