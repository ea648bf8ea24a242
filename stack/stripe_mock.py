"""A Stripe API mock that behaves like the real API under load.

localstripe gives a stateful fake of the Stripe API but answers instantly and
never says no, which makes checkout load unrealistically cheap. This module
serves localstripe's aiohttp app behind a "realism" middleware that adds what
the scaling plan (seed §1.1) says Stripe does: 200-500 ms per call and a limit
of 100 requests/s answered with HTTP 429 ``rate_limit_error``. Fault injection
(Stripe answering errors) can be switched on at runtime through
``POST /_loadgate/config``.

It runs both as ``python -m stack.stripe_mock`` and as a standalone file copied
into a container image, so it imports only the standard library, aiohttp and
localstripe -- never ``stack.*``.

Usage::

    python -m stack.stripe_mock --host 127.0.0.1 --port 8420 \\
        --latency-ms 200 500 --rate-limit 100 [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

with warnings.catch_warnings():
    # localstripe registers plain-function handlers, which aiohttp deprecates
    # with one warning per route: ~60 lines of noise at every start.
    warnings.simplefilter("ignore", DeprecationWarning)
    from localstripe.resources import List, Store, StripeObject, UserError, store
    from localstripe.server import app as localstripe_app

log = logging.getLogger("loadgate.stripe_mock")

CONTROL_PREFIX = "/_loadgate/"
"""Control endpoints: no latency, no rate limit, no auth, no injected errors."""
API_PREFIX = "/v1/"
"""Only real Stripe API calls get the realism treatment."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- settings and state ---------------------------------------------------------------


@dataclass
class Realism:
    """Current realism settings plus counters, changeable at runtime."""

    latency_min_ms: float = 0.0
    latency_max_ms: float = 0.0
    rate_limit_per_s: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    seed: int | None = None
    requests_seen: int = 0
    rate_limited: int = 0
    errors_injected: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    bucket: TokenBucket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.reset_bucket()

    def reset_bucket(self) -> None:
        """A new (full) bucket; called whenever the limit changes."""
        rate = self.rate_limit_per_s
        self.bucket = TokenBucket(rate) if rate > 0 else None

    def latency_s(self) -> float:
        """The delay for one call: uniform in [min, max] ms, 0 when max is 0."""
        if self.latency_max_ms <= 0:
            return 0.0
        return self.rng.uniform(self.latency_min_ms, self.latency_max_ms) / 1000.0

    def inject_error(self) -> bool:
        return self.error_rate > 0 and self.rng.random() < self.error_rate

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_min_ms": self.latency_min_ms,
            "latency_max_ms": self.latency_max_ms,
            "rate_limit_per_s": self.rate_limit_per_s,
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "seed": self.seed,
            "requests_seen": self.requests_seen,
            "rate_limited": self.rate_limited,
            "errors_injected": self.errors_injected,
        }


class TokenBucket:
    """Capacity ``rate`` tokens, refilled at ``rate``/s: Stripe allows short
    bursts up to the per-second limit but not a sustained excess."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# --- Stripe-shaped error answers ------------------------------------------------------


def stripe_error(
    status: int, error_type: str, message: str, code: str | None = None
) -> web.Response:
    """An error the way Stripe sends it, so the SDK maps it to the right class."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if code:
        error["code"] = code
    return web.json_response({"error": error}, status=status)


def rate_limit_response() -> web.Response:
    return stripe_error(
        429,
        "rate_limit_error",
        "Too many requests hit the API too quickly (loadgate mock rate limit).",
        code="rate_limit",
    )


STRIPE_MAX_AMOUNT = 99_999_999
"""Stripe's cap on one amount: "up to eight digits" in the currency's smallest unit
(localstripe accepts any integer: issue 21)."""
_AMOUNT_PATHS = ("/v1/payment_intents", "/v1/charges", "/v1/payouts", "/v1/refunds")


async def amount_too_large(request: web.Request) -> web.Response | None:
    """Stripe's 400 ``amount_too_large`` for a create with ``amount`` above the cap."""
    if request.method != "POST" or not request.path.startswith(_AMOUNT_PATHS):
        return None
    form = await request.post()  # cached by aiohttp: localstripe reads it again
    raw = form.get("amount")
    try:
        amount = int(str(raw)) if raw is not None else None
    except ValueError:
        return None  # not a number: localstripe's own validation answers
    if amount is None or amount <= STRIPE_MAX_AMOUNT:
        return None
    return stripe_error(
        400,
        "invalid_request_error",
        f"Amount must be no more than {STRIPE_MAX_AMOUNT} (eight digits).",
        code="amount_too_large",
    )


def injected_error_response(status: int) -> web.Response:
    return stripe_error(status, "api_error", "Injected fault (loadgate mock error_rate).")


# --- control endpoints ----------------------------------------------------------------

_FLOAT_KEYS = ("latency_min_ms", "latency_max_ms", "rate_limit_per_s", "error_rate")


def _validated_changes(body: Any, current: Realism) -> dict[str, Any]:
    """Check a config change as a whole, so a bad request changes nothing."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    unknown = sorted(set(body) - {*_FLOAT_KEYS, "error_status"})
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number")
        if value < 0:
            raise ValueError(f"{key} must be >= 0")
        changes[key] = int(value) if key == "error_status" else float(value)
    merged = {**current.as_dict(), **changes}
    if merged["latency_min_ms"] > merged["latency_max_ms"] > 0:
        raise ValueError("latency_min_ms must be <= latency_max_ms")
    if merged["error_rate"] > 1:
        raise ValueError("error_rate must be within 0..1")
    if not 400 <= merged["error_status"] <= 599:
        raise ValueError("error_status must be an HTTP error status (400-599)")
    return changes


async def _control(request: web.Request, realism: Realism) -> web.StreamResponse:
    path = request.path.removeprefix(CONTROL_PREFIX.rstrip("/"))
    if path == "/health" and request.method == "GET":
        return web.json_response({"status": "ok"})
    if path == "/config" and request.method == "GET":
        return web.json_response(realism.as_dict())
    if path == "/config" and request.method == "POST":
        return await _update_config(request, realism)
    if path in ("/health", "/config"):
        return web.json_response({"error": "method not allowed"}, status=405)
    return web.json_response({"error": "not found"}, status=404)


async def _update_config(request: web.Request, realism: Realism) -> web.Response:
    try:
        changes = _validated_changes(await request.json(), realism)
    except (ValueError, json.JSONDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    for key, value in changes.items():
        setattr(realism, key, value)
    if "rate_limit_per_s" in changes:
        realism.reset_bucket()
    log.info("config changed: %s", changes)
    return web.json_response(realism.as_dict())


# --- the middleware and the app -------------------------------------------------------


def realism_middleware(realism: Realism) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Outermost middleware: control endpoints, then rate limit, latency, faults.

    Rejected calls answer at once (Stripe does not make you wait for a 429);
    accepted ones wait their latency before the real handler runs, and an
    injected error also waits, as a failing real API call would.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await _control(request, realism)
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        realism.requests_seen += 1
        if realism.bucket is not None and not realism.bucket.take():
            realism.rate_limited += 1
            return rate_limit_response()
        delay = realism.latency_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if realism.inject_error():
            realism.errors_injected += 1
            return injected_error_response(realism.error_status)
        too_large = await amount_too_large(request)
        if too_large is not None:
            return too_large
        return await handler(request)

    return middleware


def disable_disk_persistence() -> None:
    """Keep localstripe's store in memory only.

    localstripe pickles its *whole* store to /tmp/localstripe.pickle after every
    write (in ``Store.__setitem__``/``__delitem__`` and again in a middleware
    after each POST). That is O(store size) per request -- under load it grows
    quadratic and dominates the latency we are trying to control -- and it
    leaves a file behind in /tmp. Overriding the method on the instance turns
    every one of those calls into a no-op. We never load from disk either:
    each mock starts empty, so runs do not depend on a previous run's leftovers.
    """
    store.dump_to_disk = lambda: None  # type: ignore[method-assign]


def index_store_by_type() -> None:
    """Let localstripe's list calls read the objects of their type, not the whole store.

    Every list (``GET /v1/payment_intents``, and internally a charge's ``refunds`` and
    ``amount_refunded``, read each time a charge is exported) scans every object of every
    type in the store. Exporting a PaymentIntent exports its charge, so paging through
    the PaymentIntents of a run is quadratic: after a phase-1 gate run (2,600 intents,
    ~100,000 objects) ``loadgate verify`` kept the mock at 80 % of a core for two minutes
    (py-spy: 74 % of its samples in ``_api_list_all``'s scan). An index of keys by type,
    kept by the store's own ``__setitem__``/``__delitem__``, gives the same lists in the
    same (insertion) order. Only the mock's speed changes, not an answer it gives.
    """
    if getattr(Store, "_loadgate_indexed", False):
        return
    by_type: dict[str, dict[str, None]] = {}

    def setitem(self: Store, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        by_type.setdefault(key.split(":", 1)[0], {})[key] = None

    def delitem(self: Store, key: str) -> None:
        dict.__delitem__(self, key)
        by_type.get(key.split(":", 1)[0], {}).pop(key, None)

    def clear(self: Store) -> None:
        dict.clear(self)
        by_type.clear()

    def list_all(
        cls: type, url: str, limit: Any = None, starting_after: Any = None, **kwargs: Any
    ) -> Any:
        if kwargs:  # as localstripe's own: unknown filters are a 400
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        listed = List(url, limit=limit, starting_after=starting_after)
        keys = by_type.get(cls.object, {})  # type: ignore[attr-defined]
        listed._list = [store[key] for key in keys if key in store]
        return listed

    for key in store:
        by_type.setdefault(key.split(":", 1)[0], {})[key] = None
    Store.__setitem__ = setitem  # type: ignore[method-assign,assignment]
    Store.__delitem__ = delitem  # type: ignore[method-assign,assignment]
    Store.clear = clear  # type: ignore[method-assign,assignment]
    StripeObject._api_list_all = classmethod(list_all)  # type: ignore[method-assign,assignment]
    Store._loadgate_indexed = True  # type: ignore[attr-defined]


def build_app(realism: Realism) -> web.Application:
    """localstripe's app with the realism middleware in front of its own."""
    disable_disk_persistence()
    index_store_by_type()
    localstripe_app.middlewares.insert(0, realism_middleware(realism))
    return localstripe_app


# --- command line ---------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Stripe API mock (localstripe) with latency and rate limit."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument(
        "--latency-ms",
        nargs=2,
        type=float,
        default=(0.0, 0.0),
        metavar=("MIN", "MAX"),
        help="added latency, uniform in [MIN, MAX] ms; MAX=0 disables",
    )
    parser.add_argument(
        "--rate-limit", type=float, default=0.0, help="requests/s before HTTP 429; 0 disables"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for latency and faults")
    args = parser.parse_args(argv)
    low, high = args.latency_ms
    if low < 0 or high < 0 or (high > 0 and low > high):
        parser.error("--latency-ms needs 0 <= MIN <= MAX")
    if args.rate_limit < 0:
        parser.error("--rate-limit must be >= 0")
    return args


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT, then close connections and return."""
    realism = Realism(
        latency_min_ms=args.latency_ms[0],
        latency_max_ms=args.latency_ms[1],
        rate_limit_per_s=args.rate_limit,
        seed=args.seed,
    )
    runner = web.AppRunner(build_app(realism), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, args.host, args.port).start()
        log.info(
            "stripe mock listening on http://%s:%d latency_ms=[%g, %g] rate_limit_per_s=%g seed=%s",
            args.host,
            args.port,
            realism.latency_min_ms,
            realism.latency_max_ms,
            realism.rate_limit_per_s,
            realism.seed,
        )
        await stop.wait()
        log.info("stripe mock stopping")
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
