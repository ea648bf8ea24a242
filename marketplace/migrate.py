"""Versioned SQL migrations, applied in order and recorded in ``schema_migrations``.

Each file ``migrations/NNNN_name.sql`` starts with ``-- min_profile: phaseK``: the
lowest architecture profile that needs it. Migrating for a profile applies every
file up to that level, so a database can be walked phase0 -> phase3 and each step
is idempotent (already-recorded versions are skipped). Each file runs in its own
transaction; an advisory lock keeps concurrent migrators from racing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from marketplace.profiles import Profile

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_HEADER = re.compile(r"--\s*min_profile:\s*phase(\d+)")
_LOCK_ID = 0x10AD6A7E


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    min_level: int
    sql: str


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        sql = path.read_text()
        match = _HEADER.search(sql.split("\n", 1)[0])
        if not match:
            raise ValueError(f"{path.name}: first line must be '-- min_profile: phaseN'")
        version, _, name = path.stem.partition("_")
        found.append(Migration(version, name, int(match.group(1)), sql))
    return found


def applied_versions(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
    return {r[0] for r in rows}


def migrate(database_url: str, profile: Profile) -> list[str]:
    """Apply the pending migrations up to ``profile``; returns the versions applied."""
    done: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            have = applied_versions(conn)
            for m in discover():
                skipped = m.version in profile.skip_migrations
                if m.min_level > profile.level or m.version in have or skipped:
                    continue
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (m.version, m.name),
                    )
                done.append(f"{m.version}_{m.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return done
