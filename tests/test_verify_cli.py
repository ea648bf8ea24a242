"""``loadgate verify`` on a small real stack: clean data passes, a broken ledger fails.

Postgres and the Stripe mock are real (``local`` provider), the schema comes from
the marketplace's migrations and the data from plain SQL, so the command is tested
exactly as an operator runs it after a load run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import typer
from psycopg.rows import dict_row
from typer.testing import CliRunner

from loadgate import verify_cli
from marketplace.migrate import migrate
from marketplace.profiles import get_profile
from stack.config import StackConfig
from stack.stack import Stack

pytestmark = pytest.mark.services


def make_app() -> typer.Typer:
    """The command registered as the lead registers it in ``loadgate.cli``."""
    app = typer.Typer()
    app.command("verify")(verify_cli.verify)

    @app.callback()
    def main() -> None:  # keeps 'verify' a named sub-command, as in the real CLI
        """loadgate."""

    return app


APP = make_app()
RUNNER = CliRunner()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(StackConfig(provider="local", services=("postgres", "stripe"))) as s:
        migrate(s.url("postgres"), get_profile("phase0"))
        yield s


@pytest.fixture(scope="module")
def ledger_ids(stack: Stack) -> list[int]:
    """A consumer with a consistent ledger (10 granted, 3 spent) and a farm's product."""
    with psycopg.connect(stack.url("postgres"), autocommit=True, row_factory=dict_row) as conn:
        consumer = conn.execute(
            "INSERT INTO profiles (role, email, full_name) VALUES"
            " ('consumer', 'c@example.test', 'C') RETURNING id"
        ).fetchone()["id"]
        farmer = conn.execute(
            "INSERT INTO profiles (role, email, full_name) VALUES"
            " ('farmer', 'f@example.test', 'F') RETURNING id"
        ).fetchone()["id"]
        farm = conn.execute(
            "INSERT INTO farm_profiles (profile_id, farm_name) VALUES (%s, 'Farm') RETURNING id",
            (farmer,),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO products (farm_profile_id, name, category, price, stock_quantity)"
            " VALUES (%s, 'Kale', 'vegetables', 2.50, 12)",
            (farm,),
        )
        return [
            conn.execute(
                "INSERT INTO credits_ledger (consumer_id, amount, transaction_type, balance_after)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (consumer, amount, kind, balance),
            ).fetchone()["id"]
            for amount, kind, balance in (("10.00", "grant", "10.00"), ("-3.00", "spend", "7.00"))
        ]


def urls(stack: Stack) -> list[str]:
    return ["--database-url", stack.url("postgres"), "--stripe-url", stack.url("stripe")]


def test_clean_data_exits_0(stack: Stack, ledger_ids: list[int]) -> None:
    result = RUNNER.invoke(APP, ["verify", *urls(stack)])
    assert result.exit_code == 0, result.output
    assert "verify: OK" in result.output
    assert "ledger_entries=2" in result.output


def test_corrupted_ledger_exits_1_and_names_the_entry(stack: Stack, ledger_ids: list[int]) -> None:
    entry = ledger_ids[-1]
    with psycopg.connect(stack.url("postgres"), autocommit=True) as conn:
        conn.execute("UPDATE credits_ledger SET balance_after = 8.00 WHERE id = %s", (entry,))
        try:
            human = RUNNER.invoke(APP, ["verify", *urls(stack)], env={"COLUMNS": "200"})
            machine = RUNNER.invoke(APP, ["verify", *urls(stack), "--json"])
        finally:
            conn.execute("UPDATE credits_ledger SET balance_after = 7.00 WHERE id = %s", (entry,))
    assert human.exit_code == 1, human.output
    assert f"entry={entry}" in human.output and "ledger" in human.output

    assert machine.exit_code == 1, machine.output
    body = json.loads(machine.output)
    assert body["ok"] is False and body["stripe_checked"] is True
    (violation,) = body["violations"]
    assert violation["check"] == "ledger"
    assert violation["ids"]["entry"] == str(entry)
    assert "balance_after" in violation["message"]


def test_json_when_clean(stack: Stack, ledger_ids: list[int]) -> None:
    result = RUNNER.invoke(APP, ["verify", *urls(stack), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["ok"] is True and body["violations"] == []
    assert body["checked"]["ledger_entries"] == 2 and body["checked"]["products"] == 1


def test_urls_from_the_running_stack(
    stack: Stack, ledger_ids: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stack.state import write_state

    monkeypatch.setenv("LOADGATE_STATE_DIR", str(tmp_path))
    write_state(stack, detached=False)  # this process is the supervisor: the state is live
    result = RUNNER.invoke(APP, ["verify", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["ok"] is True and body["stripe_checked"] is True


def test_no_stack_up_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADGATE_STATE_DIR", str(tmp_path))
    result = RUNNER.invoke(APP, ["verify"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "no stack is up" in errors[0] and "loadgate stack up" in errors[0]
    assert "Traceback" not in result.output


def test_unreachable_database_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOADGATE_STATE_DIR", str(tmp_path))  # no stack to borrow Stripe from
    dead = "postgresql://loadgate:loadgate@127.0.0.1:1/blueharvests?connect_timeout=2"
    result = RUNNER.invoke(APP, ["verify", "--database-url", dead])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: verify could not run")
