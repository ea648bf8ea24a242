"""``loadgate run`` end to end on the real local stack: a complete run
directory whose raw events match the service's own request counter, shapes
that follow their stages, interrupted runs that stay analysable, and bad
input rejected before anything starts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from loadgate.phase_config import DEFAULT_CONFIG
from stack.ports import free_port
from tests.cli_helpers import loadgate_env, run_cli
from tests.leftovers import listening, processes_of

pytestmark = pytest.mark.integration
SHORT = ["--phase", "1", "--provider", "local", "--fixture-size", "tiny", "--workers", "2"]


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def hold_stages(run_dir: Path) -> list[dict]:
    return [s for s in manifest(run_dir)["config"]["stages"] if s["kind"] == "hold"]


def fast_config(directory: Path) -> Path:
    """The shipped phase config with short think times, so short holds see traffic."""
    text = DEFAULT_CONFIG.read_text().replace(
        "think_time_s = [1.0, 5.0]", "think_time_s = [0.2, 0.6]"
    )
    assert "[0.2, 0.6]" in text
    path = directory / "phases.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def closed_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    out = runs / "closed"
    result = run_cli(
        [
            "run",
            *SHORT,
            "--users",
            "12",
            "--duration",
            "36s",
            "--out",
            str(out),
            "--config",
            str(fast_config(runs)),
        ],
        tmp_path_factory.mktemp("state"),
        timeout=300,
    )
    # 3 = "not enough data to decide": a 12-user run never applies the gate load.
    assert result.returncode == 3, result.stderr[-3000:]
    return out


def test_run_directory_is_complete(closed_run):
    data = manifest(closed_run)
    assert data["status"] == "completed"
    assert data["phase"] == 1 and data["profile"] == "phase1" and data["model"] == "closed"
    assert data["provider"] == "local" and data["git_sha"]
    assert data["started_at"] < data["ended_at"]
    for sub in ("events", "samples", "logs", "locust"):
        assert any((closed_run / sub).iterdir()), sub
    assert (closed_run / "logs" / "marketplace.log").stat().st_size > 0
    assert (closed_run / "locust" / "locust_stats.csv").exists()
    assert data["load_started_at"] > data["started_at"]
    for report in ("report.html", "summary.md", "report.json", "junit.xml"):
        assert (closed_run / "report" / report).stat().st_size > 0


def test_event_count_matches_the_service_counter(closed_run):
    events = pd.read_parquet(closed_run / "events")
    samples = pd.read_parquet(closed_run / "samples")
    counter = samples[
        (samples.source == "service") & (samples.metric == "marketplace_http_requests_total")
    ]
    last = counter[counter.ts_us == counter.ts_us.max()]
    served = sum(
        v
        for v, lab in zip(last.value, last.labels, strict=True)
        if json.loads(lab)["route"] != "/health"
    )
    assert len(events) > 50
    assert abs(len(events) - served) <= 0.01 * served, (len(events), served)


def test_tokens_minted_for_the_run_are_accepted(closed_run):
    """The run's stack generated its own signing secret and the credentials used it."""
    events = pd.read_parquet(closed_run / "events")
    assert (events.status == 401).sum() == 0
    assert events.status.between(200, 299).sum() > 0.9 * len(events)


def test_closed_shape_follows_its_stages(closed_run):
    events = pd.read_parquet(closed_run / "events")
    start_us = pd.Timestamp(manifest(closed_run)["load_started_at"]).value // 1000
    for stage in hold_stages(closed_run):
        inside = events[
            (events.ts_us >= start_us + (stage["start_s"] + stage["warmup_s"]) * 1e6)
            & (events.ts_us < start_us + stage["end_s"] * 1e6)
        ]
        assert not inside.empty, stage
        assert inside.users.max() == stage["users"], stage


def test_open_model_follows_its_arrival_rate(tmp_path):
    out = tmp_path / "open"
    result = run_cli(
        [
            "run",
            *SHORT,
            "--model",
            "open",
            "--rate",
            "10",
            "--duration",
            "30s",
            "--no-report",
            "--out",
            str(out),
        ],
        tmp_path / "state",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    arrivals = pd.read_parquet(out / "arrivals")
    stages = manifest(out)["config"]["stages"]
    expected = 0.0
    previous = 0.0
    for stage in stages:
        length = stage["end_s"] - stage["start_s"]
        expected += length * (
            stage["rate"] if stage["kind"] == "hold" else (previous + stage["rate"]) / 2
        )
        previous = stage["rate"]
    # Poisson arrivals: sd = sqrt(expected) ~ 13 here; 25 % is beyond 3 sd.
    assert abs(arrivals.offered.sum() - expected) <= 0.25 * expected, (
        arrivals.offered.sum(),
        expected,
    )
    assert (arrivals.offered == arrivals.achieved + arrivals.dropped).all()
    events = pd.read_parquet(out / "events")
    assert (events.intended_latency_us >= events.latency_us).all()


def _start_run(out: Path, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadgate",
            "run",
            *SHORT,
            "--users",
            "8",
            "--duration",
            "120s",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=loadgate_env(state),
    )


def _wait_for_events(out: Path, proc: subprocess.Popen[str], count: int = 3) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if len(list((out / "events").glob("*.parquet"))) >= count:
            return
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.5)
    raise AssertionError("no events were flushed in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_run_stays_analysable(tmp_path, sig):
    out = tmp_path / "run"
    proc = _start_run(out, tmp_path / "state")
    _wait_for_events(out, proc)
    stack_id = manifest(out)["stack_id"]
    proc.send_signal(sig)
    proc.wait(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert manifest(out)["status"] == "interrupted"
    events = pd.read_parquet(out / "events")
    assert len(events) > 0 and events.latency_us.gt(0).all()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and processes_of(stack_id):
        time.sleep(0.2)
    assert processes_of(stack_id) == []
    # The next loadgate start reaps what a SIGKILL left (temp directories).
    assert run_cli(["stack", "down"], tmp_path / "state").returncode == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--phase", "9"], "unknown phase 9"),
        (["--phase", "1", "--users", "0"], "--users"),
        (["--phase", "1", "--rate", "5"], "--rate applies to the open model"),
        (["--phase", "1", "--model", "poisson"], "unknown model"),
        (["--phase", "1", "--duration", "soon"], "--duration"),
        (["--phase", "1", "--fixture-size", "huge"], "unknown size 'huge'"),
    ],
)
def test_bad_input_fails_before_anything_starts(tmp_path, args, needle):
    out = tmp_path / "never"
    result = run_cli(["run", *args, "--out", str(out)], tmp_path / "state", timeout=60)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert not out.exists()


def test_malformed_config_file_is_rejected(tmp_path):
    bad = tmp_path / "phases.toml"
    bad.write_text("[phases.1]\nname = 'x'\ntarget_users = 'many'\n")
    result = run_cli(
        ["run", "--phase", "1", "--config", str(bad), "--out", str(tmp_path / "o")],
        tmp_path / "state",
        timeout=60,
    )
    assert result.returncode == 2
    assert "phases.1" in result.stderr and "Traceback" not in result.stderr


def test_remote_worker_joins_the_run(tmp_path):
    """A worker started with ``loadgate worker`` (as on another machine) takes part."""
    port = free_port()
    out = tmp_path / "run"
    state = tmp_path / "state"
    run = subprocess.Popen(
        [sys.executable, "-m", "loadgate", "run", "--phase", "1", "--provider", "local",
         "--fixture-size", "tiny", "--workers", "1", "--remote-workers", "1",
         "--master-port", str(port), "--users", "6", "--duration", "20s", "--no-report",
         "--config", str(fast_config(tmp_path)), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=loadgate_env(state),
    )  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 180
        while not listening(port):
            assert run.poll() is None, run.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the master never listened"
            time.sleep(0.2)
        worker = subprocess.Popen(
            [sys.executable, "-m", "loadgate", "worker", "--master", "127.0.0.1",
             "--master-port", str(port), "--run-dir", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=loadgate_env(state),
        )  # fmt: skip
        assert run.wait(timeout=180) == 0, run.stderr.read()[-3000:]
        assert worker.wait(timeout=60) == 0
    finally:
        for proc in (run, worker):
            if proc is not None and proc.poll() is None:
                proc.kill()
    events = pd.read_parquet(out / "events")
    assert events.worker.nunique() == 2
    assert events.users.max() == 6
