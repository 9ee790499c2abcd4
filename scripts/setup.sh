#!/usr/bin/env bash
# Installs what Parley needs on Debian 12 (as root, idempotent), then
# configures and builds it in build/.
#
#   scripts/setup.sh [--no-build] [extra ./configure flags...]
#
# Environment: PARLEY_BUILD_DIR (default: build), PARLEY_SKIP_APT=1 to skip
# the package step.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${PARLEY_BUILD_DIR:-$top/build}

packages=(
    # build
    build-essential autoconf automake libtool pkg-config
    libevent-dev libzmq3-dev libssl-dev zlib1g-dev libjansson-dev
    libinih-dev libcmocka-dev
    # run
    supervisor openssl ca-certificates
    # tests: independent WebSocket client, browser, fuzzing, tools
    python3 python3-websockets curl procps
    clang libclang-rt-14-dev clang-format valgrind
    chromium nodejs npm
)

missing_packages() {
    local p
    for p in "${packages[@]}"; do
        # A Node.js that came another way (e.g. NodeSource) is fine.
        case "$p" in
        nodejs) command -v node >/dev/null && continue ;;
        npm) command -v npm >/dev/null && continue ;;
        esac
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            echo "$p"
    done
}

install_packages() {
    local missing
    missing=$(missing_packages)
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages (run as root to install):" $missing >&2
        exit 1
    fi
    echo "setup: installing" $missing
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
}

build_parley() {
    cd "$top"
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
        autoreconf -fi
    fi
    mkdir -p "$build"
    cd "$build"
    if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
        "$top/configure" -q "$@"
    fi
    make -j"$(nproc)" -s
}

no_build=0
if [ "${1:-}" = "--no-build" ]; then
    no_build=1
    shift
fi
[ "${PARLEY_SKIP_APT:-0}" = 1 ] || install_packages
[ $no_build = 1 ] || build_parley "$@"
