"""One error shape for every failure: ``{"error": {"code": ..., "message": ...}}``.

Handlers for validation errors, HTTP errors and DB unavailability are installed on
the app so bad input gives a 4xx JSON body and an exhausted DB gives a 503, never
an HTML page or an unexplained 500.

An unexpected exception is answered by :class:`InternalErrors`, not by an
``exception_handler(Exception)``: Starlette routes that handler to its outermost
``ServerErrorMiddleware``, which sends the 500 and then *re-raises* the exception
(so servers can log it), and uvicorn, seeing an exception after the response has
started, closes the connection. A client reusing that keep-alive socket then fails
its next request with a reset -- an error the load test would blame on the next
request. The middleware answers and swallows instead, so the connection survives.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("marketplace")


class ApiError(Exception):
    """An error meant for the client, with its HTTP status and a stable code."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class DbUnavailable(ApiError):
    """No DB connection could be had in time (phase0's 15-connection wall)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "db_unavailable", message, {"Retry-After": "1"})


class QueueUnavailable(ApiError):
    """The job queue (Redis) did not take a job in time: retry later, nothing was queued."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "queue_unavailable", message, {"Retry-After": "5"})


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str = "not allowed") -> ApiError:
    return ApiError(403, "forbidden", message)


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """The error shape, declared in OpenAPI so clients and schema checks can rely on it."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Malformed request (bad cursor, unparseable body, business rule)",
    401: "Missing, malformed or expired bearer token",
    402: "Payment declined",
    403: "The token's role or owner may not do this",
    404: "Not found",
    409: "Conflict with the current state",
    422: "Request validation failed",
    429: "Rate limited (see Retry-After)",
    502: "The payment provider failed",
    503: "No database connection, or the job queue, in time (see Retry-After)",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error answers a route gives (all in :class:`ErrorBody`).

    Undeclared statuses break clients generated from the schema; this also replaces
    FastAPI's default 422 body, which is not the shape the handlers below send.
    """
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


class InternalErrors:
    """ASGI middleware: an unexpected exception becomes a JSON 500 on an open connection.

    Only when the response has not started: after that the client already holds a
    status line and part of a body, and closing the connection is the one honest
    way to tell it the body is cut short, so the exception goes on to the server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            log.exception("unhandled error: %s", exc)
            response = JSONResponse(error_body("internal_error", "internal error"), status_code=500)
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Error handlers, and :class:`InternalErrors` (install before other middleware, so
    they wrap it and see its 500 as an ordinary response)."""
    app.add_middleware(InternalErrors)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        return JSONResponse(
            error_body("invalid_request", "request validation failed", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(psycopg.errors.ForeignKeyViolation)
    async def _gone(_: Request, exc: psycopg.errors.ForeignKeyViolation) -> JSONResponse:
        """A write naming a row deleted meanwhile, e.g. a user deleted while their identity
        is still cached (``marketplace.identities``, 5 min): 404, not a 500 (issue 21)."""
        log.info("write refers to a deleted row: %s", " ".join(str(exc).split())[:200])
        return JSONResponse(
            error_body("not_found", "a record this request refers to no longer exists"),
            status_code=404,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        """Last resort for failures outside :class:`InternalErrors` (outer middleware)."""
        log.exception("unhandled error: %s", exc)
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
