"""Handing fixture credentials to simulated users, one identity each.

The fixture loader writes every profile's bearer token (``loadgate fixtures
load``). Users of a role take identities round-robin, starting at an offset
per process so that workers of a distributed run do not all begin with the
same consumer. The offset comes from the worker's index (given by the
caller), not from the pid, so a rerun with the same seed logs in as the
same identities.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from pathlib import Path

from fixtures.credentials import read_credentials


class NoCredentials(RuntimeError):
    """No identity of a role is available; the message names the fix."""


class CredentialPool:
    def __init__(self, rows: list[dict], offset: int = 0) -> None:
        self._by_role: dict[str, list[dict]] = {}
        for row in rows:
            self._by_role.setdefault(row["role"], []).append(row)
        start = zlib.crc32(f"worker-{offset}".encode())
        self._cursors: dict[str, Iterator[int]] = {
            role: itertools.count(start % len(items)) for role, items in self._by_role.items()
        }

    @classmethod
    def from_file(cls, path: Path | str, offset: int = 0) -> CredentialPool:
        path = Path(path)
        if not path.exists():
            raise NoCredentials(
                f"credentials file {path} not found: run 'loadgate fixtures load' first "
                "or pass --loadgate-credentials PATH"
            )
        return cls(read_credentials(path), offset)

    def take(self, role: str) -> dict:
        items = self._by_role.get(role)
        if not items:
            raise NoCredentials(
                f"no {role} credentials loaded: load fixtures that have {role}s "
                "('loadgate fixtures load') and pass --loadgate-credentials PATH"
            )
        return items[next(self._cursors[role]) % len(items)]

    def roles(self) -> dict[str, int]:
        return {role: len(items) for role, items in self._by_role.items()}
