"""The open model: arrivals at a target rate, whatever the responses do.

A closed model (users with think time) slows its own arrivals when the
service slows — coordinated omission: the very requests that would have
waited longest are never sent. Here each arrival driver schedules Poisson
arrivals at its share of the plan's rate, starts one persona flow per
arrival in its own greenlet, and records latency from the *intended* start.
When ``max_in_flight`` flows are already running the arrival is dropped and
counted, so offered, achieved and dropped arrivals are all in
``arrivals/*.parquet``.

Reproducible from the run seed: the arrival times come from a stream seeded by
(run seed, worker index), and arrival number *n* gets its own stream seeded by
(run seed, worker index, n) for its persona, its identity's turn and every
choice its flow makes (products by popularity, searches, pages). Flows run
concurrently, so one shared stream would be consumed in an order set by
response times; per-arrival streams make the same seed offer the same
arrivals and choose the same products, whatever the service's speed.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import ClassVar

import gevent
from gevent.pool import Pool
from locust import FastHttpUser, task

from runformat.records import ARRIVAL_SCHEMA, ParquetBatches
from runformat.schemas import DRAIN_TIMEOUT_S
from scenarios.arrivals import Arrivals
from scenarios.blocking import in_native_thread
from scenarios.context import traffic_context
from scenarios.flows import FLOWS, Session
from scenarios.inputs import credential_pool, plan_of, process_index, seed_of


class ArrivalUser(FastHttpUser):
    """One arrival driver per worker; not a person, so not in the persona mix."""

    max_in_flight: ClassVar[int] = 2000
    concurrency = 200  # connection pool size of this driver's HTTP client

    def wait_time(self) -> float:
        return 0.0

    def on_start(self) -> None:
        options = self.environment.parsed_options
        plan = plan_of(self.environment)
        if plan is None:
            raise RuntimeError("the open model needs --loadgate-plan (loadgate run writes it)")
        seed = seed_of(self.environment)
        self.source = Arrivals(
            plan,
            seed,
            process_index(self.environment),
            max(1, getattr(options, "loadgate_arrival_drivers", 1)),
            credential_pool(self.environment),
            traffic_context(self.environment, seed),
            run_dir=getattr(options, "loadgate_run_dir", "") or "",
        )
        self.flows = Pool(self.max_in_flight)
        run_dir = getattr(options, "loadgate_run_dir", "")
        self.arrivals = (
            ParquetBatches(Path(run_dir) / "arrivals", f"arrivals-{id(self)}", ARRIVAL_SCHEMA)
            if run_dir
            else None
        )
        self.started = time.time()
        if self.arrivals is not None:
            self.arrivals.start(spawn=gevent.spawn, offload=in_native_thread)

    @task
    def drive(self) -> None:
        """Offer the seeded arrivals on time, count them per second, then stop this user."""
        second, offered, achieved, dropped = int(self.started), 0, 0, 0
        for offset in self.source.offsets():
            candidate = self.started + offset
            gevent.sleep(max(0.0, candidate - time.time()))
            if int(candidate) != second:
                self._record(second, offered, achieved, dropped)
                second, offered, achieved, dropped = int(candidate), 0, 0, 0
            offered += 1
            if self.flows.full():
                dropped += 1
                self.source.skip()
                continue
            achieved += 1
            self.flows.spawn(run_flow, self.source.session(self.client, candidate))
        self._record(second, offered, achieved, dropped)
        self.flows.join(timeout=DRAIN_TIMEOUT_S)  # in-flight flows finish and are recorded
        if self.arrivals is not None:
            self.arrivals.close()
        self.stop()

    def _record(self, second: int, offered: int, achieved: int, dropped: int) -> None:
        if self.arrivals is not None and offered:
            self.arrivals.append((second * 1_000_000, offered, achieved, dropped, str(id(self))))


def run_flow(session: Session) -> None:
    """One arrival's flow; a failed flow is already recorded, request by request."""
    with contextlib.suppress(Exception):
        FLOWS[session.persona](session)
