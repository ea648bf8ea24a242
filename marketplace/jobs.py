"""The async job queue (seed §4.3) on arq: batch generation, payouts, payment retries.

Each web worker also runs the queue's consumers in the background (same process,
same pools), so the service needs no extra process to drain them. One arq worker
per queue, with the seed's numbers (``marketplace.profiles``): batch generation
runs 5 at a time and is tried 3 times with exponential backoff from 5 s; payouts run
3 at a time, wait 60 s before their first try and are tried 5 times. Jobs are
idempotent (batching skips already-batched orders; payouts and payments only move
from pending), so retries are safe.

The queue keeps its own counters in Redis (hash :data:`COUNTS_KEY`, one field per
``{queue}:{outcome}``): ``enqueued`` when a job is accepted, then exactly one of
``completed`` / ``failed`` when it ends for good (``retried`` per extra try). They
live with the queue, not in a worker process, so they survive worker restarts and
every worker's ``/metrics`` exports the same totals -- the 1 Hz samplers record
them and ``analysis/jobs.py`` turns them into the seed's job completion rate.

Redis is not persistent here (as the seed's Upstash cache is not a system of record):
when it dies the queue's consumers are restarted once it answers again
(:meth:`JobQueue._supervise`), and with breakers on (phase3) a reconciler re-enqueues
every deferred payment whose retry chain was lost with it (:data:`RECONCILE_EVERY_S`),
so a ``payment_pending`` order is settled after the outage, never forgotten.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job
from arq.worker import Retry, Worker, func

from marketplace import metrics
from marketplace.errors import QueueUnavailable
from marketplace.state import AppState

log = logging.getLogger("marketplace.jobs")

QUEUE_PREFIX = "marketplace:jobs"
COUNTS_KEY = f"{QUEUE_PREFIX}:counts"
OUTCOMES = ("enqueued", "completed", "failed", "retried")
PAYMENT_RETRY_DELAY_S = 5.0
PAYMENT_MAX_TRIES = 20
PAYMENT_CONCURRENCY = 5
"""Payment retries (phase3 fallback, §5.5): the seed gives no numbers; ours."""
BATCH_BACKOFF_S = 5.0
"""§4.3 ``backoff: { type: 'exponential', delay: 5000 }``."""
ARQ_SLACK_TRIES = 2
"""arq re-runs a job interrupted by a worker shutdown; allow that beyond our attempts."""
RECONCILE_EVERY_S = 15.0
RECONCILE_AFTER_S = 30.0
"""Deferred payments older than this are re-enqueued (the per-order job id makes that a
no-op while their chain still exists). Ours: a few retry periods (5 s each)."""
RESTART_DELAY_S = 1.0
ENQUEUE_TIMEOUT_S = 2.0


def queue_of(function: str) -> str:
    """The queue (and counter prefix) a job function belongs to."""
    return {
        "generate_batches_job": "batches",
        "process_payout_job": "payouts",
        "retry_payment_job": "payments",
    }[function]


def _queue_name(queue: str) -> str:
    return f"{QUEUE_PREFIX}:{queue}"


def _state(ctx: dict[str, Any]) -> AppState:
    return ctx["market"]


async def count(redis: Any, queue: str, outcome: str) -> None:
    """One more job of ``queue`` with ``outcome`` in the queue's own counters."""
    await redis.hincrby(COUNTS_KEY, f"{queue}:{outcome}", 1)


async def _attempt(
    ctx: dict[str, Any],
    queue: str,
    attempts: int,
    backoff: Callable[[int], float],
    work: Callable[[bool], Awaitable[Any]],
) -> Any:
    """Run one try of a job; retry (with ``backoff(try)``) until ``attempts`` is used up."""
    job_try = int(ctx.get("job_try", 1))
    final = job_try >= attempts
    try:
        result = await work(final)
    except Exception as exc:
        if not final:
            await count(ctx["redis"], queue, "retried")
            log.info("%s job try %d failed (%s); again later", queue, job_try, exc)
            raise Retry(defer=backoff(job_try) or None) from exc
        await count(ctx["redis"], queue, "failed")
        raise
    await count(ctx["redis"], queue, "completed")
    return result


async def generate_batches_job(ctx: dict[str, Any], delivery_date: str) -> dict[str, Any]:
    from marketplace.batches import generate_batches

    state = _state(ctx)
    return await _attempt(
        ctx,
        "batches",
        state.profile.batch_attempts,
        lambda n: BATCH_BACKOFF_S * 2 ** (n - 1),
        lambda _final: generate_batches(state, dt.date.fromisoformat(delivery_date)),
    )


async def process_payout_job(ctx: dict[str, Any], payout_id: int) -> dict[str, Any]:
    from marketplace.payouts import process_payout

    state = _state(ctx)
    return await _attempt(
        ctx,
        "payouts",
        state.profile.payout_attempts,
        lambda _n: 0.0,  # the seed sets no backoff for payouts: BullMQ retries at once
        lambda final: process_payout(state, payout_id, final=final),
    )


async def retry_payment_job(ctx: dict[str, Any], order_id: int, consumer_id: int) -> str:
    """Phase3 fallback: charge a ``payment_pending`` order once Stripe answers again."""
    from marketplace.checkout import pay

    state = _state(ctx)
    return await _attempt(
        ctx,
        "payments",
        PAYMENT_MAX_TRIES,
        lambda _n: PAYMENT_RETRY_DELAY_S,
        lambda _final: pay(state, order_id, consumer_id),
    )


class JobQueue:
    """Enqueue side and in-process consumers of the marketplace's arq queues."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.pool: Any = None
        self.workers: list[Worker] = []
        self.tasks: list[asyncio.Task] = []

    def _consumers(self) -> list[tuple[str, Any, int, int]]:
        p = self.state.profile
        return [
            ("batches", generate_batches_job, p.batch_concurrency, p.batch_attempts),
            ("payouts", process_payout_job, p.payout_concurrency, p.payout_attempts),
            ("payments", retry_payment_job, PAYMENT_CONCURRENCY, PAYMENT_MAX_TRIES),
        ]

    async def start(self) -> None:
        settings = RedisSettings.from_dsn(str(self.state.settings.redis_url))
        self.pool = await create_pool(settings)
        for queue, function, concurrency, attempts in self._consumers():
            worker = Worker(
                functions=[func(function, max_tries=attempts + ARQ_SLACK_TRIES)],
                queue_name=_queue_name(queue),
                redis_pool=await create_pool(settings),
                handle_signals=False,
                max_jobs=concurrency,
                poll_delay=0.2,
                keep_result=3600,
                ctx={"market": self.state},
            )
            self.workers.append(worker)
            self.tasks.append(asyncio.create_task(self._supervise(queue, worker)))
        if self.state.profile.circuit_breakers:
            self.tasks.append(asyncio.create_task(self._reconcile_periodically()))

    @staticmethod
    async def _supervise(queue: str, worker: Worker) -> None:
        """Keep a consumer polling: arq's loop ends on a Redis error (Redis killed)."""
        while True:
            try:
                await worker.async_run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis gone: poll again once it is back
                log.warning("%s consumer stopped (%s); restarting", queue, exc)
                await asyncio.sleep(RESTART_DELAY_S)

    async def _reconcile_periodically(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_EVERY_S)
            try:
                queued = await self.reconcile_payments()
            except Exception as exc:  # noqa: BLE001 - DB or Redis down: next round
                log.info("payment reconciliation skipped (%s)", exc)
                continue
            if queued:
                log.info("reconciler re-enqueued %d deferred payment(s)", queued)

    async def reconcile_payments(self) -> int:
        """Re-enqueue deferred payments and pending payouts whose job is gone (lost with
        Redis, or never queued while it was down); returns how many."""
        async with self.state.db.write() as conn:
            cur = await conn.execute(
                "SELECT id, consumer_id FROM orders WHERE status = 'payment_pending'"
                " AND updated_at < now() - make_interval(secs => %s) ORDER BY id LIMIT 500",
                (RECONCILE_AFTER_S,),
            )
            orders = await cur.fetchall()
            cur = await conn.execute(
                "SELECT id FROM payouts WHERE status = 'pending'"
                " AND created_at < now() - make_interval(secs => %s) ORDER BY id LIMIT 500",
                (self.payout_delay_s + RECONCILE_AFTER_S,),
            )
            payouts = await cur.fetchall()
        queued = 0
        for row in orders:
            queued += await self._enqueue_retry(row["id"], row["consumer_id"])
        for row in payouts:
            job_id = f"process_payout_job:{row['id']}"
            queued += await self._enqueue_counted(
                "payouts", "process_payout_job", (row["id"],), job_id, None
            )
        return queued

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.close()
        for task in self.tasks:
            task.cancel()
        if self.pool is not None:
            await self.pool.aclose()

    @property
    def payout_delay_s(self) -> float:
        override = self.state.settings.payout_delay_s
        return self.state.profile.payout_delay_s if override is None else override

    async def enqueue(self, function: str, *args: Any) -> str:
        """Queue a batch generation or a payout; :class:`QueueUnavailable` (503) when
        Redis does not take it within :data:`ENQUEUE_TIMEOUT_S` -- never a bare 500."""
        queue = queue_of(function)
        defer = self.payout_delay_s if queue == "payouts" else None
        # One job per payout, so the reconciler's re-enqueue is a no-op while it exists.
        job_id = f"{function}:{args[0] if queue == 'payouts' else uuid.uuid4().hex}"
        await self._enqueue_counted(queue, function, args, job_id, defer)
        return job_id

    async def _enqueue_counted(
        self, queue: str, function: str, args: tuple, job_id: str, defer: float | None
    ) -> int:
        """1 when the job was queued, 0 when a job with this id already exists."""
        try:
            job = await asyncio.wait_for(  # a frozen Redis must not hang the request
                self.pool.enqueue_job(
                    function, *args, _job_id=job_id, _queue_name=_queue_name(queue), _defer_by=defer
                ),
                ENQUEUE_TIMEOUT_S,
            )
            if job is None:
                return 0
            await asyncio.wait_for(count(self.pool, queue, "enqueued"), ENQUEUE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - Redis down or frozen: the caller decides
            raise QueueUnavailable(f"job queue unavailable ({type(exc).__name__})") from exc
        return 1

    async def enqueue_payment_retry(self, order_id: int, consumer_id: int) -> str:
        await self._enqueue_retry(order_id, consumer_id)
        return f"retry_payment_job:{order_id}"

    async def _enqueue_retry(self, order_id: int, consumer_id: int) -> int:
        """1 when a new retry chain was queued, 0 when this order's chain exists."""
        job_id = f"retry_payment_job:{order_id}"  # one retry chain per order
        return await self._enqueue_counted(
            "payments", "retry_payment_job", (order_id, consumer_id), job_id, PAYMENT_RETRY_DELAY_S
        )

    async def status(self, job_id: str) -> dict[str, Any]:
        queue = queue_of(job_id.split(":", 1)[0]) if ":" in job_id else "batches"
        job = Job(job_id, self.pool, _queue_name=_queue_name(queue))
        status = await job.status()
        out: dict[str, Any] = {"job_id": job_id, "status": status.value}
        info = await job.result_info()
        if info is not None:
            out["success"] = info.success
            out["result"] = info.result if info.success else str(info.result)
        return out

    async def counts(self) -> dict[str, dict[str, int]]:
        """The queue's own counters: ``{queue: {outcome: total}}``."""
        raw = await self.pool.hgetall(COUNTS_KEY)
        out = {q: dict.fromkeys(OUTCOMES, 0) for q, *_ in self._consumers()}
        for key, value in raw.items():
            queue, _, outcome = (key.decode() if isinstance(key, bytes) else key).partition(":")
            if queue in out and outcome in OUTCOMES:
                out[queue][outcome] = int(value)
        return out

    async def sample_depth(self) -> int:
        """Refresh the queue gauges (depth and the counters above); the total depth."""
        depth = 0
        for queue, *_ in self._consumers():
            n = int(await self.pool.zcard(_queue_name(queue)))
            metrics.QUEUE_DEPTH.labels(queue).set(n)
            depth += n
        for queue, outcomes in (await self.counts()).items():
            for outcome, value in outcomes.items():
                metrics.QUEUE_JOBS[outcome].labels(queue).set(value)
        return depth
