"""What a request's ``error_class`` is: the one classification writers and tests share."""

from __future__ import annotations

from runformat.schemas import EXPECTED_OUTCOMES, EXPECTED_ROUTE_OUTCOMES

_TIMEOUT_WORDS = ("timeout", "timed out")


def is_expected(outcome: str, route: str = "") -> bool:
    """An expected business outcome (not a failure), by code and, for some, by route."""
    return outcome in EXPECTED_OUTCOMES or (route, outcome) in EXPECTED_ROUTE_OUTCOMES


def classify_error(
    status: int, exception: BaseException | None, outcome: str = "", route: str = ""
) -> str:
    """One error class per record: "" (not a failure), connection, timeout, 429, 5xx, 4xx,
    assertion.

    Order matters: a transport failure has no status (0) and is classified by
    its exception; 429 and 5xx are always errors; a 4xx is a failure unless its
    business outcome code (the body's ``error.code``) is an expected one
    (``runformat.schemas.EXPECTED_OUTCOMES``: sold out, claim lost) — whatever the
    scenario said, so an accepted 409 ``insufficient_credits`` still counts; an
    exception on a 2xx/3xx response is a failed check (``assertion``).
    """
    if status == 0:
        if exception is None:
            return "connection"
        text = f"{type(exception).__name__} {exception}".lower()
        if any(word in text for word in _TIMEOUT_WORDS):
            return "timeout"
        return "connection"
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "" if is_expected(outcome, route) else "4xx"
    return "assertion" if exception is not None else ""
