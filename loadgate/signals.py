"""Turning SIGTERM into an exception, so teardown runs in ``finally`` blocks.

Python already turns SIGINT (Ctrl-C) into ``KeyboardInterrupt``; a SIGTERM
from CI, systemd or ``stack down`` would otherwise kill the harness without
unwinding, leaving the stack behind. ``Terminated`` derives from
``KeyboardInterrupt`` so ``except Exception`` blocks never swallow it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"received signal {signum}")


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
