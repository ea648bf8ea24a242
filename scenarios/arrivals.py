"""The open model's arrivals, all drawn from the run seed (no Locust here).

Arrival times come from a stream seeded by (run seed, worker index), and
arrival number *n* gets its own stream seeded by (run seed, worker index, n)
for its persona, its identity's turn and every choice its flow makes
(products by popularity, searches, pages). Flows run concurrently, so one
shared stream would be consumed in an order set by response times;
per-arrival streams make the same seed offer the same arrivals and choose
the same products, whatever the service's speed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from scenarios.context import TrafficContext
from scenarios.credentials import CredentialPool
from scenarios.flows import ROLE_OF, Session
from scenarios.gate_hold import HoldControl, holding, read_control
from scenarios.plan import LoadPlan


class Arrivals:
    """One arrival driver's schedule and arrivals, all drawn from the run seed.

    Kept apart from the Locust user so that what a seed decides (when
    arrivals come, who they are, what they choose) can be checked without a
    running Locust.
    """

    def __init__(
        self,
        plan: LoadPlan,
        seed: int,
        index: int,
        drivers: int,
        pool: CredentialPool,
        context: TrafficContext,
        run_dir: str = "",
    ) -> None:
        self.plan, self.seed, self.index, self.drivers = plan, seed, index, drivers
        self.pool, self.context = pool, context
        self.personas = [p for p, w in plan.persona_mix.items() if w > 0]
        self.weights = [plan.persona_mix[p] for p in self.personas]
        self.number = 0
        self.run_dir = run_dir
        self._control: HoldControl | None = None
        self._control_read_at = float("-inf")

    def offsets(self) -> Iterator[float]:
        """Seconds from the start of each offered arrival, until the plan ends.

        The rate changes along the ramps, so arrivals are a non-homogeneous
        Poisson process, drawn by thinning (Lewis and Shedler): candidates
        come at this driver's peak rate and each is kept with probability
        rate(t) / peak. Sampling the gap at the current rate instead would
        stall for a long time whenever a ramp starts near zero.
        """
        rng = random.Random(f"{self.seed}-arrivals-{self.index}")
        peak = max((s.rate or 0.0) for s in self.plan.stages) / self.drivers
        if peak <= 0:
            return
        t = 0.0
        while True:
            t += rng.expovariate(peak)
            rate = self.plan.rate_at(t)
            if rate is None:
                rate = self._held_rate(t)
            if rate is None:
                return
            if rng.random() * peak <= rate / self.drivers:
                yield t

    def _held_rate(self, t: float) -> float | None:
        """Past the plan: the gate step's rate while loadgate holds it (scenarios.gate_hold);
        the control file is read at most once a second."""
        plan = self.plan
        if plan.gate_hold_max_s <= 0 or not self.run_dir or not plan.stages:
            return None
        now = time.monotonic()
        if now - self._control_read_at >= 1.0:
            self._control, self._control_read_at = read_control(self.run_dir), now
        if holding(t, plan.duration_s, plan.gate_hold_max_s, self._control):
            return plan.stages[-1].rate or 0.0
        return None

    def session(self, client: Any, intended_start: float | None = None) -> Session:
        """The next arrival: its persona, identity and own random stream."""
        self.number += 1
        rng = random.Random(f"{self.seed}-arrival-{self.index}-{self.number}")
        persona = rng.choices(self.personas, self.weights)[0]
        identity = self.pool.take(ROLE_OF[persona])
        return Session(
            client=client,
            persona=persona,
            token=identity["token"],
            profile_id=int(identity["profile_id"]),
            rng=rng,
            intended_start=intended_start,
            traffic=self.context.traffic,
            catalogue=self.context.catalogue,
            popularity=self.context.popularity,
        )

    def skip(self) -> None:
        """A dropped arrival keeps its number, so later arrivals keep their streams."""
        self.number += 1
