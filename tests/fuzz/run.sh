#!/bin/sh
# Runs one fuzz target as a TAP test.
#   run.sh BINARY CORPUS_DIR FUZZING(yes|no)
# Without libFuzzer the binary replays the seed corpus (under the sanitizers
# of the build).  With libFuzzer it fuzzes for PARLEY_FUZZ_SECONDS (default
# 20) starting from a scratch copy of the corpus, so the repository's seeds
# are never rewritten; a crash leaves its reproducer in the build tree.
bin=$1 corpus=$2 fuzzing=$3
name=$(basename "$bin")
echo "1..1"
if [ ! -d "$corpus" ]; then
    echo "not ok 1 - $name: no corpus at $corpus"
    exit 0
fi
if [ "$fuzzing" = yes ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/parley-fuzz.XXXXXX") || exit 1
    cp "$corpus"/* "$work"/ 2>/dev/null
    secs=${PARLEY_FUZZ_SECONDS:-20}
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="./$name-" "$work" >"$name.fuzz.log" 2>&1; then
        echo "ok 1 - $name: fuzzed ${secs}s, $(grep -c . "$name.fuzz.log") log lines"
    else
        echo "not ok 1 - $name: crash, see $name.fuzz.log"
        tail -n 40 "$name.fuzz.log" | sed 's/^/# /'
    fi
    rm -rf "$work"
else
    if out=$("$bin" "$corpus" 2>&1); then
        echo "ok 1 - $name: $out"
    else
        echo "not ok 1 - $name"
        echo "$out" | tail -n 40 | sed 's/^/# /'
    fi
fi
