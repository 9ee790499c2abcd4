#!/usr/bin/env bash
# Runs Parley's whole test suite and ends with the line "N passed, N failed"
# (test cases summed over every stage):
#
#   1. build/        -Werror build; make check: unit (cmocka), fuzz corpus
#                    replay, integration (real broker + gateways, Python
#                    websockets client), browser (headless Chromium)
#   2. build-asan/   the same suites but the browser one, built with
#                    AddressSanitizer + UndefinedBehaviorSanitizer
#   3. valgrind      the broker under valgrind's memcheck for the JSON chat
#                    and resume suites (in build/)
#   4. build-fuzz/   libFuzzer targets, each fuzzed for PARLEY_FUZZ_SECONDS
#                    (default 15) when clang is available
#   5. make distcheck (the release tarball builds and passes its unit tests)
#   6. format        every C file as .clang-format says (clang-format
#                    --dry-run --Werror; one step)
#
# Installs missing Debian packages first (scripts/setup.sh).  Environment:
# PARLEY_STAGES (default "check asan valgrind fuzz distcheck format"),
# PARLEY_FUZZ_SECONDS.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
stages=${PARLEY_STAGES:-check asan valgrind fuzz distcheck format}
jobs=$(nproc)
passed=0
failed=0

log() { printf '\n=== %s\n' "$*"; }

# Adds the totals of a test-suite.log to the running sums.
count_suite() {
    local f=$1 p x
    if [ ! -f "$f" ]; then
        echo "no test results in $f"
        failed=$((failed + 1))
        return
    fi
    p=$(awk '/^# PASS:/ {print $3}' "$f")
    x=$(awk '/^# (FAIL|ERROR|XPASS):/ {s += $3} END {print s + 0}' "$f")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${x:-0}))
    grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$f"
    # Show what failed, so CI logs explain themselves.
    grep -E '^(FAIL|ERROR|XPASS):' "$f" | head -n 50
    # and why: the failing cases with their diagnostics (automake copies
    # the logs of failed tests into test-suite.log)
    awk '/^not ok/ {n = 40} n > 0 && (/^not ok/ || /^#/) {print; n--}' "$f" |
        head -n 120
}

# Counts one pass or failure for a step that is not a test suite.
count_step() {
    if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

configure_in() {
    local dir=$1
    shift
    mkdir -p "$dir" && cd "$dir" || return 1
    if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
        "$top/configure" -q "$@" || return 1
    fi
    make -j"$jobs" -s
}

run_check() {
    local dir=$1
    shift
    (cd "$dir" && make -j"$jobs" check "$@" >check.out 2>&1)
    local rc=$?
    [ $rc -eq 0 ] || tail -n 30 "$dir/check.out"
    count_suite "$dir/test-suite.log"
}

log "setup (packages, autotools)"
"$top/scripts/setup.sh" --no-build || { echo "setup failed"; exit 1; }
(cd "$top" && { [ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ]; } ||
    autoreconf -fi) || { echo "autoreconf failed"; exit 1; }

for stage in $stages; do
    case $stage in
    check)
        log "stage check: -Werror build, all suites"
        if configure_in "$top/build" --enable-werror; then
            run_check "$top/build"
        else
            echo "build failed"; failed=$((failed + 1))
        fi
        ;;
    asan)
        log "stage asan: AddressSanitizer + UndefinedBehaviorSanitizer"
        if configure_in "$top/build-asan" --enable-werror --enable-sanitizers; then
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                PARLEY_SKIP_BROWSER=1 run_check "$top/build-asan"
        else
            echo "sanitizer build failed"; failed=$((failed + 1))
        fi
        ;;
    valgrind)
        log "stage valgrind: the broker under memcheck"
        if ! command -v valgrind >/dev/null; then
            echo "valgrind not installed"; failed=$((failed + 1))
            continue
        fi
        PARLEY_BROKER_VALGRIND=1 PARLEY_SKIP_BROWSER=1 run_check "$top/build" \
            TESTS="tests/integration/test_chat_json.py tests/integration/test_resume.py"
        ;;
    fuzz)
        log "stage fuzz: libFuzzer, ${PARLEY_FUZZ_SECONDS:-15}s per target"
        if ! command -v clang >/dev/null; then
            echo "clang not installed: fuzzing skipped"
            continue
        fi
        if configure_in "$top/build-fuzz" CC=clang --enable-fuzzing; then
            fuzz_tests=$(cd "$top/build-fuzz" && make -s -f Makefile -f - print-fuzz <<<'print-fuzz: ; @echo $(FUZZ_TESTS)')
            PARLEY_FUZZ_SECONDS=${PARLEY_FUZZ_SECONDS:-15} \
                run_check "$top/build-fuzz" TESTS="$fuzz_tests"
        else
            echo "fuzz build failed"; failed=$((failed + 1))
        fi
        ;;
    distcheck)
        log "stage distcheck: the release tarball builds and passes its unit tests"
        unit_tests=$(cd "$top/build" && make -s -f Makefile -f - print-unit <<<'print-unit: ; @echo $(UNIT_TESTS)')
        (cd "$top/build" && make -s distcheck TESTS="$unit_tests" >distcheck.out 2>&1)
        rc=$?
        [ $rc -eq 0 ] && echo "distcheck passed" || tail -n 40 "$top/build/distcheck.out"
        count_step $rc
        ;;
    format)
        log "stage format: clang-format (.clang-format) on every C file"
        if ! command -v clang-format >/dev/null; then
            echo "clang-format not installed"; failed=$((failed + 1))
            continue
        fi
        out=$(cd "$top" && git ls-files -z '*.c' '*.h' |
            xargs -0 clang-format --dry-run --Werror 2>&1)
        rc=$?
        [ $rc -eq 0 ] && echo "format clean" || printf '%s\n' "$out" | head -n 40
        count_step $rc
        ;;
    *)
        echo "unknown stage $stage"; failed=$((failed + 1))
        ;;
    esac
done

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
