"""Points on the roads of the map OSRM serves: where fixture addresses lie.

Random points in the extract's bounding box are snapped to roads by OSRM itself
and only the mutually reachable ones are kept, so every batch of delivery stops
can be routed (``/trip`` answers ``NoTrips`` for points on islands or one-way
traps). Same seed and map, same points.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from stack.errors import StackError
from stack.osm_extract import MapInfo, map_bbox, source_pbf

BATCH = 50
"""Candidates per /table; the full matrix of the first batch stays under osrm-routed's
default --max-table-size of 100 locations."""
REQUESTS_IN_FLIGHT = 4
"""OSRM spends ~0.5 ms per location of a one-to-many /table (the search, not the HTTP),
so two batches' two tables at a time keep both of osrm-routed's threads busy."""


def random_road_points(
    osrm_url: str,
    n: int,
    seed: int,
    bbox: MapInfo | tuple[float, float, float, float] | None = None,
) -> list[tuple[float, float]]:
    """``n`` distinct (lon, lat) points on roads, all reachable from each other.

    Random points in the bbox are snapped to the road network by a ``/table``
    against a reference point, which also drops points on islands or one-way
    traps (where ``/trip`` would answer ``NoTrips``). The reference is the point
    of the first batch reachable both ways from the most others, i.e. one on the
    main component. Same seed and map, same points. ``bbox`` defaults to the box
    of :func:`source_pbf`.
    """
    return list(named_road_points(osrm_url, n, seed, bbox))


def named_road_points(
    osrm_url: str,
    n: int,
    seed: int,
    bbox: MapInfo | tuple[float, float, float, float] | None = None,
) -> dict[tuple[float, float], str]:
    """:func:`random_road_points` with the name of each point's road (``""`` when unnamed).

    The ``/table`` that checks reachability snaps the raw points itself and names
    their roads in its waypoints (the same points and names ``/nearest`` gives), so
    a batch costs two small one-row/one-column tables, not a ``/nearest`` per
    candidate plus a full matrix: the phase-2 pool of 500 went from ~2 s to a
    fraction of a second.
    """
    box = _as_map_info(bbox)
    rng = random.Random(seed)
    max_candidates = max(20 * n, 200)
    found: dict[tuple[float, float], str] = {}

    def keep(snaps: list[Snap]) -> None:
        for point, name in snaps:
            if len(found) < n and box.contains(*point) and point not in found:
                found[point] = name

    def draw() -> list[tuple[float, float]]:
        return [_random_point(rng, box) for _ in range(BATCH)]

    tried = 0
    with (
        httpx.Client(base_url=osrm_url.rstrip("/"), timeout=30) as client,
        ThreadPoolExecutor(REQUESTS_IN_FLIGHT, thread_name_prefix="osrm") as workers,
    ):
        reference: tuple[float, float] | None = None
        while reference is None and tried < max_candidates:
            tried += BATCH
            reference, snaps = _reference_and_snaps(client, draw())
            keep(snaps)
        # Later batches are asked for two at a time but kept in the order they were
        # drawn, so the same seed still gives the same pool.
        ahead: deque[Callable[[], list[Snap]]] = deque()
        while reference and len(found) < n and (ahead or tried < max_candidates):
            while len(ahead) < REQUESTS_IN_FLIGHT // 2 and tried < max_candidates:
                tried += BATCH
                ahead.append(_reachable_from(workers, client, reference, draw()))
            keep(ahead.popleft()())
    if len(found) < n:
        raise StackError(
            f"found only {len(found)} of {n} routable road points after {tried} random tries: "
            f"is OSRM at {osrm_url} serving the map of this bbox?"
        )
    return found


def _as_map_info(bbox: MapInfo | tuple[float, float, float, float] | None) -> MapInfo:
    if bbox is None:
        return map_bbox(source_pbf())
    if isinstance(bbox, MapInfo):
        return bbox
    return MapInfo(*bbox)


def _random_point(rng: random.Random, box: MapInfo) -> tuple[float, float]:
    return (rng.uniform(box.min_lon, box.max_lon), rng.uniform(box.min_lat, box.max_lat))


def _get_ok(client: httpx.Client, path: str, params: dict[str, str] | None = None) -> dict:
    """One OSRM request; transient failures are retried a bounded number of times."""
    for attempt in range(3):
        try:
            response = client.get(path, params=params)
            body = response.json()
            break
        except (httpx.TransportError, ValueError) as exc:
            if attempt == 2:
                raise StackError(f"OSRM at {client.base_url} does not answer ({exc})") from exc
            time.sleep(0.2 * (attempt + 1))
    if body.get("code") != "Ok" and response.status_code >= 500:
        raise StackError(f"OSRM error {response.status_code}: {body.get('message', body)}")
    return body


Snap = tuple[tuple[float, float], str]
"""A point snapped to the road network, and the name of its road."""


def _reference_and_snaps(
    client: httpx.Client, raw: list[tuple[float, float]]
) -> tuple[tuple[float, float] | None, list[Snap]]:
    """(reference, the snaps of ``raw`` reachable from and to it): the reference is the
    snap reachable both ways from the most others of a full matrix (the main component)."""
    body = _table(client, raw, {})
    durations = body.get("durations")
    if not durations:
        return None, []
    snaps = _snaps(body["sources"])
    size = len(snaps)

    def mutual(i: int, j: int) -> bool:
        return durations[i][j] is not None and durations[j][i] is not None

    ref = max(range(size), key=lambda i: sum(mutual(i, j) for j in range(size)))
    return snaps[ref][0], [snaps[j] for j in range(size) if mutual(ref, j)]


def _reachable_from(
    workers: ThreadPoolExecutor,
    client: httpx.Client,
    reference: tuple[float, float],
    raw: list[tuple[float, float]],
) -> Callable[[], list[Snap]]:
    """Ask for the snaps of ``raw`` reachable from and to ``reference``; returns a call
    that waits for the answer. One-row and one-column tables, not the full matrix."""
    coords = [reference, *raw]
    outward = workers.submit(_table, client, coords, {"sources": "0"})
    inward = workers.submit(_table, client, coords, {"destinations": "0"})

    def result() -> list[Snap]:
        there, back = outward.result().get("durations"), inward.result()
        if not there or not back.get("durations"):
            return []
        snaps = _snaps(back["sources"])
        return [
            snaps[j]
            for j in range(1, len(coords))
            if there[0][j] is not None
            and back["durations"][j][0] is not None
            and snaps[j][0] != reference
        ]

    return result


def _table(client: httpx.Client, coords: list[tuple[float, float]], params: dict) -> dict:
    path = "/table/v1/driving/" + ";".join(f"{lon:.6f},{lat:.6f}" for lon, lat in coords)
    body = _get_ok(client, path, params)
    return body if body.get("code") == "Ok" else {}


def _snaps(waypoints: list[dict]) -> list[Snap]:
    return [
        ((round(w["location"][0], 6), round(w["location"][1], 6)), str(w.get("name") or ""))
        for w in waypoints
    ]
