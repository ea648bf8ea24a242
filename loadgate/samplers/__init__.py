"""Once a second, what the stack and the load generator are doing.

Latency alone cannot say *why* a step got slow; these samples can (a pool
with clients waiting, a CPU at 100 %, a generator that saturated before the
service did). Each sampler reads one source and returns rows of
``(source, metric, value, labels)``; :class:`~loadgate.samplers.loop.SamplerLoop`
calls them all at 1 Hz in a thread and writes the rows through ``ParquetBatches``
into ``samples/``. A sampler that fails (its service paused, killed by a fault)
is recorded as ``sampler_errors`` and the loop goes on.

Counters (transactions, keyspace hits) are stored raw; analysis turns them
into rates over its own windows, so no rate is computed twice. The metric names
are declared in :mod:`runformat.metrics`, which analysis reads too.

The modules, one a source of numbers:

- ``loop``: the row type, the :class:`Sampler` protocol and the 1 Hz loop.
- ``processes``: process trees (CPU, memory, fds, sockets), the host, containers.
- ``stores``: Postgres, PgBouncer and Redis, from their own statistics.
- ``service_metrics``: the marketplace service's Prometheus ``/metrics``.
- ``for_stack``: the samplers a stack gets, one per service it has.
"""
