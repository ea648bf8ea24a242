"""What the stack builds once and caches (the OSM extract, the OSRM map) shares:
where the cache lives, a lock so two processes never build the same thing at once,
and the line of a failed build tool's output worth quoting.

Hand-written over ``fcntl.flock`` rather than a lock library: one polled,
bounded wait is all that is needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from stack.errors import StackError

LOCK_TIMEOUT_S = 3600.0

Progress = Callable[[str], None]
"""Where a long build reports what it is doing (one line a call)."""


def cache_root() -> Path:
    """``$LOADGATE_CACHE_DIR``, else ``~/.cache/loadgate``."""
    env = os.environ.get("LOADGATE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "loadgate"


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive ``flock`` so two processes never build the same thing at once.

    Polled rather than blocking so the wait is bounded.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"waited {timeout:.0f} s for lock {path}: is another build hung? "
                        "Kill it or delete the lock file"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def last_line(text: str, prefer: Sequence[str] = ()) -> str:
    """The line of a failed tool's output worth quoting in an error: the last one
    naming a word of ``prefer``, else the last one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if any(word in line.lower() for word in prefer):
            return line
    return lines[-1] if lines else "no output"
