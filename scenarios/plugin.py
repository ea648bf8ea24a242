"""loadgate's Locust plugin: options, raw capture and the user count, via event hooks.

Imported by ``locustfile.py``, so any Locust process (master, worker, or a
plain ``locust -f locustfile.py``) gets:

- ``--loadgate-run-dir DIR``: every request recorded raw into ``DIR/events``
  (workers and single-process runs; the master sends no requests);
- ``--loadgate-plan FILE``: the resolved phase (``plan.json``) whose persona
  mix and think times the users follow, and whose stages the shape in
  ``scenarios/loadgate_shape.py`` drives;
- the generator probe (``scenarios.generator_probe``): each worker's event-loop
  lag, CPU and GC pauses into ``DIR/samples``, so analysis can tell a distorted
  generator; and ``scenarios.heap``: the heap frozen after each spawn, so full
  garbage collections do not distort it;
- ``--loadgate-credentials FILE``: the identities written by the fixture loader
  (default: the loader's default path);
- ``--loadgate-ship-records`` (a worker on another machine): every record batch goes
  to the master over Locust's message channel instead of a local file, and the
  master writes it into its run directory (``scenarios.record_channel``).

The plugin hands the plan to the persona classes (weights, think times) at init;
without a plan (a plain ``locust -f locustfile.py``) they follow the config's
``[defaults]``. Users read the seed, identities and plan through
``scenarios.inputs`` and never import this module.

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

from runconfig.constants import DEFAULT_SEED
from runformat.rundir import TEST_START_FILE
from scenarios.blocking import in_native_thread
from scenarios.capture import RawCapture
from scenarios.generator_probe import GeneratorProbe
from scenarios.heap import freeze_after_spawning
from scenarios.inputs import config_defaults, plan_of
from scenarios.personas import PERSONA_USERS, PersonaUser
from scenarios.record_channel import RecordCollector, RecordShipper, default_workdir

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
    group.add_argument("--loadgate-seed", type=int, default=DEFAULT_SEED)
    group.add_argument(
        "--loadgate-ship-records",
        action="store_true",
        default=False,
        help="Worker: send raw records to the master instead of writing --loadgate-run-dir.",
    )


def apply_plan(environment: Environment) -> None:
    """Persona weights and think times from the phase config: the run's plan, else the
    config's ``[defaults]``."""
    plan = plan_of(environment)
    source = plan if plan is not None else config_defaults()
    PersonaUser.think_time_s = source.think_time_s
    for persona, cls in PERSONA_USERS.items():
        cls.weight = max(0, round(source.persona_mix.get(persona, 0) * 100))


def total_users(environment: Environment) -> int:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        return _state["total_users"]
    return runner.user_count if runner else 0


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    apply_plan(environment)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(USERS_MESSAGE, _on_users_message)
    if isinstance(runner, MasterRunner):
        gevent.spawn(_broadcast_users, environment)
    run_dir = getattr(options, "loadgate_run_dir", "") if options else ""
    if isinstance(runner, WorkerRunner) and getattr(options, "loadgate_ship_records", False):
        run_dir = _ship_records(environment, run_dir)
    if isinstance(runner, MasterRunner) and run_dir:
        _collect_records(environment, Path(run_dir))
    if isinstance(runner, WorkerRunner):
        # A remote worker learns the master's options (the plan path, the seed)
        # only with the test start: apply the plan again then.
        environment.events.test_start.add_listener(lambda **_: apply_plan(environment))
    if run_dir and not isinstance(runner, WorkerRunner):
        environment.events.test_start.add_listener(lambda **_: _write_test_start(Path(run_dir)))
    if not isinstance(runner, MasterRunner):  # the processes that send requests
        freeze_after_spawning(environment)
    if run_dir and not isinstance(runner, MasterRunner):
        worker_id = f"{os.uname().nodename}-{os.getpid()}"
        capture = RawCapture(Path(run_dir), worker_id, users=lambda: total_users(environment))
        environment.events.request.add_listener(capture.on_request)
        capture.start(spawn=gevent.spawn, offload=in_native_thread)
        _state["capture"] = capture
        probe = GeneratorProbe(Path(run_dir), worker_id)
        probe.start()
        _state["probe"] = probe
        shipper = _state.get("shipper")
        if shipper is not None:
            shipper.captured = lambda: {
                "events": capture.batches.rows_appended,
                "samples": probe.batches.rows_appended,
            }
            environment.events.test_stop.add_listener(lambda **_: _final_batches(shipper))


def _ship_records(environment: Environment, run_dir: str) -> str:
    """Install the channel sink; returns this worker's private working directory."""
    worker_id = f"{os.uname().nodename}-{os.getpid()}"
    shipper = RecordShipper(
        environment.runner, worker_id, Path(run_dir) if run_dir else default_workdir()
    )
    shipper.install()
    _state["shipper"] = shipper
    # Before apply_plan's listener: the master's paths become this worker's copies.
    environment.events.test_start.add_listener(
        lambda **_: shipper.localise(environment.parsed_options)
    )
    return str(shipper.workdir)


def _final_batches(shipper: RecordShipper) -> None:
    """Test stopped on this worker: flush every recorder now and say how much was sent."""
    for key in ("capture", "probe"):
        recorder = _state.get(key)
        if recorder is not None:
            recorder.batches.flush()
    shipper.tally(final=True)


def _collect_records(environment: Environment, run_dir: Path) -> None:
    """Master: write the shipping workers' batches, account, and wait for the last ones."""
    options = environment.parsed_options
    collector = RecordCollector(environment.runner, run_dir)
    collector.install(
        getattr(options, "loadgate_plan", ""), getattr(options, "loadgate_credentials", "")
    )
    _state["collector"] = collector

    def at_stop(**_: Any) -> None:
        collector.quit_shipping_workers()
        collector.wait_for_finals()
        collector.write_accounting()

    def keep_writing() -> None:
        while True:
            gevent.sleep(2.0)
            if collector.workers:
                collector.write_accounting()

    environment.events.test_stop.add_listener(at_stop)
    gevent.spawn(keep_writing)


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
    for key in ("capture", "probe", "shipper"):
        recorder = _state.get(key)
        if recorder is not None:
            recorder.close()
            _state[key] = None
    collector = _state.get("collector")
    if collector is not None and collector.workers:
        collector.write_accounting()
