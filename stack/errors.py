"""Errors that stop a stack from coming up, each naming the fix.

The CLI prints ``str(error)`` as one line and exits non-zero; the stack code
guarantees nothing is left running when one of these is raised.
"""

from __future__ import annotations


class StackError(Exception):
    """Something stops the stack; the message says what and how to fix it."""

    exit_code = 2


class DockerUnavailable(StackError):
    """The containers provider was asked for but no Docker engine answers."""


class BinaryMissing(StackError):
    """A program a service needs is not installed."""


class PortInUse(StackError):
    """A fixed port asked for is already taken."""


class UnknownService(StackError):
    """A service name that the stack does not have."""


class ServiceNotReady(StackError):
    """A service exited or did not pass its readiness probe in time."""

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail or []
