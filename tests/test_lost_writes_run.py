"""Issue 21 for real: a run whose service loses acknowledged cart units is caught.

Two short phase-1 runs (``local`` stack, the ``shared`` fixtures: three consumers, so
several buyers share each one and a cart add can race its own checkout, as a shopper
on two devices would). One runs with the test-only profile flag ``racy_cart_delete``
(the checkout before the fix): the run's own check (``verify.json``) and
``loadgate verify --run`` on it find lost cart units and the verdict is FAIL with
"lost acknowledged writes". The other runs the fixed code the same way: 0 violations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from runconfig.phase_config import DEFAULT_CONFIG
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.load

LOAD = ["--users", "12", "--duration", "40s", "--workers", "1"]


def buyers_only(tmp: Path) -> Path:
    config = tmp / "phases.toml"
    text = DEFAULT_CONFIG.read_text()
    text = text.replace("think_time_s = [1.0, 5.0]", "think_time_s = [0.0, 0.05]")
    text = text.replace(
        "persona_mix = { shopper = 60, buyer = 25, farmer = 6, driver = 6, admin = 3 }",
        "persona_mix = { buyer = 100 }",
    )
    config.write_text(text)
    return config


def run(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> tuple[Path, int]:
    tmp = tmp_path_factory.mktemp(name)
    out = tmp / "run"
    result = run_cli(
        ["run", "--phase", "1", "--provider", "local", "--fixture-size", "shared",
         *LOAD, "--config", str(buyers_only(tmp)), "--out", str(out)],
        tmp / "state",
        timeout=600,
        **env,
    )  # fmt: skip
    assert (out / "verify.json").is_file(), result.stderr[-4000:]
    return out, result.returncode


@pytest.fixture(scope="module")
def racy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    return run(
        tmp_path_factory,
        "racy",
        LOADGATE_PROFILE_OVERRIDES=json.dumps({"racy_cart_delete": True}),
    )


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    return run(tmp_path_factory, "fixed")


def test_acks_are_recorded_beside_the_requests(fixed_run: tuple[Path, int]) -> None:
    out, _ = fixed_run
    table = pq.ParquetDataset(out / "events").read(columns=["method", "name", "status", "ack"])
    rows = table.to_pylist()
    adds = [r for r in rows if (r["method"], r["name"]) == ("POST", "/cart/items")]
    assert any(r["status"] == 201 for r in adds)
    for r in adds:
        ack = json.loads(r["ack"]) if r["ack"] else None
        if r["status"] == 201:
            assert ack["kind"] == "cart_add" and ack["user"] >= 1 and ack["quantity"] >= 1
        else:
            assert ack is None
    orders = [json.loads(r["ack"]) for r in rows if r["ack"] and '"order"' in r["ack"]]
    assert orders and all(o["order_id"] >= 1 for o in orders)
    assert all(r["ack"] is None for r in rows if r["method"] == "GET")


def test_fixed_code_loses_nothing(fixed_run: tuple[Path, int]) -> None:
    out, _ = fixed_run
    verify = json.loads((out / "verify.json").read_text())
    assert verify["lost_writes"] == 0, verify["acknowledged"]["violations"][:10]
    assert verify["acknowledged"]["acknowledged"]["cart_add"] > 0
    # stock = start - ordered, checked against the baseline taken before the load
    assert (out / "baseline" / "products.parquet").is_file()
    assert verify["acknowledged"]["counts"]["lost-stock"] == 0
    assert "stock" not in verify["acknowledged"]["skipped"]  # no farmers: all checked
    report = json.loads((out / "report" / "report.json").read_text())
    assert "lost acknowledged writes" not in json.dumps(report)


def test_racy_delete_is_caught_after_the_run(racy_run: tuple[Path, int]) -> None:
    out, code = racy_run
    verify = json.loads((out / "verify.json").read_text())
    assert verify["ok"] is False
    assert verify["acknowledged"]["counts"]["lost-cart"] >= 1, verify["acknowledged"]
    assert all(v.startswith("lost-cart consumer=") for v in verify["acknowledged"]["violations"])
    assert code == 1  # FAIL, whatever the load numbers say
    summary = (out / "report" / "summary.md").read_text()
    assert "FAIL" in summary and "lost acknowledged writes" in summary


def test_verify_run_shows_the_lost_units(racy_run: tuple[Path, int], tmp_path: Path) -> None:
    """The stack is down after the run: ``verify --run`` shows the run's own check."""
    out, _ = racy_run
    result = run_cli(["verify", "--run", str(out), "--json"], tmp_path / "state")
    assert result.returncode == 1, result.stderr[-2000:]
    body = json.loads(result.stdout)
    assert body["counts"]["lost-cart"] >= 1
    assert body["violations"][0]["ids"]["consumer"]
