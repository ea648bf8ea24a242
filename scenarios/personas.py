"""The Locust users of the closed model: one class per persona.

Each user takes one identity of its role, then repeats its persona's flow
(``scenarios.flows``) with think time between steps, as a real shopper,
buyer, farmer, driver or admin would. Weights (the persona mix) and think
times come from the phase config through ``scenarios.plugin``; the defaults
here keep ``locust -f locustfile.py --host URL`` working on its own.
"""

from __future__ import annotations

import itertools
import random
from typing import ClassVar

from locust import FastHttpUser, task

from scenarios.flows import FLOWS, ROLE_OF, Session

_user_numbers = itertools.count()


class PersonaUser(FastHttpUser):
    abstract = True
    persona: ClassVar[str] = ""
    think_time_s: ClassVar[tuple[float, float]] = (1.0, 5.0)
    seed: ClassVar[int] = 42
    credentials = None  # a CredentialPool, set by scenarios.plugin at init

    def wait_time(self) -> float:
        return self.rng.uniform(*self.think_time_s)

    def on_start(self) -> None:
        self.rng = random.Random(f"{self.seed}-{self.persona}-{next(_user_numbers)}")
        if PersonaUser.credentials is None:
            from scenarios.plugin import credential_pool

            PersonaUser.credentials = credential_pool(self.environment)
        identity = PersonaUser.credentials.take(ROLE_OF[self.persona])
        self.session = Session(
            client=self.client,
            persona=self.persona,
            token=identity["token"],
            profile_id=int(identity["profile_id"]),
            rng=self.rng,
            think=self._think,
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
    weight = 60


class BuyerUser(PersonaUser):
    persona = "buyer"
    weight = 25


class FarmerUser(PersonaUser):
    persona = "farmer"
    weight = 6


class DriverUser(PersonaUser):
    persona = "driver"
    weight = 6


class AdminUser(PersonaUser):
    persona = "admin"
    weight = 3


PERSONA_USERS: dict[str, type[PersonaUser]] = {
    cls.persona: cls for cls in (ShopperUser, BuyerUser, FarmerUser, DriverUser, AdminUser)
}
