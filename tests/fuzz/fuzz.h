/*
 * fuzz.h - what every fuzz target shares: the libFuzzer entry point (built
 * with -fsanitize=fuzzer, or driven by replay.c over the seed corpus in
 * make check) and CHECK, an invariant that aborts when it does not hold,
 * so that the fuzzer reports it as a crash.
 */
#ifndef PARLEY_FUZZ_H
#define PARLEY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            abort();                                                           \
    } while (0)

#endif
