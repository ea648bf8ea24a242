"""Command line: ``python -m marketplace [serve] --profile P ...`` and ``... migrate``.

Serving sets up what must exist before the workers fork: the profile (validated
here so a typo is one error line and exit 2), ``LOADGATE_WORKERS`` (phase1+ workers
share the proxy's 1,000 connections between them) and a fresh
``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile

from marketplace.auth import SECRET_ENV, SecretError, require_secret
from marketplace.profiles import DEFAULT_PROFILE, PROFILES, UnknownProfileError, get_profile

log = logging.getLogger("marketplace")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m marketplace")
    sub = p.add_subparsers(dest="command")
    for target in (p, sub.add_parser("serve", help="run the service (default)")):
        target.add_argument("--profile", default=None, help=f"one of {', '.join(PROFILES)}")
        target.add_argument("--host", default="127.0.0.1")
        target.add_argument("--port", type=int, default=8000)
        target.add_argument("--workers", type=int, default=1)
        target.add_argument("--log-level", default="info")
    m = sub.add_parser("migrate", help="apply versioned migrations up to a profile")
    m.add_argument("--database-url", default=os.environ.get("LOADGATE_DATABASE_URL"))
    m.add_argument("--profile", default=DEFAULT_PROFILE)
    return p


def _profile_or_exit(name: str) -> str:
    try:
        return get_profile(name).name
    except UnknownProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def migrate_command(args: argparse.Namespace) -> int:
    from marketplace.migrate import migrate

    profile = get_profile(_profile_or_exit(args.profile))
    if not args.database_url:
        print("error: --database-url or LOADGATE_DATABASE_URL is required", file=sys.stderr)
        return 2
    applied = migrate(args.database_url, profile)
    print(f"migrations applied for {profile.name}: {', '.join(applied) or 'none (up to date)'}")
    return 0


TRUSTED_PROXIES_ENV = "LOADGATE_TRUSTED_PROXIES"
ACCESS_LOG_ENV = "LOADGATE_ACCESS_LOG"
"""``1``: one access-log line per request (client address, route, status) in the service
log. Off by default: at phase-gate rates the log itself would load the system under test;
a test that counts what each client host sent turns it on."""


def proxy_settings(trusted: str) -> dict[str, object]:
    """uvicorn's proxy options: forwarded headers honoured only from ``trusted``."""
    hosts = ",".join(h.strip() for h in trusted.split(",") if h.strip())
    if not hosts:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": hosts}


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    name = _profile_or_exit(args.profile or os.environ.get("LOADGATE_PROFILE") or DEFAULT_PROFILE)
    try:
        require_secret(os.environ.get(SECRET_ENV))
    except SecretError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ["LOADGATE_PROFILE"] = name
    os.environ["LOADGATE_WORKERS"] = str(max(1, args.workers))
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="marketplace-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    else:
        d = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log.info(
        "marketplace starting: profile=%s flags=%s workers=%d",
        name,
        get_profile(name).as_dict(),
        args.workers,
    )
    try:
        uvicorn.run(
            "marketplace.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=max(1, args.workers),
            log_level=args.log_level,
            access_log=os.environ.get(ACCESS_LOG_ENV) == "1",
            # uvicorn's default (5 s) is shorter than the personas' think time:
            # the server would close idle keep-alive connections just as a
            # client reuses them, and the non-idempotent POST/PATCH that lose
            # the race show up as connection errors. 75 s is a load
            # balancer's usual idle timeout.
            timeout_keep_alive=75,
            # X-Forwarded-For decides the anonymous rate limit's key (``deps``): trust it
            # only from the proxies named in LOADGATE_TRUSTED_PROXIES (comma-separated
            # addresses), none by default. uvicorn's own default trusts 127.0.0.1, so any
            # local client could pick a fresh "address" per request (issue 21).
            **proxy_settings(os.environ.get(TRUSTED_PROXIES_ENV, "")),
        )
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "migrate":
        return migrate_command(args)
    return serve_command(args)


if __name__ == "__main__":
    sys.exit(main())
