"""Raw records over Locust's own message channel: remote workers need no shared disk.

A worker on another machine cannot write into the master's run directory. With
``--loadgate-ship-records`` (``loadgate worker`` without ``--run-dir``) every batch
its recorders flush (request events, generator samples, open-model arrivals:
whatever :class:`runformat.records.ParquetBatches` would have written) goes to the
master instead, as Arrow IPC bytes in a Locust custom message
(``runner.send_message`` / ``register_message``, the channel Locust already keeps
open; the harness adds no transport of its own). The master writes each batch
into the run directory under the name a local worker would have used, then
acknowledges it. Batches are cut at ``MAX_BATCH_ROWS`` rows, so one message stays
bounded (~1-2 MB) whatever the rate.

Accounting, per worker and stream: *sent* (batches handed to the channel),
*acked* (the worker saw the master's acknowledgement), *written* (rows the master
wrote; a batch is written once, a duplicate is acknowledged and dropped) and
*lost* = max(captured, sent) - written, where *captured* is the worker's own count
of recorded rows, reported every ``TALLY_S`` seconds. A worker killed mid-run
thus shows as lost its unflushed buffer and any batch in flight, except what it
recorded after its last tally (at most ``TALLY_S`` seconds). The master writes the
accounting to ``locust/records.json``; ``loadgate run`` copies it into the
manifest (``record_channel``) and analysis counts the loss against the gate
window's coverage.

The worker also needs the master's plan and credentials *files*, which Locust's
options carry only as paths: it asks for them with a hello message and keeps
copies in its own working directory.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import pyarrow as pa

from runformat.records import set_sink, write_batch
from runformat.schemas import RECORD_CHANNEL_FILE as ACCOUNTING_FILE

HELLO = "loadgate_hello"
FILES = "loadgate_files"
RECORDS = "loadgate_records"
ACK = "loadgate_records_ack"
TALLY = "loadgate_records_tally"
FINAL = "loadgate_records_final"
MAX_BATCH_ROWS = 20_000
TALLY_S = 0.5
FINAL_WAIT_S = 15.0
STREAMS = ("events", "samples", "arrivals")


def to_ipc(table: pa.Table) -> bytes:
    """A table as one Arrow IPC stream (schema included, zstd-compressed buffers)."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


def _zero() -> dict[str, int]:
    return dict.fromkeys(STREAMS, 0)


class RecordShipper:
    """Worker side: the process-wide batch sink that sends every batch to the master."""

    def __init__(self, runner: Any, worker_id: str, workdir: Path) -> None:
        self.runner, self.worker, self.workdir = runner, worker_id, Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.seq = 0
        self.pending: dict[int, tuple[str, int]] = {}
        self.sent, self.acked = _zero(), _zero()
        self.captured: Any = _zero
        self.files_received = False
        self._tally: Any = None

    def install(self) -> None:
        """Become this process's batch sink and start the tally."""
        set_sink(self.send)
        self.runner.register_message(ACK, self.on_ack)
        self.runner.register_message(FILES, self.on_files)
        self.runner.send_message(HELLO, {"worker": self.worker})
        self._tally = gevent.spawn(self._tally_loop)

    def send(self, stream: str, name: str, table: pa.Table) -> None:
        parts = range(0, table.num_rows, MAX_BATCH_ROWS)
        for part, start in enumerate(parts):
            piece = table.slice(start, MAX_BATCH_ROWS)
            self.seq += 1
            suffix = f"-{part}" if len(parts) > 1 else ""
            message = {
                "worker": self.worker,
                "stream": stream,
                "name": f"{name}{suffix}",
                "seq": self.seq,
                "rows": piece.num_rows,
                "ipc": to_ipc(piece),
            }
            self.pending[self.seq] = (stream, piece.num_rows)  # before: the ack may be quick
            try:
                self.runner.send_message(RECORDS, message)
            except Exception:  # noqa: BLE001 - a broken channel loses this batch, counted
                self.pending.pop(self.seq, None)  # captured, never sent: counted as lost
                continue
            self.sent[stream] = self.sent.get(stream, 0) + piece.num_rows

    def on_ack(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        stream, rows = self.pending.pop(int(msg.data["seq"]), ("", 0))
        if stream:
            self.acked[stream] = self.acked.get(stream, 0) + rows

    def on_files(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        """Keep the master's plan and credentials in this worker's own directory."""
        for key, name in (("plan", "plan.json"), ("credentials", "credentials.csv")):
            data = msg.data.get(key)
            if data is not None:
                (self.workdir / name).write_bytes(gzip.decompress(data))
        self.files_received = True

    def localise(self, options: Any) -> None:
        """Point the master's paths (set on every spawn) at this worker's copies."""
        options.loadgate_run_dir = str(self.workdir)
        for key, name in (
            ("loadgate_plan", "plan.json"),
            ("loadgate_credentials", "credentials.csv"),
        ):
            if getattr(options, key, "") and (self.workdir / name).exists():
                setattr(options, key, str(self.workdir / name))

    def tally(self, final: bool = False) -> None:
        captured = self.captured()
        message = {"worker": self.worker, "captured": captured, "sent": dict(self.sent)}
        self.runner.send_message(FINAL if final else TALLY, message)

    def _tally_loop(self) -> None:
        while True:
            gevent.sleep(TALLY_S)
            with contextlib.suppress(Exception):
                self.tally()

    def close(self) -> None:
        if self._tally is not None:
            self._tally.kill(block=False)
            self._tally = None


@dataclass
class WorkerAccount:
    """What the master knows of one shipping worker."""

    client_id: str = ""
    sent: dict[str, int] = field(default_factory=_zero)
    captured: dict[str, int] = field(default_factory=_zero)
    written: dict[str, int] = field(default_factory=_zero)
    batches: int = 0
    duplicates: int = 0
    final: bool = False
    last_seen_us: int = 0
    last_record_us: int = 0
    seqs: set[int] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        streams = {}
        for s in STREAMS:
            sent = max(self.sent.get(s, 0), self.written.get(s, 0))
            captured = max(self.captured.get(s, 0), sent)
            written = self.written.get(s, 0)
            streams[s] = {
                "captured": captured,
                "sent": sent,
                "acked": written,
                "written": written,
                "lost": captured - written,
            }
        return {
            "streams": streams,
            "batches": self.batches,
            "duplicates": self.duplicates,
            "finished": self.final,
            "last_seen_us": self.last_seen_us,
        }


class RecordCollector:
    """Master side: write shipped batches into the run directory, ack, account."""

    def __init__(self, runner: Any, run_dir: Path) -> None:
        self.runner, self.run_dir = runner, Path(run_dir)
        self.workers: dict[str, WorkerAccount] = {}
        self.plan = ""
        self.credentials = ""
        self.asked_to_quit: set[str] = set()

    def install(self, plan: str, credentials: str) -> None:
        self.plan, self.credentials = plan, credentials
        for kind, handler in (
            (HELLO, self.on_hello),
            (RECORDS, self.on_records),
            (TALLY, self.on_tally),
            (FINAL, self.on_final),
        ):
            self.runner.register_message(kind, handler)

    def _account(self, msg: Any) -> WorkerAccount:
        account = self.workers.setdefault(str(msg.data["worker"]), WorkerAccount())
        account.client_id = msg.node_id
        account.last_seen_us = time.time_ns() // 1000
        return account

    def on_hello(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        self._account(msg)
        files = {}
        for key, path in (("plan", self.plan), ("credentials", self.credentials)):
            if path and Path(path).is_file():
                files[key] = gzip.compress(Path(path).read_bytes())
        self.runner.send_message(FILES, files, client_id=msg.node_id)

    def on_records(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        data, account = msg.data, self._account(msg)
        seq = int(data["seq"])
        if seq in account.seqs:
            account.duplicates += 1
        else:
            table = from_ipc(data["ipc"])
            stream = str(data["stream"])
            if stream not in STREAMS or "/" in str(data["name"]):
                return  # never write outside the run directory's record streams
            write_batch(self.run_dir / stream, _file_name(data["worker"], data["name"]), table)
            account.seqs.add(seq)
            account.written[stream] = account.written.get(stream, 0) + table.num_rows
            account.batches += 1
            account.last_record_us = account.last_seen_us
        self.runner.send_message(ACK, {"seq": seq}, client_id=msg.node_id)

    def on_tally(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        account = self._account(msg)
        for key in ("captured", "sent"):
            for stream, rows in msg.data.get(key, {}).items():
                getattr(account, key)[stream] = max(int(rows), getattr(account, key).get(stream, 0))

    def on_final(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        self.on_tally(environment, msg)
        self._account(msg).final = True

    def quit_shipping_workers(self) -> None:
        """Tell every live shipping worker to quit, so its last batch comes before the end.

        Locust ends a headless run whose shape is done with ``MasterRunner.quit()``, which
        stops the master without telling the workers (``stop(send_stop_to_client=False)``)
        and sends ``quit`` only to workers still in its client list, then listens for 0.5 s
        more. Found with the real stack across hosts: a live remote worker's last ~2 s of
        records lost in 2 of 5 runs. So the collector sends each one Locust's ``quit``
        itself, while the master still listens (:meth:`wait_for_finals`): the worker stops
        its users, flushes, sends its final tally and then ``quit``, in that order on the
        channel, and exits.

        Not Locust's ``stop``: a worker answers it with ``client_stopped`` (the master then
        drops it from its client list, so never sends it ``quit``) and then sleeps for the
        stop timeout (60 s) before it reads another message: every remote worker outlived
        its run by a minute.
        """
        states = {c.id: c.state for c in self.runner.clients.values()}
        for account in self.workers.values():
            if not account.final and states.get(account.client_id) in ("running", "spawning"):
                self.runner.server.send_to_client(quit_message(account.client_id))
                self.asked_to_quit.add(account.client_id)

    def wait_for_finals(self, timeout_s: float = FINAL_WAIT_S) -> None:
        """At the test's end: give every stopping shipping worker time for its last batch.

        A worker told to stop or quit (by Locust, or by :meth:`quit_shipping_workers`)
        sends its last batch and final tally before it reports stopped or quits (either
        drops it from the master's client list: nothing to wait for). Workers still
        running that nobody told to quit, or missing ones, send nothing more here, so they
        are not waited for.
        """
        deadline = time.monotonic() + timeout_s
        busy = ("running", "spawning", "missing")
        while time.monotonic() < deadline:
            live = {
                c.id
                for c in self.runner.clients.values()
                if c.state not in busy or (c.id in self.asked_to_quit and c.state != "missing")
            }
            waiting = [a for a in self.workers.values() if not a.final and a.client_id in live]
            if not waiting:
                return
            gevent.sleep(0.2)

    def accounting(self) -> dict[str, Any]:
        workers = {w: a.as_json() for w, a in sorted(self.workers.items())}
        totals = {
            k: sum(w["streams"]["events"][k] for w in workers.values())
            for k in ("captured", "sent", "acked", "written", "lost")
        }
        return {"transport": "locust-messages", "events": totals, "workers": workers}

    def write_accounting(self) -> None:
        path = self.run_dir / ACCOUNTING_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(self.accounting(), indent=2))
        partial.replace(path)


def quit_message(client_id: str) -> Any:
    """Locust's own ``quit`` for one worker (imported late: locust patches on import)."""
    from locust.rpc import Message

    return Message("quit", None, client_id)


def _file_name(worker: str, name: str) -> str:
    """The batch's file name in the run directory, unique across machines."""
    return name if str(worker) in name else f"{worker}-{name}"


def default_workdir() -> Path:
    """A remote worker's private directory for the master's files and nothing else."""
    configured = os.environ.get("LOADGATE_WORKER_DIR", "")
    return Path(configured) if configured else Path.cwd() / f"loadgate-worker-{os.getpid()}"
