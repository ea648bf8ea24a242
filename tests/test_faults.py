"""Fault specs (``KIND:TARGET@START[+DURATION]``) and the scheduler that injects them:
good specs parse to what they say, bad ones are one ``error:`` line naming the fix
before anything starts, and the scheduler records every fault as it happens."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from loadgate.faults import FaultLog, FaultScheduler, resolve_faults
from runconfig.faults import FaultSpecError, parse_fault
from runconfig.phase_config import DEFAULT_CONFIG, ConfigError, load_phases
from tests.cli_helpers import run_cli


@pytest.mark.parametrize(
    ("text", "kind", "target", "start", "duration", "settings"),
    [
        ("kill:redis@30s+20s", "kill", "redis", 30.0, 20.0, {}),
        ("kill:redis@30", "kill", "redis", 30.0, None, {}),
        ("pause:pgbouncer@1.5m+500ms", "pause", "pgbouncer", 90.0, 0.5, {}),
        ("restart:osrm@10s", "restart", "osrm", 10.0, None, {}),
        ("cut:osrm@40%+10%", "cut", "osrm", 40.0, 10.0, {}),
        ("kill:worker@45s", "kill", "worker", 45.0, None, {}),
        ("pause:stripe@5s+5s", "pause", "stripe", 5.0, 5.0, {}),
        ("kill:replica@20s+10s", "kill", "replica", 20.0, 10.0, {}),
        (
            "stripe-errors:0.5/503@40s+20s",
            "stripe-errors",
            "stripe",
            40.0,
            20.0,
            {"error_rate": 0.5, "error_status": 503.0},
        ),
        (
            "stripe-errors:1.0@40s+20s",
            "stripe-errors",
            "stripe",
            40.0,
            20.0,
            {"error_rate": 1.0, "error_status": 500.0},
        ),
        (
            "stripe-latency:2000-4000@1m+30s",
            "stripe-latency",
            "stripe",
            60.0,
            30.0,
            {"latency_min_ms": 2000.0, "latency_max_ms": 4000.0},
        ),
    ],
)
def test_good_specs_parse_to_what_they_say(text, kind, target, start, duration, settings):
    spec = parse_fault(text)
    assert (spec.kind, spec.target, spec.start, spec.duration) == (kind, target, start, duration)
    assert spec.settings == settings


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("redis", "write KIND:TARGET@START"),
        ("kil:redis@30s", "unknown kind 'kil'"),
        ("kill:mysql@30s", "unknown service 'mysql'"),
        ("kill:redis@soon", "is not a time"),
        ("kill:redis@30s+0s", "duration must be positive"),
        ("kill:redis@150%", "beyond 100%"),
        ("kill:stripe@30s", "keeps its payments in memory"),
        ("restart:stripe@30s", "keeps its payments in memory"),
        ("restart:redis@30s+5s", "restart is instantaneous"),
        ("cut:redis@30s+5s", "cut applies to osrm"),
        ("cut:osrm@30s", "needs a duration"),
        ("stripe-errors:2@30s+5s", "error rate must be in (0, 1]"),
        ("stripe-errors:0.5/200@30s+5s", "status 400-599"),
        ("stripe-errors:lots@30s+5s", "stripe-errors:RATE[/STATUS]"),
        ("stripe-latency:500-100@30s+5s", "MIN <= MAX"),
        ("kill:worker@30s+10s", "replaced by uvicorn"),
    ],
)
def test_bad_specs_name_the_problem(text, says):
    with pytest.raises(FaultSpecError, match="fault") as info:
        parse_fault(text)
    assert says in str(info.value)


def test_percent_times_follow_the_load_length():
    faults = resolve_faults([parse_fault("kill:redis@10%+5%")], load_s=200)
    assert (faults[0].start_s, faults[0].end_s) == (20.0, 30.0)
    faults = resolve_faults([parse_fault("kill:redis@10%+5%")], load_s=100)
    assert (faults[0].start_s, faults[0].end_s) == (10.0, 15.0)


def test_resolved_faults_must_fit_the_load_and_the_stack():
    with pytest.raises(FaultSpecError, match="the load lasts 60 s"):
        resolve_faults([parse_fault("kill:redis@50s+20s")], load_s=60)
    with pytest.raises(FaultSpecError, match="overlap on redis"):
        resolve_faults(
            [parse_fault("kill:redis@10s+20s"), parse_fault("pause:redis@20s+5s")], load_s=60
        )
    with pytest.raises(FaultSpecError, match="has no replica"):
        resolve_faults([parse_fault("kill:replica@10s+5s")], 60, {"redis", "postgres"})
    ok = resolve_faults(
        [parse_fault("stripe-errors:1@30s+5s"), parse_fault("kill:redis@10s+20s")],
        60,
        {"redis", "stripe", "marketplace"},
    )
    assert [f.target for f in ok] == ["redis", "stripe"] and [f.id for f in ok] == [1, 2]


def test_phase_config_declares_faults_and_rejects_bad_ones(tmp_path):
    shipped = load_phases(DEFAULT_CONFIG).phases[3].faults
    assert [f.kind for f in shipped] == ["kill", "cut", "stripe-errors"]
    bad = DEFAULT_CONFIG.read_text().replace('"kill:redis@12%+6%"', '"kill:redis@never"')
    path = tmp_path / "phases.toml"
    path.write_text(bad)
    with pytest.raises(ConfigError, match=r"phases\.3\.faults\.0: fault 'kill:redis@never'"):
        load_phases(path)


def test_a_bad_fault_on_the_command_line_is_one_error_line(tmp_path):
    result = run_cli(
        ["run", "--phase", "1", "--provider", "local", "--fault", "kill:redis@soon",
         "--out", str(tmp_path / "run")],
        tmp_path / "state",
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "kill:redis@soon" in lines[0] and "is not a time" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


def test_faults_and_target_do_not_mix(tmp_path):
    creds = tmp_path / "creds.csv"
    creds.write_text("role,token\n")
    result = run_cli(
        ["run", "--phase", "1", "--target", "http://127.0.0.1:9", "--credentials", str(creds),
         "--fault", "kill:redis@10s+5s"],
        tmp_path / "state",
    )  # fmt: skip
    assert result.returncode == 2 and "with --target" in result.stderr


class FakeControl:
    """Records what the scheduler asked for; ``fail`` makes one action raise."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail
        self.stripe = {"error_rate": 0.0, "error_status": 500}

    def _do(self, what: str) -> str:
        self.calls.append(what)
        if self.fail and what.startswith(self.fail):
            raise RuntimeError(f"{what} refused")
        return what

    def kill(self, name):
        return self._do(f"kill {name}")

    def start_again(self, name):
        return self._do(f"start {name}")

    def pause(self, name):
        return self._do(f"pause {name}")

    def resume(self, name):
        return self._do(f"resume {name}")

    def kill_worker(self):
        return self._do("kill worker")

    def pause_worker(self):
        return self._do("pause worker")

    def resume_worker(self):
        return self._do("resume worker")

    def stripe_config(self, changes):
        self._do(f"stripe {sorted(changes.items())}")
        before, self.stripe = dict(self.stripe), {**self.stripe, **changes}
        return before

    def answers(self, name):
        return True


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scheduler_injects_on_time_and_records_each_change(tmp_path):
    specs = [parse_fault("kill:redis@0.1s+0.2s"), parse_fault("stripe-errors:1.0@0.2s+0.2s")]
    faults = resolve_faults(specs, load_s=5)
    control = FakeControl()
    origin = time.time()
    scheduler = FaultScheduler(faults, control, FaultLog(tmp_path), lambda: origin)
    scheduler.start()
    time.sleep(1.0)
    scheduler.stop()
    assert control.calls[0] == "kill redis" and control.calls[-1].startswith("stripe")
    assert "start redis" in control.calls
    assert control.stripe["error_rate"] == 0.0  # restored
    lines = _records(tmp_path / "faults.jsonl")
    final = {r["id"]: r for r in lines}  # the last line of an id is its state
    assert set(final) == {1, 2}
    for record in final.values():
        assert record["status"] == "ended"
        assert record["start_us"] >= origin * 1e6
        assert record["start_us"] < record["end_us"] <= record["recovered_us"]
    redis = final[1]
    assert redis["target"] == "redis" and redis["planned_start_s"] == 0.1
    assert abs((redis["start_us"] / 1e6 - origin) - 0.1) < 0.3
    assert abs((redis["end_us"] - redis["start_us"]) / 1e6 - 0.2) < 0.3
    assert [r["status"] for r in lines if r["id"] == 1][:2] == ["active", "ended"]


def test_scheduler_waits_for_the_load_start_and_undoes_at_stop(tmp_path):
    faults = resolve_faults([parse_fault("pause:redis@0s")], load_s=5)
    control = FakeControl()
    started: list[float] = []
    scheduler = FaultScheduler(
        faults, control, FaultLog(tmp_path), lambda: started[0] if started else None
    )
    scheduler.start()
    time.sleep(0.3)
    assert control.calls == []  # the load has not started: nothing injected
    started.append(time.time())
    time.sleep(0.4)
    assert control.calls == ["pause redis"] and scheduler.expected("redis") == "pause:redis@0s"
    scheduler.stop()  # the run ends with redis paused: resumed, never left frozen
    assert control.calls == ["pause redis", "resume redis"]
    final = _records(tmp_path / "faults.jsonl")[-1]
    assert final["status"] == "ended" and "ended with the run" in final["detail"]


def test_a_failed_injection_is_recorded_and_the_run_goes_on(tmp_path):
    faults = resolve_faults([parse_fault("kill:redis@0s+0.1s")], load_s=5)
    control = FakeControl(fail="kill")
    scheduler = FaultScheduler(faults, control, FaultLog(tmp_path), time.time)
    scheduler.start()
    time.sleep(0.5)
    scheduler.stop()  # no exception
    final = _records(tmp_path / "faults.jsonl")[-1]
    assert final["status"] == "failed" and "kill redis refused" in final["detail"]
    assert "start redis" not in control.calls
    assert scheduler.expected("redis") is None


def test_faults_file_format_is_documented():
    doc = (Path(__file__).parent.parent / "docs" / "run-directory.md").read_text()
    for key in ("planned_start_s", "recovered_us", "incidents.jsonl", "verify.json"):
        assert key in doc, key
    faults_doc = (Path(__file__).parent.parent / "docs" / "faults.md").read_text()
    assert "# Fault injection" in faults_doc
    assert textwrap.dedent("kill:redis@30s+20s") in faults_doc
