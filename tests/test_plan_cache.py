"""plan.json is read once per Locust process, whoever asks for it first.

The plugin's ``plan_of`` (used by the plugin itself, the load shape, the open
model and the traffic context) is checked in a subprocess: importing Locust
monkey-patches the interpreter, which the test process must not be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from loadgate.locust_cluster import REPO_ROOT
from runconfig.phase_config import load_phases, resolve
from scenarios.plan import LoadPlan, load_plan


def _write_plan(path: Path) -> dict:
    phase = resolve(load_phases(), 1, users=100, duration_s=60)
    data = phase.model_dump()
    path.write_text(json.dumps(data))
    return data


def test_plan_json_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    data = _write_plan(path)
    first = load_plan(path)
    assert first == LoadPlan.from_dict(data)
    path.unlink()  # a second read would now fail
    assert load_plan(path) is first
    assert load_plan(str(path)) is first  # the same file however it is named
    assert load_plan(tmp_path / "." / "plan.json") is first


def test_every_plan_of_caller_shares_one_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _write_plan(path)
    script = f"""
from gevent import monkey
monkey.patch_all()  # as in every Locust process
from pathlib import Path
from types import SimpleNamespace
from scenarios.plugin import plan_of
env = SimpleNamespace(parsed_options=SimpleNamespace(loadgate_plan={str(path)!r}))
first = plan_of(env)
Path({str(path)!r}).unlink()  # a second read would now fail
assert first is not None and plan_of(env) is first
assert plan_of(SimpleNamespace(parsed_options=SimpleNamespace(loadgate_plan=""))) is None
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_other_paths_are_other_plans(tmp_path: Path) -> None:
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _write_plan(one)
    _write_plan(two)
    assert load_plan(one) is not load_plan(two)
    assert load_plan(one) == load_plan(two)
