/*
 * util.h - small helpers shared by both programs: clocks, ids, number
 * parsing.  No I/O except util_random() (getrandom).
 */
#ifndef PARLEY_UTIL_H
#define PARLEY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Milliseconds of CLOCK_MONOTONIC (for timeouts). */
uint64_t util_mono_ms(void);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME, for timestamps). */
uint64_t util_wall_ms(void);

/* Fills buf with len random bytes (getrandom, falling back to
 * /dev/urandom).  Returns 0, or -1 if no randomness is available. */
int util_random(void *buf, size_t len);

/* Writes 2*len lowercase hex digits of len random bytes plus a NUL to out
 * (out has 2*len+1 bytes).  Returns 0 or -1. */
int util_random_hex(char *out, size_t len);

/*
 * Parses a whole decimal unsigned number s[0..len) (no sign, no
 * whitespace) into *out.  Returns 0, or -1 on an empty string, a non-digit
 * or overflow.
 */
int util_parse_u64(const char *s, size_t len, uint64_t *out);

#endif
