#!/usr/bin/env bash
# Sets Parley up (packages, build) and runs it from the build tree under
# supervisord in the foreground: one broker and two gateways sharing
# http://127.0.0.1:8080.  Ctrl-C stops everything.
#
#   scripts/run.sh
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"

mkdir -p "$top/run"
cat <<MSG

Parley is starting: broker + 2 gateways under supervisord.
  chat:     http://127.0.0.1:8080/
  status:   supervisorctl -c $top/etc/supervisord.conf status
  logs:     $top/run/*.log
  stop:     Ctrl-C (or supervisorctl -c $top/etc/supervisord.conf shutdown)

MSG
exec supervisord -c "$top/etc/supervisord.conf"
