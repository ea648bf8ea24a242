"""Input checks shared by the routes: query strings, LIKE patterns, date windows.

A real service answers nonsense input with a 4xx that says what was wrong, never
with a 500 from deep inside the database driver: a NUL byte in a search used to
reach Postgres (which cannot store it), ``%`` and ``_`` in a search were wildcards,
and a delivery date in year 9999 (or year 1, where date arithmetic overflows) was
accepted or crashed.
"""

from __future__ import annotations

import datetime as dt
import re

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0, DEL and C1: never part of a name, category or cursor. NUL cannot even be stored
in a Postgres text value (psycopg raises), which used to surface as a 500."""


async def clean_query(request: Request) -> None:
    """Refuse control characters in any query parameter (name or value) with a 422.

    A router-level dependency, so parameters added later are covered too.
    """
    for name, value in request.query_params.multi_items():
        if CONTROL_CHARACTERS.search(name) or CONTROL_CHARACTERS.search(value):
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("query", CONTROL_CHARACTERS.sub("?", name)),
                        "msg": "control characters (e.g. NUL) are not allowed in query strings",
                        "input": None,
                    }
                ]
            )


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE/ILIKE pattern (backslash is Postgres' default
    escape character): a search for ``50%`` or ``snake_case`` matches those characters."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- dates --------------------------------------------------------------------------

DELIVERY_AHEAD_DAYS = 365
"""Orders are placed at most a year ahead: a later date is a typo or a probe."""
DELIVERY_HISTORY_DAYS = 365
"""Batches and routes are looked at (and regenerated) up to a year back."""
ANALYTICS_EARLIEST = dt.date(2000, 1, 1)
"""Before the marketplace existed; also keeps date arithmetic far from year 1."""


def today() -> dt.date:
    """The service's calendar day (UTC)."""
    return dt.datetime.now(dt.UTC).date()


def date_window(days_back: int, days_ahead: int, what: str) -> AfterValidator:
    """A validator admitting dates from ``days_back`` before to ``days_ahead`` after today.

    The window is computed per request (it moves with the day); a date outside is a
    422 naming the accepted range, never a query for year 9999 or an overflow.
    """

    def check(value: dt.date | None) -> dt.date | None:
        if value is None:
            return value
        first = today() - dt.timedelta(days=days_back)
        last = today() + dt.timedelta(days=days_ahead)
        if not first <= value <= last:
            raise ValueError(f"{what} must be between {first} and {last}")
        return value

    return AfterValidator(check)


def analytics_window() -> AfterValidator:
    """Analytics dates: from :data:`ANALYTICS_EARLIEST` to a year ahead."""

    def check(value: dt.date | None) -> dt.date | None:
        if value is None:
            return value
        last = today() + dt.timedelta(days=366)
        if not ANALYTICS_EARLIEST <= value <= last:
            raise ValueError(f"dates must be between {ANALYTICS_EARLIEST} and {last}")
        return value

    return AfterValidator(check)


CheckoutDate = date_window(0, DELIVERY_AHEAD_DAYS, "delivery_date")
"""A checkout delivers today at the earliest."""
OperationsDate = date_window(DELIVERY_HISTORY_DAYS, DELIVERY_AHEAD_DAYS, "delivery_date")
"""Batch generation and driver listings: a year back to a year ahead."""
