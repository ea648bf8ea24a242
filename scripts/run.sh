#!/usr/bin/env bash
# Set-up command 1: install what is needed, then run loadgate's main job on the
# embedded default stack. Arguments are passed to `loadgate` (default: a stack
# health check: bring every service up, show it healthy, take it down).
source "$(dirname "$0")/_common.sh"
apt_install "${APT_PACKAGES[@]}"
ensure_venv
cd "$REPO_ROOT"
if [ $# -eq 0 ]; then set -- stack check; fi
exec "$VENV/bin/loadgate" "$@"
