"""Synthetic run directories shared by the analysis tests (written once per session)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis import analyze, load_run
from tests.synthetic import START_US, SyntheticSpec, write_run


@pytest.fixture(scope="session")
def base_run_dir(tmp_path_factory) -> Path:
    """Six closed-model levels 10..100 users, gate at 100 users, one fault window."""
    spec = SyntheticSpec(
        faults=[
            {
                "kind": "kill",
                "target": "redis",
                "start_us": START_US + 200_000_000,
                "end_us": START_US + 230_000_000,
            }
        ]
    )
    return write_run(tmp_path_factory.mktemp("runs") / "base", spec)


@pytest.fixture(scope="session")
def base_result(base_run_dir):
    return analyze(load_run(base_run_dir))


def _with_manifest(src: Path, dst: Path, **config_updates) -> Path:
    """A copy of run ``src`` at ``dst`` whose manifest config has ``config_updates``.

    Data directories are symlinked: gate logic depends only on the manifest.
    """
    dst.mkdir(parents=True)
    for child in src.iterdir():
        if child.name != "manifest.json":
            (dst / child.name).symlink_to(child.resolve())
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["config"].update(config_updates)
    manifest["run_id"] = dst.name
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.fixture
def with_manifest():
    """``with_manifest(src, dst, **config_updates)``: a run copy with another config."""
    return _with_manifest


@pytest.fixture
def copy_run(tmp_path):
    def _copy(src: Path) -> Path:
        dst = tmp_path / "copy"
        shutil.copytree(src, dst)
        return dst

    return _copy
