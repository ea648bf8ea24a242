"""Holding the gate step until its criteria are decided: the decision loop against a fake
evaluator (our own logic), the control the Locust shape follows, and the manifest record."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgate.hold import DATA_LAG_S, GateHold
from runformat.manifest import read_manifest, update_manifest
from scenarios.gate_hold import HoldControl, holding, read_control, write_control
from scenarios.plan import LoadPlan

PLANNED_END = 100.0


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    stages = [
        {"name": "hold-1", "kind": "hold", "start_s": 0.0, "end_s": 40.0, "users": 5},
        {"name": "hold-2", "kind": "hold", "start_s": 40.0, "end_s": PLANNED_END, "users": 10},
    ]
    update_manifest(tmp_path, started_at="2026-12-06T16:00:00+00:00", config={"stages": stages})
    return tmp_path


class FakeEvaluator:
    """Answers the undecided criteria from a script, one answer per check."""

    def __init__(self, *answers: list[str] | Exception):
        self.answers = list(answers)
        self.gate_ends: list[float] = []

    def __call__(self, gate_end_s: float) -> list[str]:
        self.gate_ends.append(gate_end_s)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def drive(hold: GateHold, until_s: float, step_s: float = 1.0) -> None:
    t = 0.0
    while t <= until_s:
        hold.poll(t)
        t += step_s


def gate_end(run_dir: Path) -> float:
    return read_manifest(run_dir).config["stages"][-1]["end_s"]


def test_decided_at_the_planned_end_releases_at_once_and_keeps_the_plan(run_dir):
    fake = FakeEvaluator([])
    hold = GateHold(run_dir, PLANNED_END, 60, fake, background=False)
    drive(hold, PLANNED_END + 5)
    assert fake.gate_ends == [PLANNED_END]  # one check, of the planned gate step
    assert hold.outcome == "decided"
    assert read_control(run_dir) == HoldControl(PLANNED_END, "")
    record = hold.finish(PLANNED_END + 2)
    assert record["extended_s"] == 0 and record["outcome"] == "decided"
    assert gate_end(run_dir) == PLANNED_END
    assert read_manifest(run_dir).gate_hold == record


def test_undecided_holds_and_rechecks_until_decided(run_dir):
    fake = FakeEvaluator(["p95_ms: inconclusive"], ["p95_ms: inconclusive"], [])
    hold = GateHold(run_dir, PLANNED_END, 90, fake, recheck_s=20, background=False)
    drive(hold, PLANNED_END + 10)
    control = read_control(run_dir)
    assert control is not None and control.release_at_s is None  # the shape keeps the load
    assert "p95_ms: inconclusive" in control.reason
    assert hold.status(PLANNED_END + 10) == "gate held +10/90 s (undecided: p95_ms: inconclusive)"
    drive(hold, PLANNED_END + 60)
    assert fake.gate_ends == [PLANNED_END, PLANNED_END + 20, PLANNED_END + 40]
    assert hold.outcome == "decided" and hold.release_at_s == PLANNED_END + 40
    assert read_control(run_dir) == HoldControl(PLANNED_END + 40, hold.reason)
    record = hold.finish(PLANNED_END + 41)
    assert record["extended_s"] == 40
    assert record["reason"] == "undecided: p95_ms: inconclusive"
    assert [c["undecided"] for c in record["checks"]] == [
        ["p95_ms: inconclusive"],
        ["p95_ms: inconclusive"],
        [],
    ]
    assert gate_end(run_dir) == PLANNED_END + 40  # analysis sees the extended hold


def test_each_check_sees_the_gate_step_up_to_its_time(run_dir):
    seen = []

    def evaluate(end_s: float) -> list[str]:
        seen.append(gate_end(run_dir))
        return ["error_rate: insufficient data"]

    hold = GateHold(run_dir, PLANNED_END, 50, evaluate, recheck_s=15, background=False)
    drive(hold, PLANNED_END + 20)
    assert seen == [PLANNED_END, PLANNED_END + 15]


def test_the_cap_ends_the_hold_undecided(run_dir):
    fake = FakeEvaluator(*[["p95_ms: inconclusive"]] * 10)
    hold = GateHold(run_dir, PLANNED_END, 30, fake, recheck_s=20, background=False)
    drive(hold, PLANNED_END + 40)
    assert fake.gate_ends == [PLANNED_END, PLANNED_END + 20]  # no check at or past the cap
    assert hold.outcome == "cap reached"
    record = hold.finish(PLANNED_END + 31)
    assert record["outcome"] == "cap reached" and record["extended_s"] == 30
    assert gate_end(run_dir) == PLANNED_END + 30


def test_a_load_stopped_during_the_hold_ends_the_gate_step_there(run_dir):
    hold = GateHold(run_dir, PLANNED_END, 60, FakeEvaluator(["x: inconclusive"]), background=False)
    drive(hold, PLANNED_END + 5)
    record = hold.finish(PLANNED_END + 12.5)  # interrupted 12.5 s into the hold
    assert record["outcome"] == "stopped" and gate_end(run_dir) == PLANNED_END + 12.5


def test_a_failing_check_releases_rather_than_holding_blind(run_dir):
    hold = GateHold(run_dir, PLANNED_END, 60, FakeEvaluator(RuntimeError("boom")), background=False)
    drive(hold, PLANNED_END + DATA_LAG_S + 1)  # a check waits for its data to be on disk
    assert hold.outcome == "check failed" and hold.release_at_s == PLANNED_END
    assert "boom" in hold.reason
    assert read_control(run_dir).release_at_s == PLANNED_END


def test_no_cap_means_no_check_and_no_record(run_dir):
    fake = FakeEvaluator()
    hold = GateHold(run_dir, PLANNED_END, 0, fake, background=False)
    drive(hold, PLANNED_END + 30)
    assert fake.gate_ends == [] and hold.finish(PLANNED_END) is None
    assert read_manifest(run_dir).gate_hold is None


def test_a_check_on_a_thread_does_not_block_the_loop(run_dir):
    import threading

    release = threading.Event()

    def slow(end_s: float) -> list[str]:
        release.wait(10)
        return []

    hold = GateHold(run_dir, PLANNED_END, 60, slow)
    hold.poll(PLANNED_END)  # the gate step's last seconds are not on disk yet: no check
    assert hold._pending is None
    hold.poll(PLANNED_END + DATA_LAG_S)  # starts the check and returns
    assert hold.outcome is None and read_control(run_dir) is None  # the shape holds
    assert hold.status(PLANNED_END + 6) == "gate held +6/60 s (checking the gate step)"
    release.set()
    hold._pending.join(10)
    hold.poll(PLANNED_END + DATA_LAG_S + 2)
    assert hold.outcome == "decided" and read_control(run_dir).release_at_s == PLANNED_END


@pytest.mark.parametrize(
    ("t", "control", "held"),
    [
        (99.0, None, False),  # before the planned end: the plan itself decides
        (100.0, None, True),  # the first check still running
        (120.0, HoldControl(None, "p95"), True),
        (120.0, HoldControl(110.0), False),  # released
        (105.0, HoldControl(110.0), True),
        (130.0, None, False),  # the cap (30 s)
    ],
)
def test_the_shape_holds_only_past_the_plan_until_released_or_capped(t, control, held):
    assert holding(t, 100.0, 30.0, control) is held


def test_without_a_cap_the_shape_never_holds():
    assert holding(100.0, 100.0, 0.0, None) is False


def test_the_control_file_round_trips(tmp_path):
    assert read_control(tmp_path) is None
    write_control(tmp_path, HoldControl(None, "undecided: p95"))
    assert read_control(tmp_path) == HoldControl(None, "undecided: p95")


def test_the_plan_carries_the_hold_cap():
    from runconfig.phase_config import load_phases, resolve

    phase = resolve(load_phases(), 1, gate_hold_max_s=45)
    plan = LoadPlan.from_dict(phase.model_dump())
    assert plan.gate_hold_max_s == 45 and plan.gate_stage == plan.stages[-1]
    data = phase.model_dump()
    del data["gate_hold_max_s"]  # a plan.json written before the hold existed
    assert LoadPlan.from_dict(data).gate_hold_max_s == 0


def test_open_model_arrivals_go_on_while_held_and_stop_when_released(tmp_path):
    from runconfig.phase_config import load_phases, resolve
    from scenarios.arrivals import Arrivals

    config = load_phases()
    gate = config.phases[1].model_copy(update={"gate_users": 12})
    config = config.model_copy(update={"phases": {**config.phases, 1: gate}})
    phase = resolve(config, 1, duration_s=36, model="open", gate_hold_max_s=20)
    assert phase.gate_hold_max_s == 20
    plan = LoadPlan.from_dict(phase.model_dump())

    def last_offset() -> float:
        arrivals = Arrivals(plan, 42, 0, 1, None, None, run_dir=str(tmp_path))  # type: ignore[arg-type]
        return max(arrivals.offsets())

    assert last_offset() > plan.duration_s + 15  # no word yet: held up to the cap (20 s)
    write_control(tmp_path, HoldControl(plan.duration_s + 5, "decided"))
    assert plan.duration_s + 4 < last_offset() < plan.duration_s + 5
    write_control(tmp_path, HoldControl(plan.duration_s))
    assert last_offset() < plan.duration_s


def test_the_report_says_how_long_the_gate_step_was_held_and_why(run_dir):
    from reports.fmt import placement_lines

    fake = FakeEvaluator(["p95_ms: inconclusive"], [])
    hold = GateHold(run_dir, PLANNED_END, 90, fake, recheck_s=20, background=False)
    drive(hold, PLANNED_END + 25)
    record = hold.finish(PLANNED_END + 21)
    assert placement_lines({"gate_hold": record}) == [
        "Gate step held 20 s past its plan (cap 90 s, decided): undecided: p95_ms: inconclusive"
    ]
    assert placement_lines({"gate_hold": {**record, "extended_s": 0.0}}) == []


def test_a_gate_already_failed_is_not_held_for_its_other_criteria(tmp_path):
    """The real evaluator: an overloaded gate whose P95 FAILs is decided (FAIL) even while
    a criterion on a route nobody requests stays short of data; holding longer could not
    change the verdict. The same run without the failing criterion is held for it."""
    from loadgate.hold import undecided_criteria
    from tests.analysis.test_analysis_sustain import OVERLOAD  # the overloaded stack
    from tests.synthetic import SyntheticSpec, write_run

    nobody = {"DELETE /nobody": {"p95_ms": 2000}}

    def spec(criteria: dict) -> SyntheticSpec:
        gate = {"users": 100, "criteria": criteria, "routes": nobody}
        return SyntheticSpec(
            levels=(25, 50, 100), hold_s=90.0, ramp_s=10.0, warmup_s=5.0, sigma=0.0,
            kappa=0.0, seed=1, gate=gate, **OVERLOAD,
        )  # fmt: skip

    failed = write_run(tmp_path / "failed", spec({"p95_ms": 2000}))
    assert undecided_criteria(failed) == []
    # As a check sees it: the run still running, so not yet a valid (completed) run.
    running = spec({"p95_ms": 2000})
    running.status = "running"
    assert undecided_criteria(write_run(tmp_path / "running", running)) == []
    open_only = write_run(tmp_path / "open", spec({"error_rate": 0.01}))
    assert any("DELETE /nobody" in c for c in undecided_criteria(open_only))
