#!/bin/sh
# bench/run.sh - Parley's benchmark suite (what `make bench` runs).
#
# Builds nothing: `make bench` has already built parley-broker,
# parley-gateway and parley-bench.  Starts the servers on free ports, pins
# them to CPU 0 and the load to CPU 1 when there are two CPUs, runs the
# scenarios S1..S6 and writes docs/benchmarks.md.
#
#   BENCH_QUICK=1   a smoke run of about two minutes (smaller scenarios)
#   BENCH_PEERS=1   (or --peers) also run Node's ws, uWebSockets.js and Bun,
#                   installed with npm into $TMPDIR/parley-peers (never into
#                   the repository); 3 alternating runs each
#   BENCH_OUT=FILE  where to write the report (default docs/benchmarks.md
#                   of the source tree)
#   BENCH_ONLY=S1,S3  run only these scenarios
#   bench/run.sh --profile  profile Parley again at the last S1 saturation
#   bench/run.sh --render  rewrite the report from the last run (after
#                   editing bench/findings.md)
# Every server runs in its own process group and is killed by PID; every
# wait is bounded.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PARLEY_SRCDIR=${PARLEY_SRCDIR:-$(dirname "$here")}
PARLEY_BUILDDIR=${PARLEY_BUILDDIR:-$(pwd)}
export PARLEY_SRCDIR PARLEY_BUILDDIR
for p in parley-broker parley-gateway parley-bench; do
    if [ ! -x "$PARLEY_BUILDDIR/$p" ]; then
        echo "bench: $PARLEY_BUILDDIR/$p is not built (run make first)" >&2
        exit 2
    fi
done
exec /usr/bin/python3 "$here/run_bench.py" "$@"
