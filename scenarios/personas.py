"""The Locust users of the closed model: one class per persona.

Each user takes one identity of its role, then repeats its persona's flow
(``scenarios.flows``) with think time between steps, as a real shopper,
buyer, farmer, driver or admin would. Weights (the persona mix) and think
times are the phase config's only: ``scenarios.plugin`` sets them on these
classes at init, from the run's plan or, for a plain ``locust -f locustfile.py
--host URL``, from ``config/phases.toml``'s defaults. The seed, the identities
and the traffic context come from ``scenarios.inputs``; this module does not
import the plugin.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import ClassVar

from locust import FastHttpUser, task

from scenarios.context import traffic_context
from scenarios.credentials import CredentialPool
from scenarios.flows import FLOWS, ROLE_OF, Session, generate_batches, payout_round
from scenarios.inputs import credential_pool, seed_of

_user_numbers = itertools.count()


class PersonaUser(FastHttpUser):
    abstract = True
    persona: ClassVar[str] = ""
    think_time_s: ClassVar[tuple[float, float]]
    """Set with the weights by ``scenarios.plugin`` at init (phase config)."""
    credentials: ClassVar[CredentialPool | None] = None
    """This process's identities, read at the first user's start."""

    def wait_time(self) -> float:
        return self.rng.uniform(*self.think_time_s)

    def on_start(self) -> None:
        seed = seed_of(self.environment)
        self.rng = random.Random(f"{seed}-{self.persona}-{next(_user_numbers)}")
        if PersonaUser.credentials is None:
            PersonaUser.credentials = credential_pool(self.environment)
        identity = PersonaUser.credentials.take(ROLE_OF[self.persona])
        context = traffic_context(self.environment, seed)
        self.session = Session(
            client=self.client,
            persona=self.persona,
            token=identity["token"],
            profile_id=int(identity["profile_id"]),
            rng=self.rng,
            think=self._think,
            traffic=context.traffic,
            catalogue=context.catalogue,
            popularity=context.popularity,
        )

    def _think(self) -> None:
        self.wait()

    def context(self) -> dict:
        return {"persona": self.persona}

    @task
    def run_flow(self) -> None:
        FLOWS[self.persona](self.session)


class ShopperUser(PersonaUser):
    persona = "shopper"


class BuyerUser(PersonaUser):
    persona = "buyer"


class FarmerUser(PersonaUser):
    persona = "farmer"


class DriverUser(PersonaUser):
    persona = "driver"


class AdminUser(PersonaUser):
    persona = "admin"


PERSONA_USERS: dict[str, type[PersonaUser]] = {
    cls.persona: cls for cls in (ShopperUser, BuyerUser, FarmerUser, DriverUser, AdminUser)
}


class OperationsUser(FastHttpUser):
    """The operator's timed jobs: batch generation and payout rounds at the config's cadence.

    Not a shopper, so not in the persona mix: exactly one per run
    (``fixed_count``), wherever the master places it. Batch generation runs
    every ``traffic.batch_interval_s`` for the next delivery date (routes
    through OSRM), a payout round every ``traffic.payout_interval_s`` for
    ``traffic.payouts_per_round`` payees, farmers and drivers alternately.
    """

    fixed_count = 1
    persona: ClassVar[str] = "operations"

    def on_start(self) -> None:
        seed = seed_of(self.environment)
        context = traffic_context(self.environment, seed)
        self.traffic = context.traffic
        self.rng = random.Random(f"{seed}-operations")
        pool = credential_pool(self.environment)
        self.admin = self._session(pool.take("admin"))
        self.payees = [
            self._session(pool.take("farmer" if i % 2 == 0 else "driver"))
            for i in range(self.traffic.payouts_per_round)
        ]
        started = time.monotonic()
        # Like a cron job: the first run comes one interval after the start.
        self.next_batch = started + self.traffic.batch_interval_s
        self.next_payout = started + self.traffic.payout_interval_s

    def _session(self, identity: dict) -> Session:
        return Session(
            client=self.client,
            persona=self.persona,
            token=identity["token"],
            profile_id=int(identity["profile_id"]),
            rng=self.rng,
            traffic=self.traffic,
            think=lambda: self._sleep(1.0),
        )

    def _sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)

    def context(self) -> dict:
        return {"persona": self.persona}

    def wait_time(self) -> float:
        return max(0.0, min(self.next_batch, self.next_payout) - time.monotonic())

    @task
    def run_due_jobs(self) -> None:
        now = time.monotonic()
        if now >= self.next_batch:
            self.next_batch += self.traffic.batch_interval_s
            generate_batches(self.admin)
        if now >= self.next_payout:
            self.next_payout += self.traffic.payout_interval_s
            payout_round(self.payees)
