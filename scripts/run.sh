#!/usr/bin/env bash
# Set-up command 1: install what is needed, then run loadgate's main job on the
# embedded default stack: the phase-1 gate run (`loadgate run --phase 1`).
# Arguments replace that default and are passed to `loadgate`
# (e.g. `bash scripts/run.sh stack check`).
source "$(dirname "$0")/_common.sh"
apt_install "${APT_PACKAGES[@]}"
ensure_venv
cd "$REPO_ROOT"
if [ $# -eq 0 ]; then set -- run --phase 1; fi
exec "$VENV/bin/loadgate" "$@"
