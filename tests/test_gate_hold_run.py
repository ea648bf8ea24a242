"""A real short ``loadgate run`` whose gate criterion cannot be decided (a route nobody
requests): the gate step is held past its plan up to a tiny cap, the load really goes on,
and the manifest and the report say how long and why. Also: the run records its CPU
isolation."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from runconfig.phase_config import DEFAULT_CONFIG
from runformat.manifest import iso_to_us
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.load
CAP_S = 10


def undecidable_config(directory: Path) -> Path:
    """Phase 1 gated at 12 users on a route no persona requests (always insufficient
    data), with short think times so a short run has traffic."""
    text = DEFAULT_CONFIG.read_text().replace(
        "think_time_s = [1.0, 5.0]", "think_time_s = [0.2, 0.6]"
    )
    lines = []
    in_phase1 = False
    for line in text.splitlines():
        in_phase1 = line.startswith("[phases.1]") or (in_phase1 and not line.startswith("["))
        if in_phase1 and line.startswith("gate_users"):
            line = "gate_users = 12"
        elif in_phase1 and line.startswith("gate ="):
            line = 'gate = { routes = { "GET /never-requested" = { p95_ms = 2000 } } }'
        lines.append(line)
    path = directory / "phases.toml"
    path.write_text("\n".join(lines) + "\n")
    assert "never-requested" in path.read_text()
    return path


def test_an_undecided_gate_step_is_held_up_to_the_cap(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        [
            "run",
            "--phase",
            "1",
            "--provider",
            "local",
            "--fixture-size",
            "tiny",
            "--workers",
            "1",
            "--users",
            "12",
            "--duration",
            "36s",
            "--gate-hold-max",
            f"{CAP_S}s",
            "--config",
            str(undecidable_config(tmp_path)),
            "--out",
            str(out),
        ],
        tmp_path / "state",
        timeout=400,
    )
    assert result.returncode == 3, result.stderr[-3000:]  # INCONCLUSIVE: still undecided
    manifest = json.loads((out / "manifest.json").read_text())
    hold = manifest["gate_hold"]
    planned = hold["planned_end_s"]
    assert planned == pytest.approx(36.0)
    assert hold["cap_s"] == CAP_S and hold["outcome"] == "cap reached"
    assert hold["extended_s"] == CAP_S and hold["end_s"] == pytest.approx(planned + CAP_S)
    assert "never-requested" in hold["reason"] or "before the first check" in hold["reason"]
    # The manifest's gate stage is the real one: analysis sees the extended hold.
    assert manifest["config"]["stages"][-1]["end_s"] == pytest.approx(planned + CAP_S)
    # The load really went on past the plan, at the gate level.
    start_us = iso_to_us(manifest["load_started_at"])
    last_s = max(
        (pq.read_table(f, columns=["ts_us"])["ts_us"].to_numpy().max() - start_us) / 1e6
        for f in (out / "events").glob("*.parquet")
    )
    assert last_s > planned + CAP_S / 2
    summary = (out / "report" / "summary.md").read_text()
    assert f"Gate step held {CAP_S} s past its plan" in summary
    # Isolation is recorded per side and named in the report's first lines.
    iso = manifest["isolation"]
    assert iso["requested"] == "auto" and iso["mechanism"] in ("cpuset", "weights", "none")
    assert iso["generator_cpus"] and iso["stack_cpus"]
    if iso["mechanism"] != "none":
        assert f"System under test on {len(iso['stack_cpus'])} cores" in summary
        assert f"generator on {len(iso['generator_cpus'])}" in summary
