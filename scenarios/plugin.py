"""loadgate's Locust plugin: options, raw capture and the user count, via event hooks.

Imported by ``locustfile.py``, so any Locust process (master, worker, or a
plain ``locust -f locustfile.py``) gets:

- ``--loadgate-run-dir DIR``: every request recorded raw into ``DIR/events``
  (workers and single-process runs; the master sends no requests);
- ``--loadgate-plan FILE``: the resolved phase (``plan.json``) whose persona
  mix and think times the users follow, and whose stages the shape in
  ``scenarios/loadgate_shape.py`` drives;
- the generator probe (``scenarios.generator_probe``): each worker's event-loop
  lag and CPU into ``DIR/samples``, so analysis can tell a distorted generator;
- ``--loadgate-credentials FILE``: the identities written by the fixture loader
  (default: the loader's default path).

In distributed mode each worker only knows its own users, yet every record
carries the run's *total* active users: the master broadcasts it once a
second (a custom message), the Locust way of sharing state with workers.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadgate.rundir import TEST_START_FILE
from scenarios.capture import RawCapture
from scenarios.credentials import CredentialPool
from scenarios.generator_probe import GeneratorProbe
from scenarios.personas import PERSONA_USERS, PersonaUser
from scenarios.plan import LoadPlan, load_plan

USERS_MESSAGE = "loadgate_users"
_state: dict[str, Any] = {"total_users": 0, "capture": None, "probe": None}


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("loadgate")
    group.add_argument("--loadgate-run-dir", default="", help="Record raw requests here.")
    group.add_argument("--loadgate-plan", default="", help="plan.json of a resolved phase.")
    group.add_argument(
        "--loadgate-credentials",
        default="",
        help="Credentials file written by 'loadgate fixtures load'.",
    )
    group.add_argument(
        "--loadgate-arrival-drivers",
        type=int,
        default=1,
        help="Open model: number of arrival drivers sharing the rate.",
    )
    group.add_argument("--loadgate-seed", type=int, default=42)


def plan_of(environment: Environment) -> LoadPlan | None:
    options = environment.parsed_options
    path = getattr(options, "loadgate_plan", "") if options else ""
    return load_plan(path) if path else None


def credentials_path(environment: Environment) -> str:
    """``--loadgate-credentials``, else ``$LOADGATE_CREDENTIALS``, else the loader's default."""
    options = environment.parsed_options
    path = getattr(options, "loadgate_credentials", "") if options else ""
    if not path:
        from fixtures.credentials import default_credentials_path

        path = os.environ.get("LOADGATE_CREDENTIALS") or str(default_credentials_path())
    return path


def credential_pool(environment: Environment) -> CredentialPool:
    return CredentialPool.from_file(
        credentials_path(environment), offset=process_index(environment)
    )


def process_index(environment: Environment) -> int:
    """This process's place in the run (the worker index; 0 when alone).

    Seeds and identity offsets derive from it, not from the pid, so two runs
    with the same seed and worker count make the same choices.
    """
    return max(0, int(getattr(environment.runner, "worker_index", 0) or 0))


def _apply_plan(plan: LoadPlan, seed: int) -> None:
    """Persona weights and think times from the phase config."""
    PersonaUser.think_time_s = plan.think_time_s
    PersonaUser.seed = seed
    for persona, cls in PERSONA_USERS.items():
        cls.weight = max(0, round(plan.persona_mix.get(persona, 0) * 100))


def _reapply_plan(environment: Environment) -> None:
    plan = plan_of(environment)
    if plan is not None:
        _apply_plan(plan, getattr(environment.parsed_options, "loadgate_seed", 42))


def total_users(environment: Environment) -> int:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return _state["total_users"]
    return runner.user_count if runner else 0


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    plan = plan_of(environment)
    if plan is not None:
        _apply_plan(plan, getattr(options, "loadgate_seed", 42))
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(USERS_MESSAGE, _on_users_message)
    if isinstance(runner, MasterRunner):
        gevent.spawn(_broadcast_users, environment)
    if isinstance(runner, WorkerRunner):
        # A remote worker learns the master's options (the plan path, the seed)
        # only with the test start: apply the plan again then.
        environment.events.test_start.add_listener(lambda **_: _reapply_plan(environment))
    run_dir = getattr(options, "loadgate_run_dir", "") if options else ""
    if run_dir and not isinstance(runner, WorkerRunner):
        environment.events.test_start.add_listener(lambda **_: _write_test_start(Path(run_dir)))
    if run_dir and not isinstance(runner, MasterRunner):
        worker_id = f"{os.uname().nodename}-{os.getpid()}"
        capture = RawCapture(Path(run_dir), worker_id, users=lambda: total_users(environment))
        environment.events.request.add_listener(capture.on_request)
        capture.start(spawn=gevent.spawn)
        _state["capture"] = capture
        probe = GeneratorProbe(Path(run_dir), worker_id)
        probe.start()
        _state["probe"] = probe


def _write_test_start(run_dir: Path) -> None:
    """When the load shape's t = 0 happened: stage offsets are relative to it."""
    path = run_dir / TEST_START_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC).isoformat()
    path.write_text(json.dumps({"load_started_at": started}))


def _on_users_message(environment: Environment, msg: Any, **_: Any) -> None:
    _state["total_users"] = int(msg.data)


def _broadcast_users(environment: Environment) -> None:
    runner = environment.runner
    while True:
        gevent.sleep(1.0)
        if runner is not None and runner.clients.ready + runner.clients.running:
            runner.send_message(USERS_MESSAGE, runner.user_count)


@events.quitting.add_listener
def on_quitting(environment: Environment, **_: Any) -> None:
    for key in ("capture", "probe"):
        recorder = _state.get(key)
        if recorder is not None:
            recorder.close()
            _state[key] = None
