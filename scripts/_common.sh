# Shared by scripts/run.sh and scripts/test.sh: installs what loadgate needs,
# idempotently, so a second run is fast. Sourced, not executed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOADGATE_VENV:-$REPO_ROOT/.venv}"
APT_PACKAGES=(postgresql pgbouncer redis-server)

log() { printf '\033[1m[loadgate setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[loadgate setup] error:\033[0m %s\n' "$*" >&2; exit 2; }

apt_install() {
    # Installs only what is missing; `apt-get update` runs once, only if needed.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing OS packages: ${missing[*]} (no apt-get here: install them with your package manager)"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "installing OS packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_python312() {
    # A Python >= 3.12: the OSRM wheel and pyproject need it. Looks on PATH,
    # then under pyenv (where it is installed but not on PATH on these machines).
    local candidates=("${LOADGATE_PYTHON:-}" python3.13 python3.12 python3)
    local root
    root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
    for v in "$root"/versions/3.1[2-9]*/bin/python3; do candidates+=("$v"); done
    for c in "${candidates[@]}"; do
        [ -z "$c" ] && continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            command -v "$c" 2>/dev/null || echo "$c"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    local py stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        py="$(find_python312)" || die "no Python >= 3.12 found: install one (e.g. 'pyenv install 3.12' or 'apt-get install python3.12') or set LOADGATE_PYTHON=/path/to/python3.12"
        log "creating venv $VENV with $py"
        "$py" -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    stamp="$VENV/.loadgate-installed"
    want="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing loadgate and its dependencies into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO_ROOT[dev]" 2>&1 \
            | grep -v "^WARNING: Location" >&2 || true
        "$VENV/bin/python" -c "import loadgate" 2>/dev/null || die "pip install failed: see the output above"
        echo "$want" > "$stamp"
    fi
}
