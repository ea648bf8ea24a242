"""The async job queue (seed §4.3) on arq: batch generation, payouts, payment retries.

Each web worker also runs an arq consumer in the background (same process, same
pools), so the service needs no extra process to drain its queue. Jobs are
idempotent (batching skips already-batched orders; payouts and payments only move
from pending), so arq's at-least-once retries are safe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job
from arq.worker import Retry, Worker

from marketplace import metrics
from marketplace.state import AppState

log = logging.getLogger("marketplace.jobs")

QUEUE = "marketplace:jobs"
PAYMENT_RETRY_DELAY_S = 5.0
PAYMENT_MAX_TRIES = 20


def _state(ctx: dict[str, Any]) -> AppState:
    return ctx["market"]


async def generate_batches_job(ctx: dict[str, Any], delivery_date: str) -> dict[str, Any]:
    from marketplace.batches import generate_batches

    return await _counted(
        "generate_batches", generate_batches(_state(ctx), dt.date.fromisoformat(delivery_date))
    )


async def process_payout_job(ctx: dict[str, Any], payout_id: int) -> dict[str, Any]:
    from marketplace.payouts import process_payout

    return await _counted("payouts", process_payout(_state(ctx), payout_id))


async def retry_payment_job(ctx: dict[str, Any], order_id: int, consumer_id: int) -> str:
    """Phase3 fallback: charge a ``payment_pending`` order once Stripe answers again."""
    from marketplace.checkout import pay

    state = _state(ctx)
    try:
        intent = await pay(state, order_id, consumer_id)
    except Exception as exc:
        if ctx.get("job_try", 1) >= PAYMENT_MAX_TRIES:
            metrics.QUEUE_FAILED.labels("payment_retry").inc()
            raise
        log.info("payment retry for order %s failed (%s); again later", order_id, exc)
        raise Retry(defer=PAYMENT_RETRY_DELAY_S) from exc
    metrics.QUEUE_COMPLETED.labels("payment_retry").inc()
    return intent


async def _counted(queue: str, work: Any) -> Any:
    try:
        result = await work
    except Exception:
        metrics.QUEUE_FAILED.labels(queue).inc()
        raise
    metrics.QUEUE_COMPLETED.labels(queue).inc()
    return result


FUNCTIONS = [generate_batches_job, process_payout_job, retry_payment_job]


class JobQueue:
    """Enqueue side and in-process consumer of the marketplace's arq queue."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.pool: Any = None
        self.worker: Worker | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        settings = RedisSettings.from_dsn(str(self.state.settings.redis_url))
        self.pool = await create_pool(settings, default_queue_name=QUEUE)
        self.worker = Worker(
            functions=FUNCTIONS,
            queue_name=QUEUE,
            redis_pool=self.pool,
            handle_signals=False,
            max_jobs=5,
            max_tries=PAYMENT_MAX_TRIES,
            poll_delay=0.2,
            keep_result=3600,
            ctx={"market": self.state},
        )
        self.task = asyncio.create_task(self.worker.async_run())

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.close()
        if self.task is not None:
            self.task.cancel()
        if self.pool is not None:
            await self.pool.aclose()

    async def enqueue(self, function: str, *args: Any) -> str:
        job_id = f"{function}:{uuid.uuid4().hex}"
        await self.pool.enqueue_job(function, *args, _job_id=job_id, _queue_name=QUEUE)
        metrics.QUEUE_ENQUEUED.labels(function).inc()
        return job_id

    async def enqueue_payment_retry(self, order_id: int, consumer_id: int) -> str:
        job_id = f"retry_payment_job:{order_id}"  # one retry chain per order
        await self.pool.enqueue_job(
            "retry_payment_job",
            order_id,
            consumer_id,
            _job_id=job_id,
            _queue_name=QUEUE,
            _defer_by=PAYMENT_RETRY_DELAY_S,
        )
        metrics.QUEUE_ENQUEUED.labels("retry_payment_job").inc()
        return job_id

    async def status(self, job_id: str) -> dict[str, Any]:
        job = Job(job_id, self.pool, _queue_name=QUEUE)
        status = await job.status()
        out: dict[str, Any] = {"job_id": job_id, "status": status.value}
        info = await job.result_info()
        if info is not None:
            out["success"] = info.success
            out["result"] = info.result if info.success else str(info.result)
        return out

    async def sample_depth(self) -> int:
        depth = int(await self.pool.zcard(QUEUE))
        metrics.QUEUE_DEPTH.labels(QUEUE).set(depth)
        return depth
