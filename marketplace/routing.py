"""Stop sequencing for delivery batches: OSRM ``/trip`` with a haversine fallback.

OSRM solves the round trip from the depot over the batch's stops; when it errors,
answers ``NoTrips`` (unroutable points), is unconfigured or its breaker is open, a
nearest-neighbour tour on great-circle distances at an assumed city speed is used,
so batch generation never fails because of routing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import httpx

from marketplace.breakers import BreakerOpen, Breakers
from marketplace.metrics import BATCH_ROUTING, external_call

log = logging.getLogger("marketplace.routing")

DEPOT = (24.9414, 60.1719)
"""(lon, lat) of the delivery depot: central Helsinki, on the stack's OSRM map."""
CITY_SPEED_M_S = 8.0
OSRM_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Route:
    """Visiting order (indices into the input stops) and cumulative ETAs in seconds."""

    order: list[int]
    arrival_s: list[float]
    distance_m: float
    duration_s: float
    method: str


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371000.0 * math.asin(math.sqrt(h))


def haversine_route(stops: list[tuple[float, float]], depot: tuple[float, float] = DEPOT) -> Route:
    """Nearest-neighbour tour from the depot: good enough, always available."""
    remaining = list(range(len(stops)))
    here, order, arrivals, total = depot, [], [], 0.0
    while remaining:
        nxt = min(remaining, key=lambda i: haversine_m(here, stops[i]))
        total += haversine_m(here, stops[nxt])
        order.append(nxt)
        arrivals.append(total / CITY_SPEED_M_S)
        here = stops[nxt]
        remaining.remove(nxt)
    total += haversine_m(here, depot) if stops else 0.0
    return Route(order, arrivals, total, total / CITY_SPEED_M_S, "haversine")


def parse_trip(body: dict, n_stops: int) -> Route:
    """OSRM ``/trip`` answer -> stop order; input 0 is the depot."""
    if body.get("code") != "Ok" or not body.get("trips"):
        raise ValueError(f"OSRM trip failed: {body.get('code')}")
    waypoints = body["waypoints"]
    position = {i: wp["waypoint_index"] for i, wp in enumerate(waypoints)}
    trip = body["trips"][0]
    legs = trip.get("legs", [])
    by_position = sorted(range(1, n_stops + 1), key=lambda i: position[i])
    # Cumulative duration at each trip position (position 0 is the depot).
    cumulative, t = [0.0], 0.0
    for leg in legs:
        t += float(leg.get("duration", 0.0))
        cumulative.append(t)
    arrivals = [
        cumulative[position[i]] if position[i] < len(cumulative) else t for i in by_position
    ]
    return Route(
        [i - 1 for i in by_position],
        arrivals,
        float(trip.get("distance", 0.0)),
        float(trip.get("duration", 0.0)),
        "osrm_trip",
    )


class Router:
    """Sequences stops through OSRM (behind its breaker) or the fallback."""

    def __init__(self, osrm_url: str | None, breakers: Breakers) -> None:
        self.osrm_url = osrm_url
        self.breakers = breakers
        self.http = httpx.AsyncClient(timeout=OSRM_TIMEOUT_S)

    async def close(self) -> None:
        await self.http.aclose()

    async def _osrm_trip(self, stops: list[tuple[float, float]]) -> Route:
        coords = ";".join(f"{lon:.6f},{lat:.6f}" for lon, lat in [DEPOT, *stops])
        url = f"{self.osrm_url}/trip/v1/driving/{coords}"
        params = {"roundtrip": "true", "source": "first", "overview": "false"}

        async def attempt() -> Route:
            with external_call("osrm", "trip"):
                resp = await self.http.get(url, params=params)
                body = resp.json()
                if resp.status_code != 200 and body.get("code") != "NoTrips":
                    resp.raise_for_status()
                return parse_trip(body, len(stops))

        return await self.breakers.call("osrm", attempt)

    async def route(self, stops: list[tuple[float, float]]) -> Route:
        """The stops' order; counted by method (``marketplace_batch_routing_total``)."""
        route = await self._route(stops)
        BATCH_ROUTING.labels(route.method).inc()
        return route

    async def _route(self, stops: list[tuple[float, float]]) -> Route:
        if not stops:
            return Route([], [], 0.0, 0.0, "empty")
        if self.osrm_url and len(stops) > 1:
            try:
                return await self._osrm_trip(stops)
            except BreakerOpen:
                log.info("OSRM breaker open: haversine fallback")
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("OSRM failed (%s): haversine fallback", exc)
        return haversine_route(stops)
