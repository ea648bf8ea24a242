"""What watches and breaks the stack during the load: the incident watcher (every
service's readiness probe and log tail) and the fault scheduler, started with the load
and stopped by :func:`loadgate.run.finish.finish`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadgate.faults import Fault, FaultLog, FaultScheduler
from loadgate.incidents import IncidentWatcher
from loadgate.run.locust_phase import load_start_s
from stack.control import ServiceControl
from stack.logs import LogStreamer
from stack.stack import Stack


@dataclass
class Guards:
    """What watches and breaks the stack during a fault run, stopped in order."""

    streamer: LogStreamer | None = None
    watcher: IncidentWatcher | None = None
    scheduler: FaultScheduler | None = None
    control: ServiceControl | None = None


def watch(guards: Guards, stack: Stack, run_dir: Path, faults: list[Fault]) -> None:
    """Start the incident watcher and the fault scheduler with the load."""
    if faults:
        guards.control = ServiceControl(stack)
        guards.scheduler = FaultScheduler(
            faults, guards.control, FaultLog(run_dir), lambda: load_start_s(run_dir)
        )
    streamer = guards.streamer
    guards.watcher = IncidentWatcher(
        run_dir,
        {name: _probe(stack, name) for name in stack.services},
        tail=streamer.tail if streamer is not None else stack.log_tail,
        expected=guards.scheduler.expected if guards.scheduler else (lambda name: None),
    )
    guards.watcher.start()
    if guards.scheduler is not None:
        guards.scheduler.start()


def _probe(stack: Stack, name: str) -> Callable[[], object]:
    """The service's readiness probe against its current URL (it may be restarted)."""

    def probe() -> object:
        service = stack.services[name]
        return service.spec.probe(service.url)

    return probe
