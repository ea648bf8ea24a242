"""Noticing a service that dies without being told to: readiness probes during the load.

The stack's readiness probes (``stack.probes``: a real query, a PING, an HTTP check)
keep running once a second while the load runs. A service that fails its probe twice
in a row has *stopped answering*: that is an incident, recorded in ``incidents.jsonl``
of the run directory with the time of the first failed probe, the probe's error and
the service's last log lines, and recorded again (same ``id``) when it answers again.
An incident is ``planned`` when the service is the target of a fault injected at that
time (``loadgate.faults``); an unplanned one is what the report names beside the
verdict, and one during the gate window makes the verdict INVALID
(``analysis.degradation``). Without this, a run whose Redis died kept reporting
"completed" while every request failed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runformat.records import now_us
from runformat.rundir import INCIDENTS_FILE

FAILURES_NEEDED = 2
"""Consecutive failed probes before a service counts as down (one can be a hiccup)."""
SLOW_FOR_S = 30.0
"""Seconds of consecutive probe *timeouts* before a service counts as down.  A refused or
reset connection means nothing answers; a probe that times out (2 s) against a process
that is saturated by the load is latency, which the gate's latency criteria judge.  A
service that cannot answer a health check for 30 s is down for its users whatever its
state, so the watch still records it then (measured: the Stripe mock, one event loop,
missed 2 s probes for ~5 s at a time while answering 100 req/s under the phase-1 gate
load, and that alone made the main job INVALID)."""
LOG_LINES = 20

Probe = Callable[[], object]


def is_timeout(exc: BaseException) -> bool:
    """A probe that waited out its timeout (httpx, psycopg, redis and the socket module
    each have their own class for it) rather than being refused."""
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, TimeoutError) or "timeout" in text or "timed out" in text


@dataclass
class _State:
    failures: int = 0
    first_failure_us: int | None = None
    incident: dict[str, Any] | None = None
    last_error: str = ""


@dataclass
class IncidentWatcher:
    """Probes every service once a second in a thread; writes ``incidents.jsonl``.

    ``probes`` maps a service to a callable that raises when the service does not
    answer; ``tail`` gives a service's last log lines; ``expected`` names the fault
    (its text) that a service is down for, or None.
    """

    run_dir: Path
    probes: Mapping[str, Probe]
    tail: Callable[[str], list[str]]
    expected: Callable[[str], str | None] = lambda name: None
    interval_s: float = 1.0
    incidents: list[dict[str, Any]] = field(default_factory=list)
    _states: dict[str, _State] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / INCIDENTS_FILE

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="incidents", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.check_once()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def check_once(self) -> None:
        """Probe each service once and record what changed."""
        for name, probe in self.probes.items():
            if self._stop.is_set():
                return
            state = self._states.setdefault(name, _State())
            try:
                probe()
            except Exception as exc:  # noqa: BLE001 - any failure means "not answering"
                self._failed(name, state, exc)
            else:
                self._answered(name, state)

    def _failed(self, name: str, state: _State, exc: Exception) -> None:
        state.failures += 1
        state.last_error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        if state.first_failure_us is None:
            state.first_failure_us = now_us()
        if state.failures < FAILURES_NEEDED or state.incident is not None:
            return
        if is_timeout(exc) and now_us() - state.first_failure_us < SLOW_FOR_S * 1e6:
            return  # slow, not (yet) stopped
        fault = self.expected(name)
        try:
            lines = self.tail(name)[-LOG_LINES:]
        except Exception:  # noqa: BLE001 - no log is still an incident
            lines = []
        state.incident = {
            "id": len(self.incidents) + 1,
            "service": name,
            "start_us": state.first_failure_us,
            "detected_us": now_us(),
            "end_us": None,
            "reason": state.last_error,
            "planned": fault is not None,
            "fault": fault,
            "log_tail": lines,
        }
        self.incidents.append(state.incident)
        self._write(state.incident)

    def _answered(self, name: str, state: _State) -> None:
        if state.incident is not None:
            state.incident["end_us"] = now_us()
            self._write(state.incident)
        state.failures, state.first_failure_us, state.incident = 0, None, None

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock, self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
