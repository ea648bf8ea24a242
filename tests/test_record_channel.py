"""scenarios.record_channel: batches over Locust's message channel, written once, accounted.

The two ends are wired through an in-process stand-in for Locust's channel (our own
logic only; ``tests/test_remote_workers.py`` runs the real thing across network
namespaces): what the worker's recorders flush arrives in the run directory with
every column it had, a repeated batch is written once, and what a worker captured
but never delivered is counted as lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.lost_data import channel_lost_in_window
from analysis.validity import record_delivery
from runformat.records import ParquetBatches, set_sink
from scenarios import record_channel as rc


class Channel:
    """Two runners joined like Locust's master and one worker (messages delivered at once)."""

    def __init__(self) -> None:
        self.master = SimpleNamespace(handlers={}, clients={}, sent=[])
        self.worker = SimpleNamespace(handlers={}, sent=[])
        self.master.register_message = lambda t, h: self.master.handlers.__setitem__(t, h)
        self.worker.register_message = lambda t, h: self.worker.handlers.__setitem__(t, h)
        self.drop = False
        self.master.send_message = self._to_worker
        self.worker.send_message = self._to_master

    def _to_master(self, kind, data=None, client_id=None):
        self.worker.sent.append(kind)
        if not self.drop:
            msg = SimpleNamespace(type=kind, data=data, node_id="w1")
            self.master.handlers[kind](environment=None, msg=msg)

    def _to_worker(self, kind, data=None, client_id=None):
        assert client_id == "w1"
        self.worker.handlers[kind](environment=None, msg=SimpleNamespace(type=kind, data=data))


@pytest.fixture
def wired(tmp_path):
    channel = Channel()
    run_dir = tmp_path / "run"
    plan, creds = tmp_path / "plan.json", tmp_path / "credentials.csv"
    plan.write_text('{"phase": 1}')
    creds.write_text("role,profile_id,email,token\nconsumer,1,a@b,t\n")
    collector = rc.RecordCollector(channel.master, run_dir)
    collector.install(str(plan), str(creds))
    shipper = rc.RecordShipper(channel.worker, "hostA-7", tmp_path / "worker")
    shipper.install()
    yield channel, collector, shipper, run_dir
    shipper.close()
    set_sink(None)


def test_flushed_batches_arrive_with_every_column_and_are_acknowledged(wired, tmp_path):
    channel, collector, shipper, run_dir = wired
    # A schema the transport has never seen: an extra nullable column travels as is.
    schema = pa.schema([("ts_us", pa.int64()), ("ack_id", pa.string())])
    batches = ParquetBatches(tmp_path / "nowhere" / "events", "hostA-7", schema)
    for i in range(5):
        batches.append((i, None if i % 2 else f"id{i}"))
    assert batches.flush() == 5
    assert not (tmp_path / "nowhere").exists()  # nothing written on the worker
    (path,) = (run_dir / "events").glob("*.parquet")
    table = pq.read_table(path)
    assert table.schema.names == ["ts_us", "ack_id"]
    assert table.column("ack_id").to_pylist() == ["id0", None, "id2", None, "id4"]
    assert shipper.pending == {} and shipper.acked["events"] == 5
    shipper.captured = lambda: {"events": batches.rows_appended}
    shipper.tally(final=True)
    account = collector.accounting()["workers"]["hostA-7"]
    assert account["finished"]
    assert account["streams"]["events"] == {
        "captured": 5, "sent": 5, "acked": 5, "written": 5, "lost": 0
    }  # fmt: skip


def test_the_worker_gets_the_masters_files_and_uses_its_copies(wired):
    _, _, shipper, _ = wired
    assert shipper.files_received
    options = SimpleNamespace(
        loadgate_plan="/master/run/plan.json",
        loadgate_credentials="/master/creds.csv",
        loadgate_run_dir="/master/run",
    )
    shipper.localise(options)
    assert Path(options.loadgate_plan).read_text() == '{"phase": 1}'
    assert Path(options.loadgate_credentials).read_text().startswith("role,")
    assert options.loadgate_run_dir == str(shipper.workdir)


def test_a_repeated_batch_is_written_once(wired):
    channel, collector, _, run_dir = wired
    table = pa.table({"ts_us": [1, 2, 3]})
    message = {"worker": "hostA-7", "stream": "events", "name": "hostA-7-000009", "seq": 9,
               "rows": 3, "ipc": rc.to_ipc(table)}  # fmt: skip
    for _ in range(2):
        collector.on_records(msg=SimpleNamespace(data=message, node_id="w1"))
    assert len(list((run_dir / "events").glob("*.parquet"))) == 1
    account = collector.accounting()["workers"]["hostA-7"]
    assert account["streams"]["events"]["written"] == 3 and account["duplicates"] == 1


def test_large_batches_are_cut_to_bounded_messages(wired, monkeypatch):
    _, collector, shipper, run_dir = wired
    monkeypatch.setattr(rc, "MAX_BATCH_ROWS", 4)
    shipper.send("events", "hostA-7-000001", pa.table({"ts_us": list(range(10))}))
    files = sorted((run_dir / "events").glob("*.parquet"))
    assert [pq.read_metadata(f).num_rows for f in files] == [4, 4, 2]
    assert collector.accounting()["events"]["written"] == 10


def test_records_the_master_never_got_are_lost(wired):
    """A worker dies: what it reported captured but never delivered is the loss."""
    channel, collector, shipper, run_dir = wired
    shipper.send("events", "hostA-7-000001", pa.table({"ts_us": [1, 2]}))
    channel.drop = True  # the connection is gone: the next batch never arrives
    shipper.send("events", "hostA-7-000002", pa.table({"ts_us": [3, 4, 5]}))
    assert set(shipper.pending.values()) == {("events", 3)}  # unacknowledged
    channel.drop = False
    shipper.captured = lambda: {"events": 7}  # two more still in its buffer
    shipper.tally()
    collector.write_accounting()
    accounting = json.loads((run_dir / rc.ACCOUNTING_FILE).read_text())
    events = accounting["workers"]["hostA-7"]["streams"]["events"]
    assert events == {"captured": 7, "sent": 5, "acked": 2, "written": 2, "lost": 5}
    assert not accounting["workers"]["hostA-7"]["finished"]


def test_refuses_names_outside_the_record_streams(wired):
    _, collector, _, run_dir = wired
    for stream, name in (("../etc", "x"), ("events", "../x")):
        message = {"worker": "w", "stream": stream, "name": name, "seq": 1, "rows": 1,
                   "ipc": rc.to_ipc(pa.table({"a": [1]}))}  # fmt: skip
        collector.on_records(msg=SimpleNamespace(data=message, node_id="w1"))
    assert not any(run_dir.parent.glob("etc*")) and not (run_dir / "x.parquet").exists()


def _run_with(workers: dict) -> SimpleNamespace:
    return SimpleNamespace(manifest={"record_channel": {"workers": workers}})


def test_loss_counts_in_the_window_the_worker_stopped_in():
    def account(captured: int, written: int, seen_s: int) -> dict:
        events = {"captured": captured, "sent": written, "acked": written, "written": written,
                  "lost": captured - written}  # fmt: skip
        return {"streams": {"events": events}, "last_seen_us": seen_s * 1_000_000,
                "finished": captured == written}  # fmt: skip

    lost, fine = account(50, 40, 5), account(9, 9, 9)
    run = _run_with({"a": lost, "b": fine})
    assert channel_lost_in_window(run, 0, 6_000_000) == 10
    assert channel_lost_in_window(run, 6_000_000, 10_000_000) == 0
    check = record_delivery(run)
    assert check is not None and check.ok is False and check.observed == 10
    assert "a: sent 40, acked 40, written 40, lost 10 (stopped before the end)" in check.detail
    assert record_delivery(SimpleNamespace(manifest={})) is None


def test_ipc_round_trip_is_compressed():
    table = pa.table({"ts_us": list(range(10_000)), "name": ["GET /products"] * 10_000})
    payload = rc.to_ipc(table)
    assert rc.from_ipc(payload).equals(table)
    assert len(payload) < table.nbytes / 4


def test_the_master_waits_only_for_stopping_workers(wired, monkeypatch):
    """A stopping worker's last batch is waited for; a running or missing one's is not."""
    channel, collector, shipper, _ = wired
    naps: list[float] = []
    monkeypatch.setattr(rc.gevent, "sleep", naps.append)
    for state, waits in (("running", False), ("missing", False), ("stopping", True)):
        channel.master.clients = {"w1": SimpleNamespace(id="w1", state=state)}
        naps.clear()
        collector.wait_for_finals(timeout_s=0.05)
        assert bool(naps) == waits, state
    shipper.tally(final=True)  # the final tally ends the wait at once
    naps.clear()
    collector.wait_for_finals(timeout_s=5)
    assert naps == []


def test_a_running_worker_is_told_to_quit_and_its_final_batch_waited_for(wired, monkeypatch):
    """Locust's headless end is ``quit`` without ``stop``: the collector tells a running
    shipping worker to quit itself and waits for its final tally; a missing one is left
    alone."""
    channel, collector, shipper, _ = wired
    told: list[tuple[str, str]] = []
    channel.master.server = SimpleNamespace(
        send_to_client=lambda m: told.append((m.type, m.node_id))
    )
    monkeypatch.setattr(rc, "quit_message", lambda c: SimpleNamespace(type="quit", node_id=c))
    naps: list[float] = []
    monkeypatch.setattr(rc.gevent, "sleep", naps.append)
    channel.master.clients = {"w1": SimpleNamespace(id="w1", state="missing")}
    collector.quit_shipping_workers()
    assert told == []
    channel.master.clients = {"w1": SimpleNamespace(id="w1", state="running")}
    collector.quit_shipping_workers()
    assert told == [("quit", "w1")]
    collector.wait_for_finals(timeout_s=0.05)
    assert naps, "a running worker told to quit is waited for"
    shipper.tally(final=True)
    naps.clear()
    collector.wait_for_finals(timeout_s=5)
    assert naps == []
    collector.quit_shipping_workers()  # finished: not told again
    assert told == [("quit", "w1")]


def test_loadgate_worker_ships_records_without_a_run_dir(monkeypatch, tmp_path):
    from loadgate import run_cli

    calls = []
    monkeypatch.setattr(run_cli.os, "execv", lambda exe, args: calls.append(args))
    run_cli.worker(master="10.0.0.1", master_port=5557, run_dir=None)
    run_cli.worker(master="10.0.0.1", master_port=5557, run_dir=tmp_path)
    assert "--loadgate-ship-records" in calls[0] and "--loadgate-run-dir" not in calls[0]
    assert "--loadgate-ship-records" not in calls[1]
    assert calls[1][calls[1].index("--loadgate-run-dir") + 1] == str(tmp_path)
