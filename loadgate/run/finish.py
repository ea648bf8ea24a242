"""The end of every run, however it ended: stop in reverse order, verify while the
stack is still up, keep the logs, and finish the manifest with how the run ended."""

from __future__ import annotations

import shutil
from pathlib import Path

from loadgate.locust_cluster import LocustCluster
from loadgate.run.guards import Guards
from loadgate.run.options import Progress, RunResult
from loadgate.samplers.loop import SamplerLoop
from runformat import rundir
from stack.stack import Stack


def finish(
    result: RunResult,
    cluster: LocustCluster | None,
    samplers: SamplerLoop | None,
    stack: Stack | None,
    run_dir: Path,
    progress: Progress,
    guards: Guards | None = None,
    verify_after: bool = False,
) -> None:
    """Stop in reverse order and record how the run ended; never raises.

    Faults still active are undone first; the run then waits for deferred payments
    and verifies the data and every acknowledged write (``verify.json``, issue 21)
    while the stack is still up.
    """
    guards = guards or Guards()
    if cluster is not None:
        progress("stopping Locust")
        cluster.stop()
    if guards.scheduler is not None:
        guards.scheduler.stop()
    if verify_after and result.status == "completed" and stack is not None and stack.provider:
        from loadgate.aftercheck import settle_and_verify

        stripe = stack.services.get("stripe")
        try:
            settle_and_verify(
                stack.url("postgres"), stripe.url if stripe else None, run_dir, progress
            )
        except KeyboardInterrupt:  # a second Ctrl-C: skip the check, still tear down
            progress("verify after the load skipped: interrupted")
    if guards.watcher is not None:
        guards.watcher.stop()
    if samplers is not None:
        samplers.stop()
    if stack is not None:
        if guards.streamer is not None:
            guards.streamer.stop()
        else:
            _copy_logs(stack, run_dir)
        progress("taking the stack down")
        stack.stop()
    if guards.control is not None:
        guards.control.close()
    result.requests = _count_events(run_dir)
    rundir.write_manifest(
        run_dir,
        ended_at=rundir.now_iso(),
        status=result.status,
        status_detail=result.detail,
        requests=result.requests,
        **rundir.record_channel_accounting(run_dir),
    )


def _copy_logs(stack: Stack, run_dir: Path) -> None:
    for service in stack.services.values():
        if service.log_path and service.log_path.exists():
            shutil.copy(service.log_path, run_dir / "logs" / f"{service.name}.log")
        elif stack.provider is not None:
            lines = stack.provider.log_tail(service, lines=100_000)
            (run_dir / "logs" / f"{service.name}.log").write_text("\n".join(lines))


def _count_events(run_dir: Path) -> int:
    import pyarrow.parquet as pq

    total = 0
    for path in (run_dir / "events").glob("*.parquet"):
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError):
            continue
    return total
