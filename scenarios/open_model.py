"""The open model: arrivals at a target rate, whatever the responses do.

A closed model (users with think time) slows its own arrivals when the
service slows — coordinated omission: the very requests that would have
waited longest are never sent. Here each arrival driver schedules Poisson
arrivals at its share of the plan's rate, starts one persona flow per
arrival in its own greenlet, and records latency from the *intended* start.
When ``max_in_flight`` flows are already running the arrival is dropped and
counted, so offered, achieved and dropped arrivals are all in
``arrivals/*.parquet``.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path
from typing import ClassVar

import gevent
from gevent.pool import Pool
from locust import FastHttpUser, task

from loadgate.records import ARRIVAL_SCHEMA, ParquetBatches
from runformat.schemas import DRAIN_TIMEOUT_S
from scenarios.flows import FLOWS, ROLE_OF, Session


class ArrivalUser(FastHttpUser):
    """One arrival driver per worker; not a person, so not in the persona mix."""

    max_in_flight: ClassVar[int] = 2000
    concurrency = 200  # connection pool size of this driver's HTTP client

    def wait_time(self) -> float:
        return 0.0

    def on_start(self) -> None:
        from scenarios.plugin import credential_pool, plan_of

        options = self.environment.parsed_options
        self.plan = plan_of(self.environment)
        if self.plan is None:
            raise RuntimeError("the open model needs --loadgate-plan (loadgate run writes it)")
        self.drivers = max(1, getattr(options, "loadgate_arrival_drivers", 1))
        self.rng = random.Random(getattr(options, "loadgate_seed", 42) + id(self) % 1000)
        self.pool = credential_pool(self.environment)
        personas = [p for p, w in self.plan.persona_mix.items() if w > 0]
        self.personas = personas
        self.weights = [self.plan.persona_mix[p] for p in personas]
        self.flows = Pool(self.max_in_flight)
        run_dir = getattr(options, "loadgate_run_dir", "")
        self.arrivals = (
            ParquetBatches(Path(run_dir) / "arrivals", f"arrivals-{id(self)}", ARRIVAL_SCHEMA)
            if run_dir
            else None
        )
        self.started = time.time()
        if self.arrivals is not None:
            self.arrivals.start(spawn=gevent.spawn)

    @task
    def drive(self) -> None:
        """Schedule arrivals until the plan ends, then stop this user.

        The rate changes along the ramps, so arrivals are a non-homogeneous
        Poisson process, drawn by thinning (Lewis and Shedler): candidates
        come at this driver's peak rate and each is kept with probability
        rate(t) / peak. Sampling the gap at the current rate instead would
        stall for a long time whenever a ramp starts near zero.
        """
        assert self.plan is not None
        peak = max((s.rate or 0.0) for s in self.plan.stages) / self.drivers
        if peak <= 0:
            self.stop()
            return
        candidate = self.started
        second, offered, achieved, dropped = int(self.started), 0, 0, 0
        while True:
            candidate += self.rng.expovariate(peak)
            rate = self.plan.rate_at(candidate - self.started)
            if rate is None:
                break
            gevent.sleep(max(0.0, candidate - time.time()))
            if self.rng.random() * peak > rate / self.drivers:
                continue  # thinned: not an arrival at this moment's rate
            if int(candidate) != second:
                self._record(second, offered, achieved, dropped)
                second, offered, achieved, dropped = int(candidate), 0, 0, 0
            offered += 1
            if self.flows.full():
                dropped += 1
                continue
            achieved += 1
            self.flows.spawn(self._one_flow, candidate)
        self._record(second, offered, achieved, dropped)
        self.flows.join(timeout=DRAIN_TIMEOUT_S)  # in-flight flows finish and are recorded
        if self.arrivals is not None:
            self.arrivals.close()
        self.stop()

    def _record(self, second: int, offered: int, achieved: int, dropped: int) -> None:
        if self.arrivals is not None and offered:
            self.arrivals.append((second * 1_000_000, offered, achieved, dropped, str(id(self))))

    def _one_flow(self, intended_start: float) -> None:
        persona = self.rng.choices(self.personas, self.weights)[0]
        identity = self.pool.take(ROLE_OF[persona])
        session = Session(
            client=self.client,
            persona=persona,
            token=identity["token"],
            profile_id=int(identity["profile_id"]),
            rng=self.rng,
            intended_start=intended_start,
        )
        # A failed flow is already recorded, request by request.
        with contextlib.suppress(Exception):
            FLOWS[persona](session)
