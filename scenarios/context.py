"""What every flow of one Locust process shares: the traffic numbers, the catalogue, popularity.

Free of Locust imports (the run's inputs come from ``scenarios.inputs``), so the
scenarios' logic can be tested in a plain Python process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fixtures.catalogue import Catalogue, Popularity
from runconfig.traffic import Traffic
from scenarios.inputs import config_defaults, credentials_path, plan_of


@dataclass(frozen=True)
class TrafficContext:
    """What every flow of one Locust process shares: config, catalogue, popularity."""

    traffic: Traffic
    catalogue: Catalogue | None
    popularity: Popularity | None


_contexts: dict[int, TrafficContext] = {}


def traffic_context(environment: Any, seed: int) -> TrafficContext:
    """The plan's traffic numbers and the loaded catalogue, built once per process.

    The popularity ranking depends only on the catalogue, the exponent and the
    run seed, so every worker of a run (and every run with the same seed)
    ranks the same products first.
    """
    if seed in _contexts:
        return _contexts[seed]
    plan = plan_of(environment)
    traffic = plan.traffic if plan is not None else config_defaults().traffic
    catalogue = Catalogue.beside(credentials_path(environment))
    popularity = (
        Popularity(catalogue.product_count, traffic.zipf_exponent, seed) if catalogue else None
    )
    _contexts[seed] = TrafficContext(traffic, catalogue, popularity)
    return _contexts[seed]
