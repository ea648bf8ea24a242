"""``loadgate run``: one phase, from an empty machine to a complete run directory.

The pipeline: resolve the phase config (rejecting bad input before anything
starts) → create the run directory and its manifest → bring the stack up with
the phase's profile → load fixtures sized for the phase → start the samplers
→ run Locust (master + local workers) along the phase's stages, with a live
view → stop everything → finish the manifest → analyse and report.

Whatever happens (a failure, Ctrl-C, SIGTERM), the ``finally`` path stops
Locust, flushes the samplers, copies the service logs and takes the stack
down; raw data already flushed stays, and the manifest says how the run
ended, so an interrupted run can still be analysed.

:func:`execute` is the pipeline; each stage is a module of its own:

- ``options``: :class:`RunOptions`, :class:`RunResult`, and every check of the input.
- ``bring_up``: isolation, the stack, its logs, fixtures, stock baseline, samplers.
- ``guards``: the incident watcher and the fault scheduler during the load.
- ``locust_phase``: the live view until Locust finishes, the gate hold, early stops.
- ``finish``: the teardown and the manifest's last word, on every path.
"""

from __future__ import annotations

import dataclasses
import json
import os

from rich.console import Console

from loadgate.locust_cluster import LocustCluster
from loadgate.queue_drain import wait_for_queue
from loadgate.run.bring_up import (
    bring_up,
    isolate,
    load_fixtures,
    record_stock_baseline,
    run_samplers,
    stream_logs,
)
from loadgate.run.finish import finish
from loadgate.run.guards import Guards, watch
from loadgate.run.locust_phase import drive
from loadgate.run.options import (
    Progress,
    RunOptions,
    RunResult,
    plan_faults,
    plan_isolation,
    prepare,
)
from loadgate.samplers.loop import SamplerLoop
from loadgate.samplers.processes import ProcessSampler
from marketplace.profiles import ProfileOverrideError, overrides_from_env
from runconfig.phase_config import ConfigError, ResolvedPhase
from runformat import rundir
from stack import isolation
from stack.stack import Stack


def execute(options: RunOptions, console: Console, progress: Progress) -> RunResult:
    """Run one phase into a new run directory; whatever happens, :func:`finish` ends it."""
    phase = prepare(options)
    faults = plan_faults(options, phase)
    try:
        overrides = overrides_from_env()
    except ProfileOverrideError as exc:
        raise ConfigError(str(exc)) from None
    placement = plan_isolation(options)
    run_dir = rundir.create(options.out or rundir.default_run_dir(options.phase))
    plan_path = run_dir / "plan.json"
    plan_path.write_text(json.dumps(phase.model_dump(), indent=2))
    rundir.write_manifest(
        run_dir,
        run_id=run_dir.name,
        phase=phase.phase,
        profile=phase.profile,
        model=phase.model,
        config=_manifest_config(phase),
        seed=options.seed,
        started_at=rundir.now_iso(),
        status="running",
        target=options.target,
        workers=options.workers,
        faults_planned=[dataclasses.asdict(f) for f in faults],
        isolation=placement.record() if placement else None,
    )
    if overrides:  # e.g. the test-only racy_cart_delete: a run says it was not the profile
        rundir.write_manifest(run_dir, profile_overrides=overrides)
    progress(f"run directory {run_dir}")
    result = RunResult(run_dir=run_dir, status="failed")
    stack: Stack | None = None
    samplers: SamplerLoop | None = None
    cluster: LocustCluster | None = None
    guards = Guards()
    isolated: isolation.Isolation | None = None
    try:
        if placement is not None:
            isolated = isolate(placement, run_dir, progress)
        if options.target:
            host, credentials = options.target, options.credentials
        else:
            stack = bring_up(options, phase, run_dir, progress, isolated)
            result.ready_after_s = stack.ready_after_s
            guards.streamer = stream_logs(stack, run_dir)
            credentials = load_fixtures(options, phase, stack, run_dir, progress)
            record_stock_baseline(stack, run_dir)
            host = stack.url("marketplace")
        assert credentials is not None
        cluster = LocustCluster(
            run_dir,
            host,
            plan_path,
            credentials,
            options.workers,
            options.web,
            options.seed,
            master_bind=options.master_bind,
            master_port=options.master_port,
            remote_workers=options.remote_workers,
            place=isolated.generator.enter if isolated else None,
        )
        # Samplers first: counters need a sample from before the load starts.
        samplers = SamplerLoop(run_dir, run_samplers(stack))
        samplers.start()
        cluster.start()
        if stack is not None:
            watch(guards, stack, run_dir, faults)
        samplers.samplers.extend(ProcessSampler(n, pid) for n, pid in cluster.pids.items())
        # The harness's own share of the box (samplers, capture, live view): on a machine
        # it shares with the stack, its CPU is CPU the service did not get.
        samplers.samplers.append(ProcessSampler("harness", os.getpid(), children=False))
        if options.remote_workers:
            console.print(
                f"waiting for {options.remote_workers} remote worker(s): on each machine run "
                f"'loadgate worker --master {options.master_bind} --master-port {cluster.port}'"
            )
        if cluster.web_port:
            console.print(f"Locust web UI: http://127.0.0.1:{cluster.web_port}")
        result.status, result.detail = drive(cluster, run_dir, phase, console)
        if result.status == "completed" and "job_completion_rate" in phase.gate.get("criteria", {}):
            wait_for_queue(host, progress)  # samplers keep recording the queue meanwhile
    except KeyboardInterrupt:
        result.status = "interrupted"
        raise
    finally:
        finish(result, cluster, samplers, stack, run_dir, progress, guards, True)
        if isolated is not None:
            isolated.close()  # after the stack and Locust stopped: the cgroups are empty
    return result


def _manifest_config(phase: ResolvedPhase) -> dict:
    config = phase.model_dump()
    config["stages"] = [s.model_dump() for s in phase.stages]
    return config
