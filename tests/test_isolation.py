"""CPU isolation's own logic: the split by core count, ``--generator-cpus`` parsing, the
choice of mechanism and its fallback, and bad input rejected before anything starts."""

from __future__ import annotations

import os

import pytest

from stack.isolation import (
    CpuSplit,
    IsolationError,
    IsolationPlan,
    default_generator_count,
    parse_cpu_list,
    plan_isolation,
    split_cpus,
)
from tests.cli_helpers import run_cli


@pytest.mark.parametrize(("n", "generator"), [(2, 1), (3, 1), (4, 2), (8, 4), (1, 1)])
def test_default_split_gives_the_generator_half_the_cores_and_at_least_one(n, generator):
    assert default_generator_count(n) == generator


def test_default_split_on_two_cores_is_one_plus_one():
    assert split_cpus([0, 1], None) == CpuSplit((0,), (1,))
    assert split_cpus([0, 1], "auto") == CpuSplit((0,), (1,))


def test_a_count_takes_the_lowest_cpus_and_leaves_the_rest_to_the_stack():
    assert split_cpus([0, 1, 2, 3], "3") == CpuSplit((0, 1, 2), (3,))
    assert split_cpus([2, 5, 7], 1) == CpuSplit((2,), (5, 7))


def test_a_cpu_list_is_the_kernels_syntax():
    assert parse_cpu_list("0-1,3") == [0, 1, 3]
    assert split_cpus([0, 1, 2, 3], "1-2") == CpuSplit((1, 2), (0, 3))
    assert split_cpus([0, 1, 2, 3], "3-3") == CpuSplit((3,), (0, 1, 2))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2", "give 1..1"),  # 2 CPUs: the stack must keep one
        ("0", "give 1..1"),
        ("0-1", "leave at least one"),
        ("0-4", "CPU 2 is not available"),
        ("one", "give a count"),
        ("3-1", "runs backwards"),
    ],
)
def test_impossible_generator_cpus_name_the_problem(text, words):
    with pytest.raises(IsolationError, match=words):
        split_cpus([0, 1], text)


def test_one_cpu_cannot_be_split():
    with pytest.raises(IsolationError, match="at least 2"):
        split_cpus([0], "1")


def _check(unavailable: dict[str, str]):
    return lambda mechanism, n: unavailable.get(mechanism)


def test_auto_takes_the_preferred_mechanism_when_it_works():
    plan = plan_isolation("auto", None, [0, 1], check=_check({}))
    assert plan.mechanism == "weights" and plan.note is None
    assert plan.record() == {
        "requested": "auto",
        "mechanism": "weights",
        "generator_cpus": [0],
        "stack_cpus": [1],
        "note": None,
    }


def test_auto_falls_back_to_the_other_mechanism_and_says_why():
    plan = plan_isolation("auto", None, [0, 1], check=_check({"weights": "no cgroup here"}))
    assert plan.mechanism == "cpuset"
    assert plan.note == "fell back to cpuset: no cgroup here"


def test_auto_with_neither_mechanism_runs_unisolated_and_says_so():
    plan = plan_isolation("auto", None, [0, 1], check=_check({"cpuset": "a", "weights": "b"}))
    assert plan.mechanism == "none" and plan.note == "no isolation available: b; a"


def test_auto_on_one_cpu_uses_weights_over_the_whole_cpu():
    plan = plan_isolation("auto", None, [0], check=_check({"cpuset": "one cpu"}))
    assert plan.mechanism == "weights" and plan.split == CpuSplit((0,), (0,))


def test_an_explicit_mechanism_that_cannot_work_is_an_error():
    with pytest.raises(IsolationError, match="--isolation weights: no cgroup"):
        plan_isolation("weights", None, [0, 1], check=_check({"weights": "no cgroup"}))


def test_none_opts_out_and_unknown_modes_are_rejected():
    plan = plan_isolation("none", None, [0, 1])
    assert plan == IsolationPlan("none", "none", CpuSplit((0, 1), (0, 1)), "isolation off")
    with pytest.raises(IsolationError, match="choose one of auto, cpuset, weights, none"):
        plan_isolation("pin", None, [0, 1])


def test_the_shipped_config_states_isolation_and_the_hold_cap():
    from runconfig.phase_config import load_phases, resolve

    config = load_phases()
    assert config.defaults.isolation == "auto"
    assert config.defaults.generator_cpus == "auto"
    assert resolve(config, 1).gate_hold_max_s == config.defaults.gate_hold_max_s > 0
    assert resolve(config, 1, gate_hold_max_s=30).gate_hold_max_s == 30
    assert resolve(config, 1, gate_hold_max_s=0).gate_hold_max_s == 0
    # Below the gate load, or without criteria, more of the same load decides nothing.
    assert resolve(config, 1, users=600).gate_hold_max_s == 0
    assert resolve(config, 0).gate_hold_max_s == 0
    assert resolve(config, 1, model="open").gate_hold_max_s > 0


def test_loadgate_run_rejects_more_generator_cpus_than_the_host_has(tmp_path):
    n = len(os.sched_getaffinity(0))
    out = tmp_path / "run"
    result = run_cli(
        [
            "run",
            "--phase",
            "1",
            "--provider",
            "local",
            "--generator-cpus",
            str(n + 3),
            "--out",
            str(out),
        ],
        tmp_path / "state",
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: --generator-cpus")
    assert "so the system under test keeps at least one" in result.stderr
    assert not out.exists()  # rejected before the run directory or the stack


def test_loadgate_run_rejects_an_unknown_isolation(tmp_path):
    result = run_cli(["run", "--phase", "1", "--isolation", "pinned"], tmp_path / "state")
    assert result.returncode == 2
    assert "error: --isolation 'pinned': choose one of" in result.stderr


@pytest.mark.parametrize(
    ("isolation", "first"),
    [
        (
            {"mechanism": "cpuset", "generator_cpus": [0], "stack_cpus": [1]},
            "System under test on 1 cores, generator on 1 (isolation: cpuset, CPUs 1 | 0)",
        ),
        (
            {"mechanism": "weights", "generator_cpus": [0], "stack_cpus": [1]},
            "System under test on 1 cores (up to 2 when the generator idles), generator on 1 "
            "first (isolation: cgroup weights)",
        ),
        (
            {"mechanism": "none", "generator_cpus": [0, 1], "stack_cpus": [0, 1], "note": "off"},
            "System under test and generator on the same 2 cores (shared, no isolation: off)",
        ),
    ],
)
def test_the_reports_first_lines_say_where_each_side_ran(isolation, first):
    from reports.fmt import placement_lines

    assert placement_lines({"isolation": isolation}) == [first]
    assert placement_lines({}) == []  # runs from before isolation, and --target runs
