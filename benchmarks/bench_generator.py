"""Load-generator efficiency: requests/s per worker core, and users per worker core.

Run: ``.venv/bin/python benchmarks/bench_generator.py [--duration 20] [--repeat 2]``

A load test is only as good as its generator: if a Locust worker runs out of
CPU, latencies it reports grow for reasons that are not the system under
test. This measures, on this machine and in one run, against one trivial
endpoint (``benchmarks/trivial_server.py``, pinned to its own core):

1. throughput per generator core of (a) a plain Locust ``FastHttpUser`` with
   no wait time, (b) the same user with loadgate's raw capture on
   (``scenarios.plugin`` with ``--loadgate-run-dir``: every request written
   to ``events/*.parquet``, whose row count is checked against Locust's own
   count), and (c) ``wrk -t1``; the goal is capture costing at most 15 % of
   plain Locust's throughput;
2. the largest closed-model user count of the buyer persona
   (``scenarios.personas.BuyerUser``, think time from ``config/phases.toml``)
   that one worker process sustains with its CPU at or below 80 %, capture
   on as in ``loadgate run``. User counts double until a step passes the
   limit, then bisect between the last step under it and the first over it.

Every Locust process is a single local process pinned to one core (the
generator core), so "per core" is what one Locust worker of ``loadgate run``
gets. Its CPU and request count are sampled together, twice a second, by a
probe inside the process (psutil), and each figure is taken over a
steady-state window, start-up and ramp excluded. Prints Markdown tables for
RESULTS.md. Every load loop is bounded by count and time, and all traffic
stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "benchmarks" / "trivial_server.py"
CAPTURE_GOAL = 0.15
CPU_LIMIT = 0.80
PROBE_INTERVAL_S = 0.5
SETTLE_S = 6.0
"""After the last user spawned: longer than one think time, so the users' phases spread."""

PROBE = f'''
import os, time
import gevent, psutil
from locust import events


@events.init.add_listener
def _bench_probe(environment, **_):
    """Time, process CPU seconds, requests, users and RSS, sampled at the same instant."""
    path = os.environ["BENCH_PROBE"]

    def loop():
        proc = psutil.Process()
        with open(path, "a") as out:
            while True:
                cpu = proc.cpu_times()
                runner = environment.runner
                users = runner.user_count if runner else 0
                requests = environment.stats.total.num_requests
                cpu_s = cpu.user + cpu.system
                rss = proc.memory_info().rss
                out.write(f"{{time.time():.6f}},{{cpu_s:.6f}},{{requests}},{{users}},{{rss}}\\n")
                out.flush()
                gevent.sleep({PROBE_INTERVAL_S})

    gevent.spawn(loop)


@events.quitting.add_listener
def _bench_final(environment, **_):
    """Locust's final _stats.csv lags up to one CSV interval: record the true final count."""
    with open(os.environ["BENCH_PROBE"], "a") as out:
        out.write(f"final,{{environment.stats.total.num_requests}},"
                  f"{{environment.stats.total.num_failures}}\\n")
'''
PLAIN_USER = """
from locust import FastHttpUser, constant, task


class PlainUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def hit(self):
        self.client.get("/")
"""
LOCUSTFILES = {
    "plain": PROBE + PLAIN_USER,
    "capture": "from scenarios import plugin  # noqa: F401\n" + PROBE + PLAIN_USER,
    "buyer": "from scenarios import plugin  # noqa: F401\n"
    "from scenarios.personas import BuyerUser  # noqa: F401\n" + PROBE,
}


@dataclass
class Cores:
    """The generator gets one core to itself; server and this script share another."""

    generator: int | None
    server: int | None

    @classmethod
    def pick(cls) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None)
        return cls(cpus[0], cpus[1])


def pinned(cpu: int | None) -> Callable[[], None]:
    """A ``preexec_fn`` pinning the child to ``cpu`` (no pinning on a 1-core machine)."""

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return pin


@dataclass
class Measurement:
    name: str
    rps: float
    cpu: float
    """Generator CPU in cores (1.0 = one core busy all the time)."""
    server_cpu: float
    requests: int = 0

    @property
    def per_core(self) -> float:
        return self.rps / self.cpu if self.cpu > 0 else 0.0


@dataclass
class Step:
    users: int
    rps: float
    cpu: float
    reached: bool
    failures: int
    rss_mb: float = 0.0
    """Worker memory at the end of the hold: what a pod's memory limit must cover."""

    @property
    def passed(self) -> bool:
        return self.reached and self.cpu <= CPU_LIMIT


class CpuSampler:
    """Samples one process's CPU seconds in a thread, to average over any window later.

    Used for the server: its utilisation shows whether it, not the
    generator, was the bottleneck.
    """

    def __init__(self, pid: int, interval_s: float = PROBE_INTERVAL_S) -> None:
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                cpu = self.proc.cpu_times()
            except psutil.Error:
                return
            self.samples.append((time.time(), cpu.user + cpu.system))
            self._stop.wait(self._interval)

    def utilisation(self, start: float, end: float) -> float:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class ProbeLine:
    t: float
    cpu_s: float
    requests: int
    users: int
    rss: int


def read_probe(path: Path) -> list[ProbeLine]:
    lines = []
    for raw in path.read_text().splitlines():
        parts = raw.split(",")
        if len(parts) == 5 and parts[0] != "final":
            t, cpu_s, requests, users, rss = parts
            lines.append(ProbeLine(float(t), float(cpu_s), int(requests), int(users), int(rss)))
    return lines


def window(lines: list[ProbeLine], start: float, end: float) -> tuple[ProbeLine, ProbeLine] | None:
    """First and last probe lines inside [start, end]; None when under 5 s apart."""
    inside = [line for line in lines if start <= line.t <= end]
    if len(inside) < 2 or inside[-1].t - inside[0].t < 5.0:
        return None
    return inside[0], inside[-1]


def rates(first: ProbeLine, last: ProbeLine) -> tuple[float, float]:
    """Requests/s and CPU cores over the window between two probe lines."""
    elapsed = last.t - first.t
    return (last.requests - first.requests) / elapsed, (last.cpu_s - first.cpu_s) / elapsed


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, cpu: int | None, log: Path) -> subprocess.Popen[str]:
    """The trivial server on its own core; returns once it listens (bounded)."""
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        preexec_fn=pinned(cpu),
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        stop_process(proc)
        raise RuntimeError(f"trivial server did not start: see {log}")
    return proc


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass
class LocustRun:
    """One headless, single-process Locust run of a generated locustfile."""

    kind: str
    users: int
    spawn_rate: float
    run_time_s: int
    host: str
    workdir: Path
    cpu: int | None
    extra: tuple[str, ...] = ()

    @property
    def probe(self) -> Path:
        return self.workdir / "probe.csv"

    @property
    def csv_prefix(self) -> Path:
        return self.workdir / "locust"

    def command(self) -> list[str]:
        locustfile = self.workdir / f"{self.kind}_locustfile.py"
        locustfile.write_text(LOCUSTFILES[self.kind])
        return [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            "--only-summary",
            "-u",
            str(self.users),
            "-r",
            str(self.spawn_rate),
            "-t",
            f"{self.run_time_s}s",
            "--host",
            self.host,
            "--csv",
            str(self.csv_prefix),
            "--loglevel",
            "WARNING",
            *self.extra,
        ]

    def run(self) -> tuple[float, float]:
        """Run to completion (bounded); returns the wall-clock start and end."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "BENCH_PROBE": str(self.probe), "PYTHONPATH": str(REPO)}
        log = (self.workdir / "locust.log").open("w")
        started = time.time()
        with log:
            proc = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=pinned(self.cpu),
                start_new_session=True,
            )
            try:
                proc.wait(timeout=self.run_time_s + 60)
            except subprocess.TimeoutExpired:
                print(f"  locust {self.kind} overran; stopping it", flush=True)
            stop_process(proc)
        return started, time.time()

    def final_counts(self) -> tuple[int, int]:
        """Requests and failures when Locust quit, as the probe recorded them.

        Not Locust's ``_stats.csv``: it is rewritten once per CSV interval and
        not at exit, so it misses the last second of requests.
        """
        for raw in reversed(self.probe.read_text().splitlines()):
            if raw.startswith("final,"):
                _, requests, failures = raw.split(",")
                return int(requests), int(failures)
        raise RuntimeError(f"locust {self.kind} did not quit cleanly: see {self.workdir}")


def events_written(run_dir: Path) -> int:
    """Rows in the capture's events/*.parquet files (footers only: cheap)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in (run_dir / "events").glob("*.parquet"))


def measure_locust(
    kind: str, args: argparse.Namespace, host: str, workdir: Path, cores: Cores, server: CpuSampler
) -> Measurement:
    """Plain or capture-on throughput over the run minus its first seconds."""
    extra: tuple[str, ...] = ()
    run_dir = workdir / "run"
    if kind == "capture":
        extra = ("--loadgate-run-dir", str(run_dir))
    run = LocustRun(
        kind, args.users, args.users, args.duration, host, workdir, cores.generator, extra
    )
    run.run()
    lines = read_probe(run.probe)
    span = window(lines, lines[0].t + args.warmup, lines[-1].t) if lines else None
    if span is None:
        raise RuntimeError(f"locust {kind}: too few probe samples, see {workdir}/locust.log")
    rps, cpu = rates(*span)
    total, _ = run.final_counts()
    if kind == "capture":
        written = events_written(run_dir)
        status = "equal" if written == total else "DIFFERENT"
        print(
            f"  capture check: {written:,} events in parquet, Locust counted {total:,} ({status})"
        )
        if written != total:
            raise RuntimeError("raw capture lost or duplicated requests")
    name = {"plain": "plain Locust FastHttpUser", "capture": "Locust + loadgate raw capture"}[kind]
    return Measurement(name, rps, cpu, server.utilisation(span[0].t, span[1].t), total)


def measure_wrk(
    args: argparse.Namespace, url: str, cores: Cores, server: CpuSampler
) -> Measurement:
    """wrk with one thread; its CPU from the kernel's accounting of the waited child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{args.users}", f"-d{args.duration}s", url],
        capture_output=True,
        text=True,
        timeout=args.duration + 30,
        preexec_fn=pinned(cores.generator),
        check=True,
    ).stdout
    ended = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if match is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return Measurement(
        f"wrk -t1 -c{args.users}",
        float(match.group(1)),
        cpu_s / (ended - started),
        server.utilisation(started + 1, ended - 1),
        int(total.group(1)) if total else 0,
    )


def median_of(runs: list[Measurement]) -> Measurement:
    """The run with the median per-core throughput (a real run, not a blend; upper if even)."""
    ordered = sorted(runs, key=lambda m: m.per_core)
    return ordered[len(ordered) // 2]


def throughput(
    args: argparse.Namespace, host: str, tmp: Path, cores: Cores, server: CpuSampler
) -> tuple[list[Measurement], list[float]]:
    """Plain, capture and wrk, interleaved per repeat so drift hits all three alike.

    Returns the median run of each generator and, per repeat, capture's
    per-core throughput over plain's: back-to-back pairs cancel the slow
    drift of a shared machine better than two independent medians.
    """
    results: dict[str, list[Measurement]] = {"plain": [], "capture": [], "wrk": []}
    for rep in range(args.repeat):
        for kind in ("plain", "capture"):
            m = measure_locust(kind, args, host, tmp / f"{kind}-{rep}", cores, server)
            results[kind].append(m)
            print(f"  {kind:8s} #{rep + 1}: {m.rps:9,.0f} req/s at {m.cpu:.2f} cores", flush=True)
        if shutil.which("wrk"):
            m = measure_wrk(args, host + "/", cores, server)
            results["wrk"].append(m)
            print(f"  wrk      #{rep + 1}: {m.rps:9,.0f} req/s at {m.cpu:.2f} cores", flush=True)
    pairs = zip(results["plain"], results["capture"], strict=True)
    ratios = [capture.per_core / plain.per_core for plain, capture in pairs]
    return [median_of(runs) for runs in results.values() if runs], ratios


def buyer_think_time() -> tuple[float, float]:
    """The think time ``loadgate run`` gives personas, from the phase config."""
    config = tomllib.loads((REPO / "config" / "phases.toml").read_text())
    low, high = config["defaults"]["think_time_s"]
    return float(low), float(high)


def write_credentials(path: Path, count: int) -> Path:
    """Consumer identities for the buyers; the stub server accepts any token."""
    from fixtures.credentials import write_credentials as write

    rows = [
        {"role": "consumer", "profile_id": i, "email": f"b{i}@bench.invalid", "token": f"t{i}"}
        for i in range(1, count + 1)
    ]
    return write(rows, path)


def buyer_step(
    users: int, args: argparse.Namespace, host: str, tmp: Path, cores: Cores, creds: Path
) -> Step:
    """Hold ``users`` buyers after a short ramp; CPU and req/s over the hold."""
    spawn_rate = max(100.0, users / args.ramp)
    ramp_budget = math.ceil(users / spawn_rate * 2) + 5
    workdir = tmp / f"buyer-{users}"
    extra = ("--loadgate-credentials", str(creds), "--loadgate-run-dir", str(workdir / "run"))
    run_time = ramp_budget + math.ceil(SETTLE_S) + args.hold
    run = LocustRun("buyer", users, spawn_rate, run_time, host, workdir, cores.generator, extra)
    run.run()
    lines = read_probe(run.probe)
    full = next((line.t for line in lines if line.users >= users), None)
    span = window(lines, full + SETTLE_S, full + SETTLE_S + args.hold) if full else None
    _, failures = run.final_counts()
    if span is None:
        return Step(users, 0.0, 1.0, False, failures)
    rps, cpu = rates(*span)
    return Step(users, rps, cpu, True, failures, span[1].rss / 2**20)


def doubling(start: int, limit: int) -> Iterator[int]:
    users = start
    while users <= limit:
        yield users
        users *= 2


def max_users(
    args: argparse.Namespace, host: str, tmp: Path, cores: Cores, deadline: float
) -> list[Step]:
    """Double the users until one step passes 80 % CPU, then bisect (bounded)."""
    creds = write_credentials(tmp / "credentials.csv", 2000)
    steps: list[Step] = []

    def run(users: int) -> Step:
        step = buyer_step(users, args, host, tmp, cores, creds)
        steps.append(step)
        mark = "ok" if step.passed else ("did not spawn" if not step.reached else "over")
        print(
            f"  {users:6d} buyers: {step.rps:7,.0f} req/s, CPU {step.cpu:5.0%} ({mark})",
            flush=True,
        )
        return step

    passed, failed = 0, 0
    for users in doubling(args.start_users, args.max_users):
        if time.monotonic() > deadline:
            print("  time budget spent; stopping the search")
            break
        if run(users).passed:
            passed = users
        else:
            failed = users
            break
    for _ in range(args.refine if failed and passed else 0):
        middle = round((passed + failed) / 2, -2)
        if middle in (passed, failed) or time.monotonic() > deadline:
            break
        if run(int(middle)).passed:
            passed = int(middle)
        else:
            failed = int(middle)
    return sorted(steps, key=lambda s: s.users)


def throughput_table(results: list[Measurement]) -> str:
    rows = [
        "| generator (1 process, pinned to 1 core) | req/s | generator CPU | "
        "req/s per core | server CPU |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in results:
        rows.append(
            f"| {m.name} | {m.rps:,.0f} | {m.cpu:.0%} | {m.per_core:,.0f} | {m.server_cpu:.0%} |"
        )
    return "\n".join(rows)


def capture_verdict(ratios: list[float]) -> str:
    """The goal, judged on the median of the back-to-back capture/plain ratios."""
    if not ratios:
        return ""
    ratio = statistics.median(ratios)
    verdict = "meets" if 1 - ratio <= CAPTURE_GOAL else "MISSES"
    each = ", ".join(f"{r:.2f}" for r in ratios)
    return (
        f"capture / plain per core = {ratio:.2f} (median of back-to-back pairs: {each}): "
        f"capture costs {1 - ratio:.0%} ({verdict} the goal of <= {CAPTURE_GOAL:.0%})"
    )


def steps_table(steps: list[Step], think: tuple[float, float]) -> str:
    rows = [
        f"| buyers (think {think[0]:g}-{think[1]:g} s) | req/s | worker CPU | worker RSS | "
        f"<= {CPU_LIMIT:.0%} |",
        "|---:|---:|---:|---:|:---:|",
    ]
    for s in steps:
        cpu = f"{s.cpu:.0%}" if s.reached else "did not finish spawning"
        rss = f"{s.rss_mb:,.0f} MB" if s.reached else ""
        ok = "yes" if s.passed else "no"
        rows.append(f"| {s.users:,} | {s.rps:,.0f} | {cpu} | {rss} | {ok} |")
    best = max((s.users for s in steps if s.passed), default=0)
    rows.append("")
    rows.append(f"largest buyer count one worker core sustains at <= {CPU_LIMIT:.0%} CPU: {best:,}")
    return "\n".join(rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="Seconds per throughput run.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds excluded per run.")
    parser.add_argument("--repeat", type=int, default=3, help="Throughput runs per generator.")
    parser.add_argument("--users", type=int, default=64, help="Users / wrk connections.")
    parser.add_argument("--start-users", type=int, default=200)
    parser.add_argument("--max-users", type=int, default=25600, help="Upper bound of the search.")
    parser.add_argument("--refine", type=int, default=2, help="Bisection steps after doubling.")
    parser.add_argument("--hold", type=int, default=20, help="Measured seconds per user step.")
    parser.add_argument("--ramp", type=float, default=5.0, help="Target seconds to spawn a step.")
    parser.add_argument("--budget-min", type=float, default=25.0, help="Overall time bound.")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-users", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the temp directory.")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    deadline = time.monotonic() + args.budget_min * 60
    cores = Cores.pick()
    if cores.server is not None:
        os.sched_setaffinity(0, {cores.server})  # this script stays off the generator's core
    tmp = Path(tempfile.mkdtemp(prefix="loadgate-bench-gen-"))
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    server = start_server(port, cores.server, tmp / "server.log")
    sampler = CpuSampler(server.pid)
    print(f"generator core {cores.generator}, server core {cores.server}, endpoint {host}/")
    try:
        results: list[Measurement] = []
        ratios: list[float] = []
        steps: list[Step] = []
        if not args.skip_throughput:
            print(f"\nthroughput, {args.duration} s per run, {args.users} users/connections:")
            results, ratios = throughput(args, host, tmp, cores, sampler)
        if not args.skip_users:
            print("\nclosed model, BuyerUser with raw capture on:")
            steps = max_users(args, host, tmp, cores, deadline)
    finally:
        sampler.stop()
        stop_process(server)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ncommand: .venv/bin/python benchmarks/bench_generator.py {' '.join(sys.argv[1:])}")
    if results:
        print(f"\nmedian of {args.repeat} runs per generator, {args.duration} s each\n")
        print(throughput_table(results))
        print(f"\n{capture_verdict(ratios)}")
    if steps:
        print()
        print(steps_table(steps, buyer_think_time()))


if __name__ == "__main__":
    main()
