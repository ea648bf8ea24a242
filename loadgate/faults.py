"""Fault injection during a run: what to break, when, and a record of when it was broken.

A fault is written ``KIND:TARGET@START[+DURATION]``, times relative to the load start
(Locust's t = 0), in seconds (``30``, ``30s``, ``1.5m``, ``500ms``) or in percent of the
load's length (``40%``), so a phase config's faults follow ``--duration``:

========================  ================================================================
``kill:SERVICE``          SIGKILL (containers: ``docker kill``); with ``+D`` started again
                          after D, without it the service stays dead for the rest of the run
``pause:SERVICE``         SIGSTOP the service's processes (``docker pause``); ``+D`` resumes
``restart:SERVICE``       kill and start again at once (no duration)
``cut:osrm``              OSRM unreachable for ``+D``: its process is frozen, so calls hang
                          until the service's 5 s OSRM timeout as behind a dropped link
``kill:worker``           SIGKILL one marketplace worker process; uvicorn starts a new one
``pause:worker``          freeze one marketplace worker (uvicorn's health check replaces it)
``stripe-errors:R[/S]``   the Stripe mock answers a share R (0..1) of API calls with HTTP S
                          (default 500) for ``+D``
``stripe-latency:A-B``    the Stripe mock's latency becomes uniform A..B ms for ``+D``
========================  ================================================================

Services: ``redis``, ``pgbouncer``, ``osrm``, ``stripe`` (pause only: the mock keeps its
payments in memory, so killing it would lose them, which a Stripe outage does not),
``replica`` (phase2+ profiles). Each fault is recorded in ``faults.jsonl`` of the run
directory as it happens (a line when it starts, another when it ends and when the
service answers again; the last line of an ``id`` is its state), so a killed run still
says what was broken when.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runconfig.faults import FaultSpec, FaultSpecError

FAULTS_FILE = "faults.jsonl"
READY_WAIT_S = 60.0
"""How long after a fault ends the scheduler waits for the service to answer again."""

# --- a run's faults, resolved to seconds --------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One fault of a run, in seconds after the load start."""

    id: int
    text: str
    kind: str
    target: str
    start_s: float
    end_s: float | None
    settings: dict[str, float] = field(default_factory=dict)


def resolve_faults(
    specs: Sequence[FaultSpec], load_s: float, services: set[str] | None = None
) -> list[Fault]:
    """Faults in seconds, checked against the load's length and the stack's services.

    A fault must start within the load and end before it ends (its recovery is part of
    what is measured); two faults may not overlap on one service (which state would
    win?); a target the stack does not run is an error, not a silent no-op.
    """
    faults = []
    for number, spec in enumerate(sorted(specs, key=lambda s: s.seconds(load_s)[0]), 1):
        start, end = spec.seconds(load_s)
        if start >= load_s or (end is not None and end > load_s):
            raise FaultSpecError(
                f"fault {spec.text!r}: runs to {end or start:g} s but the load lasts "
                f"{load_s:g} s: move it earlier or lengthen the run (--duration)"
            )
        if services is not None:
            needed = "marketplace" if spec.target == "worker" else spec.target
            if needed not in services:
                raise FaultSpecError(
                    f"fault {spec.text!r}: this run's stack has no {needed} "
                    f"(it runs {', '.join(sorted(services))})"
                )
        faults.append(
            Fault(number, spec.text, spec.kind, spec.target, start, end, dict(spec.settings))
        )
    _check_overlaps(faults, load_s)
    return faults


def _instant(fault: Fault) -> bool:
    """Over as soon as applied: a restart, a worker killed (uvicorn replaces it)."""
    return fault.kind == "restart" or (fault.kind == "kill" and fault.target == "worker")


def _check_overlaps(faults: list[Fault], load_s: float) -> None:
    for a in faults:
        for b in faults:
            if b.id <= a.id or a.target != b.target:
                continue
            a_end = a.start_s + 1.0 if _instant(a) else (a.end_s or load_s)
            if b.start_s < a_end:
                raise FaultSpecError(
                    f"faults {a.text!r} and {b.text!r} overlap on {a.target}: "
                    "give each service one fault at a time"
                )


# --- the record ------------------------------------------------------------------------


class FaultLog:
    """``faults.jsonl``: one line per change of a fault's state, flushed at once."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / FAULTS_FILE
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        with self._lock, self.path.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()


# --- doing it ----------------------------------------------------------------------------


class Control(Protocol):
    """What the scheduler needs from the stack (``stack.control.ServiceControl``)."""

    def kill(self, name: str) -> str: ...
    def start_again(self, name: str) -> str: ...
    def pause(self, name: str) -> str: ...
    def resume(self, name: str) -> str: ...
    def kill_worker(self) -> str: ...
    def pause_worker(self) -> str: ...
    def resume_worker(self) -> str: ...
    def stripe_config(self, changes: dict[str, float]) -> dict[str, float]: ...
    def answers(self, name: str) -> bool: ...


class FaultScheduler:
    """Runs a run's faults on time in a thread and records each in ``faults.jsonl``.

    Nothing here may end the run: an action that fails is recorded (``status: failed``
    with the error) and the load goes on. At :meth:`stop` every fault still active is
    undone (a service paused is resumed, the Stripe mock's settings are restored) so the
    stack can be verified and taken down.
    """

    def __init__(
        self,
        faults: list[Fault],
        control: Control,
        log: FaultLog,
        load_start: Callable[[], float | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.faults = faults
        self.control = control
        self.log = log
        self.load_start = load_start
        """Epoch seconds of the load's t = 0 once known (None before)."""
        self.clock = clock
        self.records: dict[int, dict[str, Any]] = {}
        self._undo: dict[int, Callable[[], str]] = {}
        self._left: set[int] = set()
        """Faults that stay until the run ends (a service killed without ``+D``)."""
        self._down: dict[str, str] = {}
        """Service -> the fault it is down for, from injection until it answers again."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="faults", daemon=True)

    def start(self) -> None:
        if self.faults:
            self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; undo what is still active (a paused service never stays paused)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=READY_WAIT_S + 10)
        for fault_id in list(self._undo):
            self._end(self._fault(fault_id), note="ended with the run")
        for fault_id in sorted(self._left):
            self._write(self._fault(fault_id), end_us=now_us(), status="ended")
        self._left.clear()

    def expected(self, service: str) -> str | None:
        """The fault (its text) ``service`` is down for now, or None (for the watcher)."""
        return self._down.get(service)

    @staticmethod
    def _service_of(fault: Fault) -> str:
        return "marketplace" if fault.target == "worker" else fault.target

    def _fault(self, fault_id: int) -> Fault:
        return next(f for f in self.faults if f.id == fault_id)

    def _loop(self) -> None:
        events = sorted(
            [(f.start_s, 0, f) for f in self.faults]
            + [(f.end_s, 1, f) for f in self.faults if f.end_s is not None],
            key=lambda e: (e[0], e[1]),
        )
        for at_s, is_end, fault in events:
            if not self._wait_until(at_s):
                return
            if is_end:
                self._end(fault)
            else:
                self._begin(fault)

    def _wait_until(self, at_s: float) -> bool:
        while not self._stop.is_set():
            origin = self.load_start()
            if origin is not None and self.clock() >= origin + at_s:
                return True
            self._stop.wait(0.1)
        return False

    def _write(self, fault: Fault, **changes: Any) -> None:
        record = self.records.setdefault(
            fault.id,
            {
                **{k: v for k, v in asdict(fault).items() if k not in ("start_s", "end_s")},
                "planned_start_s": fault.start_s,
                "planned_end_s": fault.end_s,
                "start_us": None,
                "end_us": None,
                "recovered_us": None,
                "status": "planned",
                "detail": "",
            },
        )
        record.update(changes)
        self.log.write(dict(record))

    def _begin(self, fault: Fault) -> None:
        if not fault.kind.startswith("stripe-"):
            self._down[self._service_of(fault)] = fault.text
        try:
            detail, undo = self._apply(fault)
        except Exception as exc:  # noqa: BLE001 - a failed injection must not end the run
            self._write(fault, start_us=now_us(), status="failed", detail=_one_line(exc))
            self._down.pop(self._service_of(fault), None)
            return
        self._write(fault, start_us=now_us(), status="active", detail=detail)
        if undo is not None:
            self._undo[fault.id] = undo
        elif fault.end_s is None and fault.kind == "kill" and fault.target != "worker":
            self._left.add(fault.id)
        else:  # instantaneous (restart, a worker killed): over once it answers again
            self._write(fault, end_us=now_us(), status="ended")
            self._await_recovery(fault)

    def _end(self, fault: Fault, note: str = "") -> None:
        undo = self._undo.pop(fault.id, None)
        if undo is None:
            return
        try:
            detail = undo()
        except Exception as exc:  # noqa: BLE001
            self._write(fault, end_us=now_us(), status="failed", detail=_one_line(exc))
            return
        text = "; ".join(t for t in (self.records[fault.id]["detail"], detail, note) if t)
        self._write(fault, end_us=now_us(), status="ended", detail=text)
        self._await_recovery(fault)

    def _await_recovery(self, fault: Fault) -> None:
        """Record when the service answers its readiness probe again (bounded wait)."""
        name = self._service_of(fault)
        deadline = time.monotonic() + READY_WAIT_S
        try:
            while time.monotonic() < deadline:
                try:
                    if self.control.answers(name):
                        self._write(fault, recovered_us=now_us())
                        return
                except Exception:  # noqa: BLE001 - not yet
                    pass
                time.sleep(0.2)
            detail = self.records[fault.id]["detail"]
            self._write(fault, detail=f"{detail}; no answer within {READY_WAIT_S:g} s")
        finally:
            self._down.pop(name, None)

    def _apply(self, fault: Fault) -> tuple[str, Callable[[], str] | None]:
        """Inject ``fault``: (what was done, how to undo it or None)."""
        c, name, windowed = self.control, fault.target, fault.end_s is not None
        if fault.kind.startswith("stripe-"):
            before = c.stripe_config(fault.settings)
            restore = {k: before[k] for k in fault.settings if k in before}
            return f"stripe mock set to {fault.settings}", lambda: _restore_stripe(c, restore)
        if name == "worker":
            if fault.kind == "pause":
                return c.pause_worker(), (c.resume_worker if windowed else None)
            return c.kill_worker(), None
        if fault.kind == "restart":
            return f"{c.kill(name)}; {c.start_again(name)}", None
        if fault.kind in ("pause", "cut"):
            return c.pause(name), lambda: c.resume(name)
        return c.kill(name), (lambda: c.start_again(name)) if windowed else None


def now_us() -> int:
    return time.time_ns() // 1000


def _restore_stripe(control: Control, settings: dict[str, float]) -> str:
    control.stripe_config(settings)
    return f"stripe mock restored to {settings}"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
