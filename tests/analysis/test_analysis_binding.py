"""What binds, hardware or architecture (issue 20 item 5), and the plan's qualified verdicts.

Classification and wording on constructed headroom rows; the cores-needed arithmetic on a
synthetic run with known CPU demands (tests/synthetic.py drives the samples by the
utilisation law, so the expected cores follow from the truth); the plan's "assumes more
cores" and "unreliable" on a synthetic run whose measured gate FAILS.
"""

from __future__ import annotations

import dataclasses
from html import escape
from types import SimpleNamespace

import pytest

from analysis import analyze, load_run
from analysis import binding as bd
from analysis import demands as dm
from analysis import plan as cp
from analysis.crossings import HOST_CPU, Constraint
from analysis.headroom import Headroom, compute_headroom
from analysis.saturation import fit_usl
from analysis.step_stats import compute_step_stats
from analysis.steps import build_steps
from reports import html, json_report, markdown, plan_report
from tests.analysis.test_analysis_demands import SERVICE_CPU, SPEC
from tests.synthetic import write_run


def _row(name: str, load: float | None, basis: str = "measured", limit: str = "x") -> Constraint:
    ci = (load * 0.9, load * 1.1) if load is not None else None
    return Constraint(name, limit, basis, load, ci, None, False, "")


def _headroom(rows: list[Constraint], binding: Constraint | None) -> Headroom:
    return Headroom(rows, binding, 1000.0, "")


def _run(phase: int | None = 1, **manifest) -> SimpleNamespace:
    return SimpleNamespace(phase=phase, model="closed", manifest={"host": {"cpus": 2}, **manifest})


@pytest.fixture(scope="module")
def demand_run(tmp_path_factory):
    return load_run(write_run(tmp_path_factory.mktemp("runs") / "binding", SPEC))


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    """The same run with a P95 limit of 50 ms: its gate FAILS, measured at 100 users."""
    gate = {"users": 100, "target_users": 80, "criteria": {"p95_ms": 50, "error_rate": 0.01}}
    spec = dataclasses.replace(SPEC, gate=gate)
    return load_run(write_run(tmp_path_factory.mktemp("runs") / "failing", spec))


@pytest.fixture(scope="module")
def stats(demand_run):
    return compute_step_stats(demand_run, build_steps(demand_run))


# --------------------------------------------------------------------------- classes


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("CPU process:marketplace", bd.HARDWARE),
        ("memory service", bd.HARDWARE),
        (HOST_CPU, bd.HARDWARE),
        ("DB connections", bd.ARCHITECTURE),
        ("PgBouncer pool", bd.ARCHITECTURE),
        ("PgBouncer client waits", bd.ARCHITECTURE),
        ("Stripe rate limit", bd.ARCHITECTURE),
        ("lock waits on carts", bd.ARCHITECTURE),
        ("latency SLO", bd.OBJECTIVE),
        ("error budget", bd.OBJECTIVE),
        ("something new", bd.UNCLASSIFIED),
    ],
)
def test_each_constraint_has_a_class(name, kind):
    assert bd.classify(name) == kind


def test_architecture_names_the_next_phase_that_fixes_it():
    stripe = _row("Stripe rate limit", 900.0, "projected", "100 req/s")
    db = _row("DB connections", 400.0, limit="max_connections = 100")
    b = bd.assess(_run(phase=1), [], _headroom([stripe, db], db), 1500.0)
    assert b.kind == bd.ARCHITECTURE and b.constraint is db
    (line,) = b.lines
    assert "architecture" in line and "more cores do not fix it" in line
    assert "phase 2's architecture" in line and "§4.1" in line
    # the same cap on phase 0 is fixed by phase 1's PgBouncer
    b0 = bd.assess(_run(phase=0), [], _headroom([db], db), 1500.0)
    assert b0.fix == bd.Fix(1, "PgBouncer connection pooling", "§3.1")
    bs = bd.assess(_run(phase=1), [], _headroom([stripe], stripe), 1500.0)
    assert bs.fix.phase == 2 and "§4.4" in bs.lines[0] and "§1.1, §4.4" in bs.lines[0]
    # past the seed's last fix for it, nothing is promised
    b4 = bd.assess(_run(phase=4), [], _headroom([stripe], stripe), 1500.0)
    assert b4.fix is None and "No later phase" in b4.lines[0]


def test_objective_binding_names_the_first_resource_beside_it():
    slo = _row("latency SLO", 600.0)
    cpu = _row("CPU service", 900.0, "projected")
    pool = _row("PgBouncer pool", 1200.0, "projected")
    b = bd.assess(_run(), [], _headroom([slo, pool, cpu], slo), None)
    assert b.objective is slo and b.constraint is cpu and b.kind == bd.HARDWARE
    assert "an objective, not a resource" in b.lines[0]
    assert b.lines[1].startswith("Binds: CPU of service (hardware")
    assert "No gate load configured" in b.lines[1]


def test_objective_with_no_resource_says_neither():
    slo = _row("latency SLO", 600.0)
    b = bd.assess(_run(), [], _headroom([slo, _row("CPU service", None, "not reached")], slo), 1e3)
    assert b.constraint is None and b.kind is None
    assert "neither hardware nor architecture" in b.lines[0]


def test_host_cpu_is_a_headroom_row_that_never_binds(demand_run, stats):
    """Whole-host CPU above the planning line from the lowest step: shown, not binding."""
    steps = [dataclasses.replace(st, resources=dict(st.resources)) for st in stats]
    for st in steps:
        st.resources["host"] = {**st.resources.get("host", {}), "host_cpu_percent": 90.0}
    room = compute_headroom(demand_run, steps, fit_usl(steps, demand_run.model))
    host = next(c for c in room.constraints if c.name == HOST_CPU)
    assert host.basis == "measured" and host.load == min(st.load for st in steps)
    assert room.binding is not host and "never the binding constraint" in host.detail


# --------------------------------------------------------------------------- hardware sizing


def _expected_cores(demands: dm.Demands, users: float) -> float:
    """busy = background + N x per-user rate x Σ_r share_r D_r, over the 70 % line."""
    per_user = sum(lv.throughput * lv.step.duration_s for lv in demands.levels) / sum(
        lv.users * lv.step.duration_s for lv in demands.levels
    )
    share = demands.route_share
    per_request = sum(share[r] * d for r, d in SERVICE_CPU.items() if r != "background")
    return (SERVICE_CPU["background"] + users * per_user * per_request) / 0.70


def test_cores_needed_at_the_gate_load_from_measured_demands(demand_run, stats):
    demands = dm.estimate([demand_run])
    req = bd.cores_needed(demand_run, stats, "process:marketplace", 1500.0, demands)
    assert req.needed == pytest.approx(_expected_cores(demands, 1500.0), rel=0.05)
    assert req.needed_ci[0] <= req.needed <= req.needed_ci[1]
    assert req.had == 2 and "host" in req.had_from and req.planning_line == 0.70
    cpu = _row("CPU process:marketplace", 80.0, limit="70% planning line")
    b = bd.assess(demand_run, stats, _headroom([cpu], cpu), 1500.0, demands)
    assert b.requirement.needed == pytest.approx(req.needed)
    line = b.lines[0]
    assert "hardware: more cores fix it" in line and f"~{req.needed:.1f} cores" in line
    assert "1,500 users" in line and "this run had 2" in line and "projected" in line
    # the synthetic USL run slows its users down: the size is said to be a lower bound
    assert demands.per_user_trend < -0.10 and "a lower bound" in line


def test_sut_cpus_is_what_the_run_had_when_recorded(demand_run, stats):
    """CPU isolation records the system under test's CPUs: that count, not the host's."""
    run = SimpleNamespace(
        phase=1, model="closed", manifest={"host": {"cpus": 8}, "sut_cpus": [0, 1, 2]}
    )
    demands = dm.estimate([demand_run])
    req = bd.cores_needed(run, stats, "process:marketplace", 1500.0, demands)
    assert req.had == 3 and "sut_cpus" in req.had_from


def test_host_cpu_names_the_hardware_when_no_process_reached_its_line(demand_run, stats):
    """The machine past its planning line, no process past its own: the host is what binds
    (hardware), sized as the sum of the system under test's process demands."""
    demands = dm.estimate([demand_run])
    slo = _row("latency SLO", 600.0)
    host = _row(HOST_CPU, 50.0)
    room = _headroom([slo, _row("CPU process:marketplace", None, "not reached"), host], slo)
    b = bd.assess(demand_run, stats, room, 1500.0, demands)
    assert b.constraint is host and b.kind == bd.HARDWARE and b.objective is slo
    parts = [
        bd.cores_needed(demand_run, stats, src, 1500.0, demands)
        for src in ("process:marketplace", "process:postgres")
    ]
    assert b.requirement.needed == pytest.approx(sum(p.needed for p in parts))
    assert b.requirement.had == 2
    assert (
        "Binds: host CPU (hardware" in b.lines[1] and "shared with the load generator" in b.lines[1]
    )
    assert f"~{b.requirement.needed:.1f} cores" in b.lines[1]


def test_harness_process_is_not_a_constraint_of_the_system(demand_run, stats):
    steps = [dataclasses.replace(st, resources=dict(st.resources)) for st in stats]
    for st in steps:
        st.resources["process:harness"] = {"cpu_percent": 190.0, "rss_bytes": 1e9}
    room = compute_headroom(demand_run, steps, fit_usl(steps, demand_run.model))
    assert not [c for c in room.constraints if "harness" in c.name]


def test_no_demand_no_number(stats):
    cpu = _row("CPU redis", 50.0)
    b = bd.assess(_run(), stats, _headroom([cpu], cpu), 1500.0, demands=None)
    assert b.requirement is None and "not computed" in b.lines[0]


# --------------------------------------------------------------------------- the plan


def test_plan_ready_says_it_assumes_more_cores_when_the_measured_gate_failed(failing_run):
    plan = cp.plan([failing_run], phase=1)
    (m1,) = plan.milestones
    (g,) = plan.measured_gates
    assert g.verdict == "FAIL" and g.step is not None and g.cores["service_cores"] == 2
    assert m1.verdict == "ready"  # the projection's own word is kept (JSON "verdict")
    assert m1.headline == "ready (assumes more cores than measured)"
    (caveat,) = m1.caveats
    assert "FAIL" in caveat and "service cores" in caveat and "where the run had 2" in caveat
    rows = [p for p in m1.projections if p.resource.unit == "cores"]
    assert f"assumes {sum(p.required for p in rows):,.1f} cores" in caveat
    md = plan_report.render_markdown(plan)
    assert "M1 **ready (assumes more cores than measured)**" in md and caveat in md
    page = plan_report.render_html(plan, "no chart")
    assert "assumes more cores than measured" in page and "verdict v-PROJECTED-PASS" not in page
    data = plan_report.to_dict(plan)
    assert data["milestones"][0]["tags"] == ["assumes more cores than measured"]
    assert data["measured_gates"][0]["verdict"] == "FAIL"


def test_failed_gate_with_enough_cores_contradicts_the_projection(failing_run):
    plan = cp.plan([failing_run], phase=1)
    m1 = plan.milestones[0]
    m1.tags, m1.caveats = [], []
    many = dataclasses.replace(
        plan.measured_gates[0],
        cores=dict.fromkeys(plan.measured_gates[0].cores, 64.0),
        shared_cores=64.0,
    )
    cp.qualify(m1, [many], None)
    assert m1.tags == ["contradicted by the measured gate"]
    # every process fits its own count, but together they need more than the shared host
    shared = dataclasses.replace(many, shared_cores=1.0)
    m1.tags, m1.caveats = [], []
    cp.qualify(m1, [shared], None)
    assert m1.tags == ["assumes more cores than measured"] and "had 1 (" in m1.caveats[0]
    passed = dataclasses.replace(many, verdict="PASS", cores={"service_cores": 1.0})
    m1.tags, m1.caveats = [], []
    cp.qualify(m1, [passed], None)
    assert m1.tags == [] and m1.headline == m1.verdict


def _backtest(error: float) -> cp.Backtest:
    row = cp.BacktestRow("throughput", "req/s", 100 * (1 + error), 100.0, error)
    return cp.Backtest("r1", ["hold0"], "hold5", 1500.0, [row], None, None)


def test_backtest_error_above_20_percent_marks_the_plan_unreliable(demand_run, monkeypatch):
    assert cp.reliability([_backtest(0.19), _backtest(-0.05)]) is None
    text = cp.reliability([_backtest(0.19), _backtest(-0.63)])
    assert "63%" in text and "hold5" in text and "above 20%" in text
    monkeypatch.setattr(cp, "backtest", lambda run, util=0.7: _backtest(0.63))
    plan = cp.plan([demand_run])
    assert plan.unreliable is not None
    for m in plan.milestones:
        assert "unreliable: backtest error above 20%" in m.headline
    assert plan_report.to_dict(plan)["reliable"] is False
    assert plan_report.render_markdown(plan).count(plan.unreliable) == 1
    assert escape(plan.unreliable) in plan_report.render_html(plan, "no chart")


# --------------------------------------------------------------------------- run reports


def test_binds_line_in_markdown_html_and_json(failing_run):
    r = analyze(failing_run)
    assert r.binding is not None and r.binding.lines
    line = r.binding.lines[0]
    assert line in r.gate.notes()
    assert line in markdown.render(r)
    assert "| constraint | kind |" in markdown.render(r)
    page = html.render(r)
    assert "<th>kind</th>" in page and "Binds:" in page
    data = json_report.to_dict(r)
    assert data["headroom"]["binds"]["lines"] == r.binding.lines
    kinds = {c["name"]: c["kind"] for c in data["headroom"]["constraints"]}
    assert kinds["latency SLO"] == "objective" and kinds[HOST_CPU] == "hardware"
    assert kinds["Stripe rate limit"] == "architecture"


def test_sut_cores_from_the_isolation_the_run_recorded():
    """A cpuset run's stack had exactly its CPUs; with cgroup weights the stack may use
    what the generator leaves idle, so the host's count stays the ceiling."""
    from analysis.cores import sut_cores

    pinned = {"isolation": {"mechanism": "cpuset", "stack_cpus": [1], "generator_cpus": [0]}}
    weighted = {"isolation": {"mechanism": "weights", "stack_cpus": [1], "generator_cpus": [0]}}
    assert sut_cores(pinned) == 1.0
    assert sut_cores(weighted) is None
    assert sut_cores({}) is None
