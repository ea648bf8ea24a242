"""File writes off the worker's event loop.

A Locust worker times every request on one gevent loop. A Parquet write blocks
that loop for as long as the disk takes (cooperative scheduling: a C call never
yields), so a disk busy with another tenant's writes would show as generator lag
and late requests. gevent's native thread pool runs the write on an OS thread
(pyarrow releases the GIL while it compresses and writes) while the loop goes on.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent


def in_native_thread[T](fn: Callable[[], T]) -> T:
    """Run ``fn`` on gevent's native thread pool; the calling greenlet waits, others run."""
    return gevent.get_hub().threadpool.apply(fn)
