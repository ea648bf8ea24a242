"""The run directory: where a run leaves everything analysis and people need.

Layout (documented in ``docs/run-directory.md``)::

    manifest.json        what ran, where, with which config; updated at the end
    plan.json            the resolved phase the Locust processes followed
    events/*.parquet     one record per request (scenarios.capture)
    samples/*.parquet    1 Hz resource and service samples (loadgate.samplers)
    arrivals/*.parquet   open model: offered / achieved / dropped per second
    locust/              Locust's own CSVs and logs
    logs/                each stack service's log
    faults.jsonl         fault windows (when faults are injected)

The manifest is written when the run starts (status ``running``) and again
when it ends, so a killed run still says what it was.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from runformat.manifest import update_manifest
from runformat.schemas import RECORD_CHANNEL_FILE

TEST_START_FILE = "locust/test_start.json"
INCIDENTS_FILE = "incidents.jsonl"
"""Unplanned outages seen by the probes during the load (docs/run-directory.md)."""
"""Written by the Locust master when the load shape starts (its t = 0)."""
REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "locust",
    "pandas",
    "pyarrow",
    "psycopg",
    "redis",
    "stripe",
    "localstripe",
    "osrm-bindings",
    "testcontainers",
    "fastapi",
    "uvicorn",
)


def default_run_dir(phase: int, root: Path | None = None) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return (root or Path("runs")) / f"{stamp}-phase{phase}"


def create(path: Path) -> Path:
    """A fresh run directory; refuses to mix two runs in one place."""
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(
            f"run directory {path} already has files: choose another with --out DIR"
        )
    for sub in ("events", "samples", "locust", "logs"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def host_facts() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }


def write_manifest(path: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``manifest.json`` through :mod:`runformat.manifest`."""
    defaults = {
        "git_sha": _git_sha(),
        "command_line": sys.argv,
        "packages": _versions(),
        "host": host_facts(),
    }
    return update_manifest(path, defaults, **fields).to_dict()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def record_channel_accounting(run_dir: Path) -> dict[str, Any]:
    """``{"record_channel": ...}`` for the manifest when workers shipped records, else {}."""
    try:
        return {"record_channel": json.loads((run_dir / RECORD_CHANNEL_FILE).read_text())}
    except (FileNotFoundError, ValueError):
        return {}
