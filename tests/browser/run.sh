#!/bin/sh
# Runs the browser tests of the web client and prints TAP on stdout.
#
#   tests/browser/run.sh            (from the build directory)
#
# Installs playwright-core into tests/browser/node_modules when it is missing
# (npm ci, falling back to npm install; never downloads a browser: the tests
# use Debian's /usr/bin/chromium).  Exits 0 whenever the test runner ran:
# the TAP output carries the results.  Exits 0 with "1..0 # SKIP" when node
# or Chromium is not installed, non-zero when the runner could not be set up.
#
# Environment: PARLEY_SKIP_BROWSER=1 skips the suite, PARLEY_BUILDDIR (default: the current directory),
# PARLEY_SRCDIR (default: two levels above this script), CHROMIUM.
set -u

here=$(cd "$(dirname "$0")" && pwd) || exit 1
PARLEY_BUILDDIR=${PARLEY_BUILDDIR:-$(pwd)}
PARLEY_SRCDIR=${PARLEY_SRCDIR:-$(cd "$here/../.." && pwd)}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export PARLEY_BUILDDIR PARLEY_SRCDIR CHROMIUM

if [ "${PARLEY_SKIP_BROWSER:-0}" = 1 ]; then
    echo "1..0 # SKIP PARLEY_SKIP_BROWSER=1 (the sanitizer stage skips the browser)"
    exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "1..0 # SKIP node and npm are not installed"
    exit 0
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "1..0 # SKIP $CHROMIUM is not installed (apt-get install chromium)"
    exit 0
fi

cd "$here" || exit 1
if [ ! -d node_modules/playwright-core ]; then
    export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
    if ! npm ci --no-audit --no-fund >&2; then
        echo "run.sh: npm ci failed, trying npm install" >&2
        if ! npm install --no-audit --no-fund >&2; then
            echo "Bail out! cannot install playwright-core from npm"
            exit 1
        fi
    fi
fi

node --test --test-reporter=tap --test-timeout=300000 chat.test.mjs
rc=$?
# node's runner exits 1 when a test failed: the TAP says which.
case $rc in
    0|1) exit 0 ;;
    *) echo "Bail out! node --test exited with status $rc"; exit "$rc" ;;
esac
