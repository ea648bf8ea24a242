#!/usr/bin/env bash
# Makes a Docker engine answer and a base image exist, for the containers
# provider. Idempotent: a second run only checks and prints "ok" lines.
#
# - No engine answering: start `dockerd --bridge=none --iptables=false` in the
#   background (log: /var/log/loadgate-dockerd.log). No bridge on purpose:
#   every container runs with host networking, traffic stays on 127.0.0.1.
# - No base image ($LOADGATE_BASE_IMAGE, default debian:bookworm-slim): no
#   registry can be reached, so build one offline with debootstrap from the
#   Debian mirror apt already uses, and `docker import` it.
#
# Run as root (dockerd and debootstrap need it). Exits non-zero with one
# `[loadgate setup] error: ...` line when something is missing.
source "$(dirname "$0")/_common.sh"

BASE_IMAGE="${LOADGATE_BASE_IMAGE:-debian:bookworm-slim}"
DOCKERD_LOG="${LOADGATE_DOCKERD_LOG:-/var/log/loadgate-dockerd.log}"
DOCKER_WAIT_S="${LOADGATE_DOCKER_WAIT_S:-60}"
SUITE="bookworm"

pick_docker_cli() {
    # A newer client (e.g. /usr/local/bin/docker v28) negotiates the API
    # version down to the daemon's; if it cannot talk to this engine, fall
    # back to the Debian client that ships with dockerd.
    local candidates=() c
    mapfile -t candidates < <(type -ap docker; echo /usr/bin/docker)
    for c in "${candidates[@]}"; do
        [ -x "$c" ] || continue
        if "$c" info >/dev/null 2>&1; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

ensure_engine() {
    if DOCKER="$(pick_docker_cli)"; then
        log "docker engine: ok ($("$DOCKER" version -f '{{.Server.Version}}' 2>/dev/null), client $DOCKER)"
        return 0
    fi
    if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix:///var/run/docker.sock" ]; then
        die "DOCKER_HOST=$DOCKER_HOST does not answer: start that engine or unset DOCKER_HOST"
    fi
    if [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ]; then
        die "no permission on /var/run/docker.sock: add $(id -un) to the docker group or run as root"
    fi
    [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and starting dockerd needs root: run 'sudo bash $0' or use --provider local"
    command -v dockerd >/dev/null || die "no Docker engine answers and dockerd is not installed: apt-get install -y docker.io (or use --provider local)"
    log "starting dockerd --bridge=none --iptables=false (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    nohup dockerd --bridge=none --iptables=false >>"$DOCKERD_LOG" 2>&1 </dev/null &
    disown || true
    local waited=0
    until DOCKER="$(pick_docker_cli)"; do
        if [ "$waited" -ge "$DOCKER_WAIT_S" ]; then
            die "dockerd did not answer within ${DOCKER_WAIT_S}s: see $DOCKERD_LOG (last line: $(tail -n1 "$DOCKERD_LOG" 2>/dev/null))"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "docker engine: started in ~${waited}s ($("$DOCKER" version -f '{{.Server.Version}}'), client $DOCKER)"
}

apt_mirror() {
    # The Debian mirror apt is configured with here (deb822 .sources first,
    # then one-line sources.list), so debootstrap uses the same, reachable one.
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri="$(awk '/^URIs:/ {print $2}' "$f" | grep -E '/debian/?$' | head -n1)"
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri="$(awk '$1 == "deb" && $0 ~ /bookworm/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' "$f" \
            | grep -E '/debian/?$' | head -n1)"
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    echo "http://deb.debian.org/debian"
}

slim_rootfs() {
    # Make the rootfs behave like the official slim image, so the Dockerfiles
    # work the same on both: no docs/man pages, no apt lists kept, no service
    # started by a package's postinst.
    local root="$1"
    [ -n "$root" ] && [ "$root" != / ] || die "slim_rootfs: refusing to work on '$root'"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/lintian/*' >"$root/etc/dpkg/dpkg.cfg.d/docker-slim"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/man/* "$root"/usr/share/info/*
}

ensure_base_image() {
    if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE: ok"
        return 0
    fi
    command -v debootstrap >/dev/null || die "base image $BASE_IMAGE is missing and debootstrap is not installed: apt-get install -y debootstrap (or docker load/pull $BASE_IMAGE)"
    local mirror rootfs started
    mirror="$(apt_mirror)"
    rootfs="$(mktemp -d /var/tmp/loadgate-rootfs.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$rootfs'" EXIT
    started=$SECONDS
    log "base image $BASE_IMAGE missing: debootstrap $SUITE from $mirror (about a minute)"
    if ! debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$mirror" \
        >"$rootfs.log" 2>&1; then
        die "debootstrap failed: $(tail -n1 "$rootfs.log") (full log: $rootfs.log)"
    fi
    slim_rootfs "$rootfs"
    tar -C "$rootfs" -c . | "$DOCKER" import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null \
        || die "docker import of the debootstrap rootfs as $BASE_IMAGE failed"
    rm -rf "$rootfs" "$rootfs.log"
    trap - EXIT
    log "base image $BASE_IMAGE: imported in $((SECONDS - started))s"
}

ensure_engine
ensure_base_image
