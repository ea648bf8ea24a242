"""Service logs streamed into the run directory while the run goes.

Copying logs at the end loses them when the harness is killed (the local provider's
temporary directories are reaped, containers removed), and a service that crashed
mid-run is exactly when its last lines matter. :class:`LogStreamer` copies what each
service writes into ``RUN/logs/<service>.log`` once a second:

- ``local``: new bytes of the service's log file since the last copy (a service
  started again after a fault appends to the same file);
- ``containers``: ``docker logs --since`` the last line seen (timestamps on, so a
  restarted container's lines are neither lost nor doubled), the timestamp stripped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from pathlib import Path
from typing import Any

from stack.stack import Stack

INTERVAL_S = 1.0


class LogStreamer:
    """Copies every service's new log output into ``logs_dir`` once a second."""

    def __init__(self, stack: Stack, logs_dir: Path, interval_s: float = INTERVAL_S) -> None:
        self.stack = stack
        self.logs_dir = Path(logs_dir)
        self.interval_s = interval_s
        self._offsets: dict[str, int] = {}
        self._since: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="logs", daemon=True)

    def start(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, after a last copy (call before the stack is taken down)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.copy_once()

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
        with self._lock:
            for service in list(self.stack.services.values()):
                with contextlib.suppress(Exception):  # a log must never end a run
                    if service.log_path is not None:
                        self._copy_file(service.name, service.log_path)
                    elif service.container_id and self.stack.provider is not None:
                        self._copy_container(service)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.copy_once()

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

    def _copy_container(self, service: Any) -> None:
        client = self.stack.provider.client  # type: ignore[union-attr]
        container = client.containers.get(service.container_id)
        since = self._since.get(service.name)
        raw = container.logs(stdout=True, stderr=True, timestamps=True, since=since)
        lines = []
        for line in raw.decode(errors="replace").splitlines():
            stamp, _, text = line.partition(" ")
            when = _parse_stamp(stamp)
            if when is None:
                lines.append(line)
                continue
            if since is not None and when <= since:
                continue  # already copied (docker's --since is inclusive)
            self._since[service.name] = when
            lines.append(text)
        if lines:
            with self.path(service.name).open("a") as out:
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
