"""The services of the Blue Harvests stack, each described once.

Order matters only through ``depends_on``; providers start services in
dependency waves and stop them in reverse. Commands are POSIX shell so the
same text runs as a local child process and as a container's command.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Mapping

from marketplace.profiles import DEFAULT_PROFILE, OVERRIDES_ENV
from stack.config import (
    DB_NAME,
    DB_PASSWORD,
    DB_USER,
    PGBOUNCER_QUERY_WAIT_TIMEOUT_S,
    REPLICATION_PASSWORD,
    REPLICATION_USER,
    STRIPE_API_KEY,
    StackConfig,
)
from stack.errors import UnknownService
from stack.osrm_map import MAP_BASENAME
from stack.probes import (
    probe_http_ok,
    probe_osrm,
    probe_postgres,
    probe_postgres_standby,
    probe_redis,
)
from stack.spec import ServiceContext, ServiceSpec


def _pg_dsn(host: str, ports: Mapping[str, int], _config: StackConfig) -> str:
    return f"postgresql://{DB_USER}:{DB_PASSWORD}@{host}:{ports['main']}/{DB_NAME}"


def _http_url(host: str, ports: Mapping[str, int], _config: StackConfig) -> str:
    return f"http://{host}:{ports['main']}"


def _redis_url(host: str, ports: Mapping[str, int], _config: StackConfig) -> str:
    return f"redis://{host}:{ports['main']}/0"


# --- PostgreSQL primary -------------------------------------------------------

_PG_HBA = f"""\
# Written by loadgate. Unix socket lives in the service's own data dir.
local   all          all                    trust
host    all          all          0.0.0.0/0 scram-sha-256
host    replication  {REPLICATION_USER}  0.0.0.0/0 scram-sha-256
"""


def _postgres_files(ctx: ServiceContext) -> dict[str, str]:
    bootstrap_sql = (
        f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}\n"
        f"CREATE ROLE {REPLICATION_USER} REPLICATION LOGIN "
        f"PASSWORD '{REPLICATION_PASSWORD}'\n"
    )
    return {
        "pg_hba.conf": _PG_HBA,
        "pwfile": DB_PASSWORD + "\n",
        "bootstrap.sql": bootstrap_sql,
        "extensions.sql": "CREATE EXTENSION IF NOT EXISTS pg_stat_statements\n",
    }


def _postgres_server_args(ctx: ServiceContext, pgdata: str) -> str:
    """Server settings on the command line, so no config file is edited."""
    settings = {
        "port": ctx.port,
        "listen_addresses": ctx.listen_host,
        "unix_socket_directories": str(ctx.data_dir),
        "hba_file": str(ctx.config_dir / "pg_hba.conf"),
        "max_connections": ctx.config.pg_max_connections,
        "shared_preload_libraries": "pg_stat_statements",
        "pg_stat_statements.track": "all",
        "wal_level": "replica",
        "max_wal_senders": 10,
        "hot_standby": "on",
        "logging_collector": "off",
        "log_min_messages": "warning",
    }
    args = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items())
    return f"-D {shlex.quote(pgdata)} {args}"


def _postgres_command(ctx: ServiceContext) -> str:
    pgdata = str(ctx.data_dir / "pgdata")
    b = ctx.pg_bin
    conf = ctx.config_dir
    return (
        "set -e; "
        f"{b}/initdb -D {pgdata} -U {DB_USER} --pwfile={conf}/pwfile "
        "-E UTF8 --locale=C.UTF-8 --auth=scram-sha-256 >/dev/null; "
        f"{b}/postgres --single -D {pgdata} postgres < {conf}/bootstrap.sql >/dev/null; "
        f"{b}/postgres --single -D {pgdata} -c shared_preload_libraries=pg_stat_statements "
        f"{DB_NAME} < {conf}/extensions.sql >/dev/null; "
        f"exec {b}/postgres {_postgres_server_args(ctx, pgdata)}"
    )


POSTGRES = ServiceSpec(
    name="postgres",
    description="PostgreSQL 15 primary (pg_stat_statements on)",
    image="postgres",
    command=_postgres_command,
    files=_postgres_files,
    url=_pg_dsn,
    probe=probe_postgres,
    default_ports={"main": 5432},
    run_as_postgres=True,
    ready_timeout=60.0,
    stop_signal=signal.SIGINT,
)


# --- PostgreSQL hot-standby replica -------------------------------------------


def _replica_command(ctx: ServiceContext) -> str:
    primary = ctx.peers["postgres"]
    pgdata = str(ctx.data_dir / "pgdata")
    b = ctx.pg_bin
    # Started again after a fault (same data directory): resume as the standby it was.
    return (
        "set -e; "
        f"if [ ! -s {pgdata}/PG_VERSION ]; then "
        f"PGPASSWORD={REPLICATION_PASSWORD} {b}/pg_basebackup -h {primary.host} "
        f"-p {primary.port} -U {REPLICATION_USER} -D {pgdata} -R -X stream -c fast; fi; "
        f"chmod 700 {pgdata}; "
        f"exec {b}/postgres {_postgres_server_args(ctx, pgdata)}"
    )


REPLICA = ServiceSpec(
    name="replica",
    description="PostgreSQL hot-standby streaming replica of the primary",
    image="postgres",
    command=_replica_command,
    files=lambda ctx: {"pg_hba.conf": _PG_HBA},
    url=_pg_dsn,
    probe=probe_postgres_standby,
    depends_on=("postgres",),
    default_ports={"main": 5433},
    run_as_postgres=True,
    ready_timeout=60.0,
    stop_signal=signal.SIGINT,
    optional=True,
)


# --- PgBouncer ----------------------------------------------------------------


def _pgbouncer_files(ctx: ServiceContext) -> dict[str, str]:
    pg = ctx.peers["postgres"]
    ini = f"""\
[databases]
{DB_NAME} = host={pg.host} port={pg.port} dbname={DB_NAME}

[pgbouncer]
listen_addr = {ctx.listen_host}
listen_port = {ctx.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {ctx.config_dir}/userlist.txt
pool_mode = transaction
default_pool_size = {ctx.config.pgbouncer_pool_size}
max_db_connections = {ctx.config.pgbouncer_pool_size}
query_wait_timeout = {PGBOUNCER_QUERY_WAIT_TIMEOUT_S}
max_client_conn = {ctx.config.pgbouncer_max_client_conn}
admin_users = {DB_USER}
stats_users = {DB_USER}
ignore_startup_parameters = extra_float_digits,options
"""
    return {"pgbouncer.ini": ini, "userlist.txt": f'"{DB_USER}" "{DB_PASSWORD}"\n'}


PGBOUNCER = ServiceSpec(
    name="pgbouncer",
    description="PgBouncer, transaction pooling in front of the primary",
    image="pgbouncer",
    command=lambda ctx: f"exec pgbouncer {ctx.config_dir}/pgbouncer.ini",
    files=_pgbouncer_files,
    url=_pg_dsn,
    probe=probe_postgres,
    depends_on=("postgres",),
    default_ports={"main": 6432},
    run_as_postgres=True,
)


# --- Redis --------------------------------------------------------------------

REDIS = ServiceSpec(
    name="redis",
    description="Redis 7 (no persistence)",
    image="redis",
    command=lambda ctx: (
        f"exec redis-server --port {ctx.port} --bind {ctx.listen_host} "
        f"--dir {ctx.data_dir} --save '' --appendonly no --protected-mode no"
    ),
    url=_redis_url,
    probe=probe_redis,
    default_ports={"main": 6379},
)


# --- OSRM ---------------------------------------------------------------------

OSRM = ServiceSpec(
    name="osrm",
    description="OSRM routing (MLD) on a real OpenStreetMap extract",
    image="osrm",
    command=lambda ctx: (
        f"exec {ctx.osrm_bin}/osrm-routed --algorithm mld --ip {ctx.listen_host} "
        f"--port {ctx.port} --max-table-size 10000 --max-trip-size 1000 "
        f"{ctx.osrm_data}/{MAP_BASENAME}"
    ),
    url=_http_url,
    probe=probe_osrm,
    default_ports={"main": 5000},
)


# --- Stripe mock --------------------------------------------------------------


def _stripe_command(ctx: ServiceContext) -> str:
    realism = ctx.config.stripe
    return (
        f"exec {ctx.stripe_mock} --host {ctx.listen_host} --port {ctx.port} "
        f"--latency-ms {realism.latency_min_ms:g} {realism.latency_max_ms:g} "
        f"--rate-limit {realism.rate_limit_per_s:g}"
    )


STRIPE = ServiceSpec(
    name="stripe",
    description="Stripe API mock (localstripe + seed latency and rate limit)",
    image="stripe",
    command=_stripe_command,
    url=_http_url,
    probe=lambda url: probe_http_ok(url + "/_loadgate/health"),
    default_ports={"main": 8420},
)


# --- The marketplace service (system under test) ------------------------------------


def _peer_dsn(ctx: ServiceContext, name: str) -> str:
    peer = ctx.peers[name]
    return f"postgresql://{DB_USER}:{DB_PASSWORD}@{peer.host}:{peer.port}/{DB_NAME}"


def _marketplace_env(ctx: ServiceContext) -> dict[str, str]:
    redis_peer, osrm, stripe = ctx.peers["redis"], ctx.peers["osrm"], ctx.peers["stripe"]
    env = {
        "LOADGATE_DATABASE_URL": _peer_dsn(ctx, "postgres"),
        "LOADGATE_PGBOUNCER_URL": _peer_dsn(ctx, "pgbouncer"),
        "LOADGATE_REDIS_URL": f"redis://{redis_peer.host}:{redis_peer.port}/0",
        "LOADGATE_OSRM_URL": f"http://{osrm.host}:{osrm.port}",
        "LOADGATE_STRIPE_URL": f"http://{stripe.host}:{stripe.port}",
        "LOADGATE_STRIPE_KEY": STRIPE_API_KEY,
        "LOADGATE_AUTH_SECRET": ctx.config.auth_secret,
        "PROMETHEUS_MULTIPROC_DIR": str(ctx.data_dir / "prometheus"),
    }
    if "replica" in ctx.peers:
        env["LOADGATE_REPLICA_URL"] = _peer_dsn(ctx, "replica")
    if os.environ.get(OVERRIDES_ENV):  # single-flag overrides reach a container too
        env[OVERRIDES_ENV] = os.environ[OVERRIDES_ENV]
    return env


def _marketplace_command(ctx: ServiceContext) -> str:
    profile = shlex.quote(ctx.config.profile or DEFAULT_PROFILE)
    py = ctx.python
    return (
        "set -e; "
        f"{py} -m marketplace migrate --profile {profile}; "
        f"exec {py} -m marketplace serve --profile {profile} --host {ctx.listen_host} "
        f"--port {ctx.port} --workers {ctx.config.service_workers}"
    )


MARKETPLACE = ServiceSpec(
    name="marketplace",
    description="The Blue Harvests service under test (architecture profile from --profile)",
    image="marketplace",
    command=_marketplace_command,
    env=_marketplace_env,
    url=_http_url,
    probe=lambda url: probe_http_ok(url + "/health"),
    depends_on=("postgres", "pgbouncer", "redis", "osrm", "stripe"),
    after=("replica",),
    default_ports={"main": 8000},
    ready_timeout=60.0,
    optional=True,
)


def marketplace_needs(profile: str) -> list[str]:
    """The services a profile of the marketplace runs on (phase2+ reads a replica)."""
    from marketplace.profiles import UnknownProfileError, get_profile

    try:
        chosen = get_profile(profile)
    except UnknownProfileError as exc:
        raise UnknownService(f"{exc}") from None
    return ["marketplace", *(["replica"] if chosen.read_replica else [])]


ALL_SERVICES: tuple[ServiceSpec, ...] = (
    POSTGRES,
    REDIS,
    OSRM,
    STRIPE,
    PGBOUNCER,
    REPLICA,
    MARKETPLACE,
)
SERVICES: dict[str, ServiceSpec] = {s.name: s for s in ALL_SERVICES}

__all__ = ["ALL_SERVICES", "SERVICES", "STRIPE_API_KEY"]
