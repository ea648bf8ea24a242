"""Service logs streamed into the run directory while the run goes.

Copying logs at the end loses them when the harness is killed (the local provider's
temporary directories are reaped, containers removed), and a service that crashed
mid-run is exactly when its last lines matter. :class:`LogStreamer` copies what each
service writes into ``RUN/logs/<service>.log`` as it goes:

- ``local``: new bytes of the service's log file since the last copy, once a second
  (a service started again after a fault appends to the same file);
- ``containers``: one follower thread per container holds the engine's log stream open
  (``docker logs --follow``) and writes lines as they arrive. Polling instead (an
  inspect and a ``logs --since`` call per container per second) was an eighth of the
  harness's CPU under load (issue 10). When the stream ends (the container stopped,
  e.g. killed by a fault) the follower asks again every second, ``--since`` the last
  line seen, so a restarted container is followed again and its lines are neither lost
  nor doubled (timestamps on, stripped before writing).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stack.stack import Stack

INTERVAL_S = 1.0
FOLLOW_READ_TIMEOUT_S = 600.0
"""A follower's socket timeout: a quiet container's stream is reopened after this long
(harmless: ``--since`` the last line), and a hung engine cannot hold it for ever."""


class LogStreamer:
    """Copies every service's new log output into ``logs_dir`` while the run goes."""

    def __init__(self, stack: Stack, logs_dir: Path, interval_s: float = INTERVAL_S) -> None:
        self.stack = stack
        self.logs_dir = Path(logs_dir)
        self.interval_s = interval_s
        self._offsets: dict[str, int] = {}
        self._since: dict[str, dt.datetime] = {}
        self._partial: dict[str, str] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="logs", daemon=True)
        self._followers: dict[str, threading.Thread] = {}
        self._streams: dict[str, Any] = {}
        self._client: Any = None

    def start(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, after a last copy (call before the stack is taken down)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for stream in list(self._streams.values()):
            with contextlib.suppress(Exception):
                stream.close()  # wakes the follower blocked on the socket
        for follower in self._followers.values():
            follower.join(timeout=10)
        self._followers.clear()
        self.copy_once()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def tail(self, name: str, lines: int = 20) -> list[str]:
        """The last lines copied for ``name`` (after copying what is new)."""
        self.copy_once()
        path = self.path(name)
        if not path.exists():
            return []
        return path.read_text(errors="replace").splitlines()[-lines:]

    def copy_once(self) -> None:
        """Copy what is new of every service not followed by a live follower thread."""
        with self._lock:
            for service in list(self.stack.services.values()):
                with contextlib.suppress(Exception):  # a log must never end a run
                    if service.log_path is not None:
                        self._copy_file(service.name, service.log_path)
                    elif self._polled(service):
                        self._copy_container(service)

    def _loop(self) -> None:
        while True:
            self.copy_once()
            self._follow_containers()
            if self._stop.wait(self.interval_s):
                return

    # --- local files --------------------------------------------------------------------

    def _copy_file(self, name: str, source: Path) -> None:
        if not source.exists():
            return
        offset = self._offsets.get(name, 0)
        size = source.stat().st_size
        if size < offset:  # truncated or replaced: start over
            offset = 0
        if size == offset:
            return
        with source.open("rb") as f:
            f.seek(offset)
            data = f.read(size - offset)
        with self.path(name).open("ab") as out:
            out.write(data)
        self._offsets[name] = offset + len(data)

    # --- containers ---------------------------------------------------------------------

    def _polled(self, service: Any) -> bool:
        """A container service that no live follower streams (before start, after stop)."""
        return (
            bool(service.container_id)
            and self.stack.provider is not None
            and (not self._following(service.name))
        )

    def _following(self, name: str) -> bool:
        follower = self._followers.get(name)
        return follower is not None and follower.is_alive()

    def _follow_containers(self) -> None:
        """Start a follower for each container service that has none (e.g. a new one)."""
        if self.stack.provider is None:
            return
        for service in list(self.stack.services.values()):
            if self._stop.is_set():
                return
            if service.log_path is None and self._polled(service):
                follower = threading.Thread(
                    target=self._follow, args=(service.name,), name=f"logs-{service.name}"
                )
                follower.daemon = True
                self._followers[service.name] = follower
                follower.start()

    def _engine(self) -> Any:
        """The followers' own engine client: streams held open for the whole run would
        otherwise take the provider's pooled connections."""
        with self._lock:
            if self._client is None:
                from stack.engine import connect_engine

                self._client = connect_engine(timeout=FOLLOW_READ_TIMEOUT_S)
            return self._client

    def _follow(self, name: str) -> None:
        """Hold ``name``'s log stream open until stopped, reopening it when it ends."""
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a log must never end a run
                service = self.stack.services[name]
                since = self._since.get(name)
                stream = self._engine().api.logs(
                    service.container_id,
                    stdout=True,
                    stderr=True,
                    timestamps=True,
                    stream=True,
                    follow=True,
                    since=since.timestamp() if since is not None else None,
                )
                self._streams[name] = stream
                if self._stop.is_set():
                    stream.close()
                self._take(name, stream)
            self._streams.pop(name, None)
            self._stop.wait(self.interval_s)

    def _take(self, name: str, chunks: Iterable[bytes]) -> None:
        """Write the complete lines of a stream's chunks as they arrive."""
        try:
            for chunk in chunks:
                text = self._partial.pop(name, "") + chunk.decode(errors="replace")
                head, newline, rest = text.rpartition("\n")
                if rest:
                    self._partial[name] = rest
                if newline:
                    self._write(name, head.split("\n"))
        finally:
            if name in self._partial:  # the stream ended mid-line: keep what came
                self._write(name, [self._partial.pop(name)])

    def _copy_container(self, service: Any) -> None:
        client = self.stack.provider.client  # type: ignore[union-attr]
        since = self._since.get(service.name)
        raw = client.api.logs(
            service.container_id, stdout=True, stderr=True, timestamps=True, since=since
        )
        self._write(service.name, raw.decode(errors="replace").splitlines())

    def _write(self, name: str, raw_lines: list[str]) -> None:
        """Append lines not copied yet, their engine timestamps stripped."""
        with self._write_lock:
            since = self._since.get(name)
            lines = []
            for line in raw_lines:
                stamp, _, text = line.partition(" ")
                when = _parse_stamp(stamp)
                if when is None:
                    lines.append(line)
                    continue
                if since is not None and when <= since:
                    continue  # already copied (docker's --since is inclusive)
                since = self._since[name] = when
                lines.append(text)
            if lines:
                with self.path(name).open("a") as out:
                    out.write("\n".join(lines) + "\n")


def _parse_stamp(stamp: str) -> dt.datetime | None:
    """Docker's RFC 3339 timestamp with nanoseconds (cut to µs), or None."""
    if not stamp.endswith("Z") or "T" not in stamp:
        return None
    head, _, frac = stamp[:-1].partition(".")
    try:
        base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    micros = int((frac + "000000")[:6]) if frac else 0
    return base.replace(microsecond=micros)
