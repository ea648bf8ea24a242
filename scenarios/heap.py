"""Keep the Locust worker's full garbage collections out of its timed steps.

A worker holding 1,500 users has a heap of a few million objects, and CPython's oldest
generation is collected whole: a stop of every greenlet for ~100 ms, every 20-60 s at a
steady load, because each request's record lives ~2 s in its batch (long enough to be
promoted) and the promotions add up to the 25 % that trigger a full collection. Such a
pause is the generator's own lag, not the system's latency, and 10 of them in 1,000
probe samples are enough to fail the 10 ms lag bound (measured: P99 13.9-14.9 ms, spikes
of 95-134 ms, on a quiet 2-core box at the phase-1 gate).

The standard answer (Locust does it before forking its ``--processes``; Instagram's
"gc.freeze" write-up) is :func:`gc.freeze`: every object alive now moves to a permanent
generation that collections skip. Done each time the worker finishes spawning, the
users and their sessions are frozen once they exist, and later full collections walk
only what was allocated since. The cost is that a cycle frozen while alive is never
collected: a few objects per spawn, in a process that lives one run.
"""

from __future__ import annotations

import gc
from typing import Any

from locust.env import Environment


def freeze_after_spawning(environment: Environment) -> None:
    """Freeze the heap whenever this process finishes a spawn (each step of the ramp)."""

    def freeze(**_: Any) -> None:
        gc.freeze()

    environment.events.spawning_complete.add_listener(freeze)
