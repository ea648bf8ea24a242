"""``loadgate reproduce`` without a stack: the registry and its CLI, the single-flag
profile overrides, the phase config's ``[reproduce.*]`` tables, the breaking-point
finder, and verdicts on synthetic run directories (``tests.synthetic``, the one
run-format writer) -- including inconclusive when the machine saturated first."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from analysis.reproduce import registry
from analysis.reproduce.breaking import BreakingPoint, Judged, StepResult, breaking_point
from analysis.reproduce.outcome import Verdict
from loadgate.reproduce.cli import list_lines
from loadgate.reproduce.runner import ReproduceOptions, compare_sides, prepare, profile_overrides
from marketplace.profiles import (
    OVERRIDES_ENV,
    PHASE1,
    ProfileOverrideError,
    apply_overrides,
    get_profile,
    overrides_from_env,
)
from reports import reproduce as reproduce_report
from runconfig.phase_config import DEFAULT_CONFIG, ConfigError, load_phases
from runconfig.reproduce import ReproducePlan, derived_config
from tests.cli_helpers import run_cli
from tests.synthetic import SyntheticSpec, write_run

NAMES = ("db-connections", "rate-limit-writes", "indexes", "stripe-limits",
         "batch-generation", "caching")  # fmt: skip


# --- registry and CLI ---------------------------------------------------------------


def test_registry_has_the_issues_reproductions_each_one_change_apart():
    assert set(NAMES) <= set(registry.REPRODUCTIONS)
    for r in registry.REPRODUCTIONS.values():
        assert r.section.startswith("§") and r.claim and r.prediction and r.metrics
        assert r.before != r.after
        for side in (r.before, r.after):  # every override is a valid flag of its profile
            apply_overrides(get_profile(side.profile), side.overrides)


def test_list_prints_one_line_per_reproduction_with_its_seed_section(tmp_path):
    result = run_cli(["reproduce", "--list"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(registry.REPRODUCTIONS)
    for name in NAMES:
        (line,) = [x for x in lines if x.split()[0] == name]
        assert registry.REPRODUCTIONS[name].section in line
    assert lines == list_lines()


def test_unknown_name_is_one_error_line_listing_the_valid_names(tmp_path):
    result = run_cli(["reproduce", "db-conections", "--out", str(tmp_path / "x")], tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert all(name in errors[0] for name in NAMES)
    assert not (tmp_path / "x").exists()  # nothing started, nothing written


def test_used_output_directory_is_refused_before_anything_starts(tmp_path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli(["reproduce", "db-connections", "--quick", "--out", str(out)], tmp_path)
    assert result.returncode == 2 and "--out" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# --- profile overrides ----------------------------------------------------------------


def test_an_override_changes_one_flag_and_is_type_checked():
    p = apply_overrides(PHASE1, {"rate_limiter": "db_table", "skip_migrations": ["0002"]})
    assert p.rate_limiter == "db_table" and p.skip_migrations == ("0002",)
    assert p.name == "phase1" and p.db_route == PHASE1.db_route  # nothing else moved
    with pytest.raises(ProfileOverrideError, match="unknown flag 'rate_limit'"):
        apply_overrides(PHASE1, {"rate_limit": "db_table"})
    with pytest.raises(ProfileOverrideError, match="rate_limiter"):
        apply_overrides(PHASE1, {"rate_limiter": "memcached"})
    with pytest.raises(ProfileOverrideError, match="unknown flag 'name'"):
        apply_overrides(PHASE1, {"name": "phase9"})


def test_overrides_come_from_the_environment_and_reach_get_profile(monkeypatch):
    monkeypatch.setenv(OVERRIDES_ENV, '{"cache": true}')
    assert get_profile("phase1").cache is True
    monkeypatch.setenv(OVERRIDES_ENV, "{cache: true}")
    with pytest.raises(ProfileOverrideError, match="not valid JSON"):
        get_profile("phase1")
    monkeypatch.setenv(OVERRIDES_ENV, "[1]")
    with pytest.raises(ProfileOverrideError, match="JSON object"):
        overrides_from_env()
    monkeypatch.delenv(OVERRIDES_ENV)
    assert get_profile("phase1") is PHASE1


def test_each_side_sets_its_own_overrides_and_restores_the_environment(monkeypatch):
    monkeypatch.delenv(OVERRIDES_ENV, raising=False)
    repro = registry.get("rate-limit-writes")
    with profile_overrides(repro.before):
        assert get_profile("phase1").rate_limiter == "db_table"
    with profile_overrides(repro.after):
        assert get_profile("phase1").rate_limiter == "redis_sliding_window"
    assert overrides_from_env() == {}


# --- config ---------------------------------------------------------------------------


def test_every_reproduction_has_a_plan_that_fits_a_laptop():
    config = load_phases()
    for name in registry.REPRODUCTIONS:
        spec = config.reproduce[name]
        assert spec.phase in config.phases
        assert spec.load_seconds * 2 <= 8 * 60, name  # + stack and fixtures: <= 10 min
        assert spec.quick.load_seconds * 2 <= 2 * 60, name  # <= 3 min with start-up
        assert spec.quick.fixture_size == "tiny"


def test_a_bad_reproduce_table_is_rejected_with_its_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        DEFAULT_CONFIG.read_text().replace(
            "[reproduce.indexes]\n", "[reproduce.indexes]\nstep = 3\n", 1
        )
    )
    with pytest.raises(ConfigError, match=r"reproduce\.indexes\.step: unknown key"):
        load_phases(path)


def test_the_derived_config_carries_the_plan_and_nothing_else(tmp_path):
    plan = ReproducePlan(users=50, steps=3, step_ramp_s=2, step_hold_s=7, warmup_s=1)
    path = derived_config(DEFAULT_CONFIG, 1, plan, tmp_path / "phases.toml")
    config, base = load_phases(path), load_phases(DEFAULT_CONFIG)
    ramp = config.phases[1].ramp
    assert (ramp.steps, ramp.step_ramp_s, ramp.step_hold_s, ramp.warmup_s) == (3, 2, 7, 1)
    assert config.phases[1].gate == base.phases[1].gate and config.phases[0] == base.phases[0]
    with pytest.raises(ValueError, match="own ramp"):
        derived_config(path, 1, plan, tmp_path / "again.toml")


def test_prepare_checks_everything_before_a_stack_starts(tmp_path):
    config = tmp_path / "phases.toml"
    config.write_text(DEFAULT_CONFIG.read_text().split("[reproduce.indexes]")[0])
    options = ReproduceOptions("stripe-limits", tmp_path / "out", config_path=config)
    with pytest.raises(ConfigError, match=r"no \[reproduce.stripe-limits\] table"):
        prepare(options, registry.get("stripe-limits"))
    ok = ReproduceOptions("db-connections", tmp_path / "ok", quick=True)
    prepared = prepare(ok, registry.get("db-connections"))
    assert prepared.plan == load_phases().reproduce["db-connections"].quick
    assert load_phases(prepared.config_path).phases[1].ramp.steps == prepared.plan.steps


# --- the breaking-point finder ----------------------------------------------------------


def _step(load, *criteria, invalid=()) -> StepResult:
    judged = [Judged(d, s, v, None, x) for d, s, v, x in criteria]
    return StepResult(f"hold-{load}", load, 500, judged, list(invalid), 50.0, 100.0, 0.0)


P95_OK = ("P95 < 2000 ms", "pass", 300.0, 0.0)
DB_OK = ("DB connection errors <= 0", "pass", 0.0, 0.0)


def test_breaking_point_is_bracketed_by_the_last_step_its_binding_criterion_passed():
    steps = [
        _step(100, P95_OK, DB_OK),
        _step(200, ("P95 < 2000 ms", "insufficient data", 2500.0, 0.0), DB_OK),
        _step(300, ("P95 < 2000 ms", "fail", 4000.0, 2.0), ("DB connection errors <= 0",
              "fail", 12.0, math.inf)),
        _step(400, ("P95 < 2000 ms", "fail", 9000.0, 4.5), DB_OK),
    ]  # fmt: skip
    bp = breaking_point(steps)
    # DB errors (the binding criterion) passed at 100 and 200; P95 decided only at 100
    assert (bp.step, bp.load, bp.interval) == ("hold-300", 300, (200, 300))
    # the most exceeded criterion binds: any error over a zero limit beats a 2x P95
    assert bp.binding == "DB connection errors <= 0"
    assert bp.failed == ["DB connection errors <= 0", "P95 < 2000 ms"]
    assert bp.held_up_to == 100 and bp.saturated_at is None and bp.credible


def test_a_side_that_never_fails_holds_up_to_its_top_step():
    bp = breaking_point([_step(100, P95_OK), _step(200, P95_OK)])
    assert not bp.broke and bp.interval is None and bp.held_up_to == 200


def test_a_break_after_the_machine_saturated_is_not_credible():
    steps = [
        _step(100, P95_OK),
        _step(200, P95_OK, invalid=["generator_lag: P99 80 ms"]),
        _step(300, ("P95 < 2000 ms", "fail", 5000.0, 2.5)),
    ]
    bp = breaking_point(steps)
    assert bp.load == 300 and bp.saturated_at == 200 and not bp.credible


def test_a_failure_at_the_first_step_brackets_from_zero():
    bp = breaking_point([_step(50, ("errors < 1.00%", "fail", 0.3, 30.0))])
    assert bp.interval == (0.0, 50) and bp.held_up_to is None
    assert isinstance(bp, BreakingPoint)


# --- verdicts on synthetic runs ---------------------------------------------------------

GATE = {"users": 100, "target_users": 80,
        "criteria": {"p95_ms": 3000, "error_rate": 0.01, "db_connection_errors": 0}}  # fmt: skip


def _pair(tmp_path: Path, before: dict, after: dict) -> tuple[Path, Path]:
    levels = {"levels": (20, 40, 60), "hold_s": 40.0, "gate": GATE}
    b = write_run(tmp_path / "before", SyntheticSpec(seed=3, **levels, **before))
    a = write_run(tmp_path / "after", SyntheticSpec(seed=4, **levels, **after))
    return b, a


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory):
    """Connection errors on the before side only (the seed's claim, as data)."""
    b, a = _pair(tmp_path_factory.mktemp("confirmed"), {"db_connection_errors": 90}, {})
    return compare_sides(registry.get("db-connections"), b, a)


def test_connection_errors_only_before_confirm_the_claim(confirmed):
    before, after, outcome = confirmed
    assert outcome.verdict == Verdict.CONFIRMED, outcome.reason
    assert before.breaking.broke and before.breaking.binding.startswith("DB connection errors")
    assert before.breaking.interval == (0.0, 20.0)
    assert all(s.metrics["db_connection_errors"] == 0 for s in after.steps)


def test_connection_errors_on_both_sides_refute_the_fix(tmp_path):
    b, a = _pair(tmp_path, {"db_connection_errors": 90}, {"db_connection_errors": 90})
    _, _, outcome = compare_sides(registry.get("db-connections"), b, a)
    assert outcome.verdict == Verdict.REFUTED and "pooling did not remove" in outcome.reason


def test_a_machine_saturated_before_either_side_broke_is_inconclusive(tmp_path):
    """Generator lag far above its 10 ms bound at every step: validity says the numbers
    describe the generator, so even errors on the before side prove nothing."""
    lag = {"generator_lag_ms": 40.0}
    b, a = _pair(tmp_path, {"db_connection_errors": 90, **lag}, lag)
    before, _, outcome = compare_sides(registry.get("db-connections"), b, a)
    assert outcome.verdict == Verdict.INCONCLUSIVE
    assert "saturated" in outcome.reason and "generator_lag" in outcome.reason
    assert before.breaking.saturated_at == 20 and not before.breaking.credible


def test_the_report_holds_both_breaking_points_the_metric_pair_and_links(confirmed, tmp_path):
    before, after, outcome = confirmed
    repro = registry.get("db-connections")
    plan = load_phases().reproduce["db-connections"].quick
    doc = reproduce_report.document(repro, before, after, outcome, plan, 1, True, tmp_path)
    paths = reproduce_report.write(doc, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["verdict"] == "confirmed" and data["exit_code"] == 0 and data["reason"]
    bp = data["sides"]["before"]["breaking_point"]
    assert bp["broke"] and bp["interval"] == [0.0, 20.0]
    assert bp["binding_constraint"].startswith("DB connection errors")
    assert data["sides"]["after"]["breaking_point"]["broke"] is False
    pair = data["metric_pair"]["db_connection_errors"]
    assert pair["before"] > 0 and pair["after"] == 0
    assert pair["before_valid_steps"] == pair["before"]  # no step saturated here
    assert data["sides"]["before"]["run_dir"] == os.path.relpath(before.run_dir, tmp_path)
    html = paths["html"].read_text()
    assert html.index("CONFIRMED") < html.index("Seed predicts")  # verdict first
    link = os.path.relpath(before.run_dir / "report" / "report.html", tmp_path)
    assert f'href="{link}"' in html and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html  # no network fetches
    md = paths["md"].read_text()
    assert "**CONFIRMED**" in md.splitlines()[0] and repro.prediction in md
