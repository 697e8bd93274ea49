#!/bin/sh
# Install what Hearth needs to build, test and run its demo on Debian 12.
#
# Idempotent: Debian packages are installed only when dpkg does not list
# them as installed, and `apt-get update` runs only when something is
# missing. The Node.js packages of the demo game server and of the
# compatibility tests are installed from their committed package-lock.json
# files only when their node_modules folder is missing. On a machine that
# already has everything, the script changes nothing and takes well under a
# second.
#
# Nothing here runs when Hearth itself runs: `hearth` never downloads
# anything.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)

APT_PACKAGES="cmake gcc make pkg-config libuv1-dev libh2o-dev libwslay-dev
libjansson-dev libsqlite3-dev libsodium-dev libcrypt-dev libssl-dev
zlib1g-dev libcmocka-dev python3-pytest python3-requests python3-websocket
python3-socketio wrk nodejs npm valgrind curl procps"

# The JavaScript packages live next to the code that uses them.
NPM_FOLDERS="demo/flying-squid tests/compat"

log() {
    echo "deps: $*" >&2
}

is_installed() {
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [ "$status" = "install ok installed" ]
}

install_apt_packages() {
    missing=""
    for pkg in $APT_PACKAGES; do
        if is_installed "$pkg"; then
            continue
        fi
        # A nodejs package from another repository (NodeSource) ships its
        # own npm and conflicts with Debian's npm package, so a working npm
        # command counts as installed.
        if [ "$pkg" = npm ] && command -v npm >/dev/null 2>&1; then
            continue
        fi
        missing="$missing $pkg"
    done
    if [ -z "$missing" ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages:$missing"
        log "run this script as root (sudo $0) to install them"
        exit 1
    fi
    log "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # shellcheck disable=SC2086 # the list must split into words
    apt-get install -y --no-install-recommends $missing
}

install_npm_packages() {
    for folder in $NPM_FOLDERS; do
        dir="$ROOT/$folder"
        if [ -d "$dir/node_modules" ]; then
            continue
        fi
        if [ ! -f "$dir/package-lock.json" ]; then
            log "$folder/package-lock.json is missing: cannot install" \
                "the exact versions; restore it from git"
            exit 1
        fi
        log "installing Node.js packages in $folder (npm ci)"
        (cd "$dir" && npm ci --no-audit --no-fund)
    done
}

install_apt_packages
install_npm_packages
