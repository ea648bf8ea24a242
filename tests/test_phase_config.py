"""The phase config: the shipped file is valid, bad files and overrides are
rejected naming the key, and stages follow the ramp settings."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from runconfig.phase_config import (
    DEFAULT_CONFIG,
    ConfigError,
    Defaults,
    OpenModel,
    Ramp,
    Validity,
    load_phases,
    resolve,
    size_for_phase,
)
from runconfig.traffic import Traffic


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "phases.toml"
    path.write_text(text)
    return path


SHIPPED = DEFAULT_CONFIG.read_text()
DEFAULTS = SHIPPED[: SHIPPED.index("[phases.")]
"""The shipped ``[defaults]`` tables: every key is required, the file is their one source."""

MINIMAL = (
    DEFAULTS
    + """
[phases.1]
name = "Foundation"
target_users = 1000
gate_users = 1500
profile = "phase1"
fixture_size = "phase1"
gate = { p95_ms = 2000, error_rate = 0.01 }
"""
)


def test_shipped_config_matches_the_seed_gates():
    config = load_phases()
    assert {p: config.phases[p].gate_users for p in (1, 2, 3, 4)} == {
        1: 1500,
        2: 15000,
        3: 75000,
        4: 150000,
    }
    assert config.phases[1].gate.criteria["p95_ms"] == 2000
    assert config.phases[2].gate.criteria["cache_hit_rate"] == 0.80
    assert config.phases[3].gate.criteria["p95_ms"] == 1000
    # The payment path is gated on its own; phase 3 bounds deferred payments.
    for phase in (1, 2, 3, 4):
        checkout = config.phases[phase].gate.routes["POST /checkout"]
        assert {"p95_ms", "error_rate"} <= set(checkout)
    assert config.phases[3].gate.routes["POST /checkout"]["payment_pending_rate"] == 0.01


def test_stages_step_up_to_the_gate_load_and_hold():
    resolved = resolve(load_phases(), 1)
    holds = [s for s in resolved.stages if s.kind == "hold"]
    assert len(holds) == 6
    assert [h.users for h in holds] == [250, 500, 750, 1000, 1250, 1500]
    assert all(b.start_s == a.end_s for a, b in itertools.pairwise(resolved.stages))
    assert resolved.gate["users"] == 1500 and resolved.gate["criteria"]["p95_ms"] == 2000
    assert resolved.gate["rate"] is None  # closed model: the gate load is users
    assert resolved.validity["generator_lag_p99_ms"] == 10


def test_resolved_gate_is_the_manifest_shape():
    """What ``loadgate run`` records is exactly what analysis reads back."""
    from runformat.gate import GateSpec

    resolved = resolve(load_phases(), 3)
    assert GateSpec.from_dict(resolved.gate).to_dict() == resolved.gate


def test_open_model_gate_is_an_arrival_rate(tmp_path):
    text = MINIMAL.replace("gate_users = 1500", "gate_users = 1500\ngate_rate = 120")
    resolved = resolve(load_phases(write(tmp_path, text)), 1, model="open")
    assert resolved.gate["rate"] == 120
    default = resolve(load_phases(), 1, model="open")  # gate users x rate_per_user
    assert default.gate["rate"] == pytest.approx(1500 * 0.33)


def test_overrides_rescale_users_duration_and_open_rate():
    resolved = resolve(load_phases(), 1, users=12, duration_s=60, model="open", rate=30)
    assert resolved.peak_users == 12
    assert resolved.duration_s == pytest.approx(60)
    assert resolved.stages[-1].rate == pytest.approx(30)
    assert resolved.model == "open"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (MINIMAL.replace('profile = "phase1"', 'profile = "phase9"'), "phases.1.profile"),
        (MINIMAL.replace("gate_users = 1500", "gate_users = -5"), "phases.1.gate_users"),
        (
            MINIMAL.replace("persona_mix = {", "persona_mix = { hacker = 1,"),
            "unknown persona 'hacker'",
        ),
        (MINIMAL.replace("p95_ms = 2000", "p95_msec = 2000"), "unknown criterion 'p95_msec'"),
        (MINIMAL.replace("error_rate = 0.01", "error_rate = 1.5"), "error_rate is a fraction"),
        (
            MINIMAL.replace("error_rate = 0.01", 'routes = { "checkout" = { p95_ms = 1 } }'),
            "name a route as 'METHOD /template'",
        ),
        (
            MINIMAL.replace(
                "error_rate = 0.01", 'routes = { "GET /x" = { db_connection_errors = 0 } }'
            ),
            "not a per-route criterion",
        ),
        (
            MINIMAL.replace("generator_lag_p99_ms = 10", "generator_lag_p99_ms = -1"),
            "defaults.validity.generator_lag_p99_ms",
        ),
        (
            MINIMAL.replace('fixture_size = "phase1"', 'fixture_size = "huge"'),
            "phases.1.fixture_size: unknown size 'huge'",
        ),
        (MINIMAL.replace("think_time_s = [1.0, 5.0]", ""), "defaults.think_time_s: missing"),
        (MINIMAL.replace("steps = 6", ""), "defaults.ramp.steps: missing"),
        (
            MINIMAL.replace("step_hold_s = 30", "step_hold = 30"),
            "defaults.ramp.step_hold: unknown key: did you mean 'step_hold_s'?",
        ),
        (MINIMAL.replace("zipf_exponent = 1.0", ""), "defaults.traffic.zipf_exponent: missing"),
        (MINIMAL.replace("[defaults.open]", "[defaults.open]\nrate = 1"), "defaults.open.rate"),
        ("[phases.1\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load_phases(write(tmp_path, text))
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"users": 0}, "--users"),
        ({"duration_s": -1}, "--duration"),
        ({"rate": 10}, "--rate applies to the open model"),
        ({"profile": "phase7"}, "unknown profile 'phase7'"),
        ({"model": "poisson"}, "unknown model 'poisson'"),
    ],
)
def test_bad_overrides_are_rejected(overrides, needle):
    with pytest.raises(ConfigError) as info:
        resolve(load_phases(), 1, **overrides)
    assert needle in str(info.value)


def test_unknown_phase():
    with pytest.raises(ConfigError, match="unknown phase 9: choose one of 0, 1, 2, 3, 4"):
        resolve(load_phases(), 9)


def test_the_gate_step_holds_longer_and_scales_with_duration() -> None:
    """The last level is the gate step: it holds final_hold_s (its intervals need
    several batches of the latencies' memory), and --duration scales it with the rest."""
    from runconfig.phase_config import load_phases, resolve

    config = load_phases()
    ramp = config.defaults.ramp
    assert ramp.final_hold_s and ramp.final_hold_s > ramp.step_hold_s
    stages = resolve(config, 1).stages
    holds = [s.end_s - s.start_s for s in stages if s.kind == "hold"]
    assert holds[-1] == ramp.final_hold_s and set(holds[:-1]) == {ramp.step_hold_s}
    short = resolve(config, 1, duration_s=120).stages
    assert short[-1].end_s == pytest.approx(120)
    short_holds = [s.end_s - s.start_s for s in short if s.kind == "hold"]
    assert short_holds[-1] / short_holds[0] == pytest.approx(ramp.final_hold_s / ramp.step_hold_s)


def test_fixture_sizes_per_phase_come_from_the_config(tmp_path):
    """``fixtures load --phase N`` reads the phase's ``fixture_size``: no map of its own."""
    config = load_phases()
    assert [size_for_phase(p).name for p in sorted(config.phases)] == [
        config.phases[p].fixture_size for p in sorted(config.phases)
    ]
    other = write(tmp_path, MINIMAL.replace('fixture_size = "phase1"', 'fixture_size = "tiny"'))
    assert size_for_phase(1, other).name == "tiny"
    with pytest.raises(ConfigError, match="unknown phase 7"):
        size_for_phase(7)


@pytest.mark.parametrize("model", [Defaults, Ramp, OpenModel, Validity, Traffic])
def test_defaults_have_no_values_in_code(model):
    """The config's [defaults] are the one source: the models only check them."""
    optional = {"final_hold_s"}  # absent = the gate step holds as long as the others
    assert [n for n, f in model.model_fields.items() if not f.is_required()] == [
        n for n in model.model_fields if n in optional
    ]


def test_one_list_of_profile_and_provider_names():
    from loadgate import stack_cli
    from marketplace.profiles import PROFILES as SERVICE_PROFILES
    from runconfig import constants
    from runconfig.constants import PROFILES, PROVIDERS
    from stack import config

    assert tuple(SERVICE_PROFILES) == PROFILES
    assert stack_cli.PROFILES is PROFILES and stack_cli.PROVIDERS is PROVIDERS
    assert config.ProviderName is constants.ProviderName
    for name in PROFILES:
        assert resolve(load_phases(), 1, profile=name).profile == name
