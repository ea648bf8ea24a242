"""``loadgate config check [FILE]``: the real CLI, as a user runs it.

A valid file prints every phase resolved (the numbers are ``resolve()``'s), a bad
one is one ``error:`` line naming the key, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runconfig.phase_config import DEFAULT_CONFIG, load_phases, resolve
from tests.cli_helpers import run_cli

WIDE = {"COLUMNS": "250"}  # the table's cells unwrapped, so rows can be read back


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> str:
    result = run_cli(["config", "check"], tmp_path_factory.mktemp("state"), **WIDE)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_shipped_config_is_valid_and_every_phase_has_a_row(shipped: str) -> None:
    config = load_phases()
    for number, phase in config.phases.items():
        assert f"{number} {phase.name}" in shipped
    assert f"{DEFAULT_CONFIG}: valid, {len(config.phases)} phase(s)" in " ".join(shipped.split())


def test_each_row_shows_the_resolved_numbers(shipped: str) -> None:
    """Users, profile, model, ramp, run length, think time and gate, per phase, as resolve()
    computes them (defaults applied)."""
    config = load_phases()
    for number in config.phases:
        phase = resolve(config, number)
        holds = [s for s in phase.stages if s.kind == "hold"]
        for text in (
            f"target {phase.target_users:,}",
            f"gate {phase.gate_users:,} users",
            f"fixtures {phase.fixture_size}",
            f"{phase.model} model",
            f"{len(holds)} steps",
            f"gate step hold {holds[-1].end_s - holds[-1].start_s:g} s",
            f"users {holds[0].users:,} to {holds[-1].users:,}",
            f"{phase.duration_s:g} s",
            "{:g}-{:g} s".format(*phase.think_time_s),
        ):
            assert text in shipped, (number, text)
    # Phase 1 in words: the seed's gate, the shipped ramp (6 x (10 s + 30 s), gate step 90 s).
    for text in (
        "6 steps: ramp 10 s, hold 30 s",
        "300 s (5m 00s)",
        "shopper 60%",
        "buyer 25%",
        "1-5 s",
        "P95 < 2000 ms",
        "POST /checkout: P95 < 2000 ms",
        "none (baseline)",
    ):
        assert text in shipped, text


def test_json_is_exactly_what_resolve_gives(tmp_path: Path) -> None:
    result = run_cli(["config", "check", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    config = load_phases()
    expected = [resolve(config, n).model_dump(mode="json") for n in sorted(config.phases)]
    assert json.loads(result.stdout) == expected


def test_another_file_is_checked(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text().replace("steps = 6", "steps = 3")
    path = tmp_path / "three.toml"
    path.write_text(text)
    result = run_cli(["config", "check", str(path)], tmp_path, **WIDE)
    assert result.returncode == 0, result.stderr
    assert "3 steps: ramp 10 s, hold 30 s" in result.stdout
    assert "6 steps" not in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        ("steps = 6", "steps = 6\nstepz = 2", ("defaults.ramp.stepz", "unknown key")),
        ('profile = "phase1"', 'profile = "phase7"', ("phases.1.profile", "phase7")),
        ("think_time_s = [1.0, 5.0]", "", ("defaults.think_time_s", "missing")),
        ("search_share = 0.3", "search_share = 0.9", ("defaults.traffic", "search_share")),
    ],
)
def test_a_bad_file_is_one_error_line_naming_the_key(
    tmp_path: Path, old: str, new: str, needles: tuple[str, ...]
) -> None:
    text = DEFAULT_CONFIG.read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    result = run_cli(["config", "check", str(path)], tmp_path)
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_missing_file_is_one_error_line(tmp_path: Path) -> None:
    result = run_cli(["config", "check", str(tmp_path / "nope.toml")], tmp_path)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert "nope.toml: no such file" in line
