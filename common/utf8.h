/*
 * utf8.h - incremental UTF-8 validation (RFC 3629), no I/O.
 *
 * The validator is a small DFA whose state survives between calls, so a
 * text message split across WebSocket fragments (even inside one code
 * point) is validated chunk by chunk.  It rejects overlong forms,
 * UTF-16 surrogates (U+D800..U+DFFF) and code points above U+10FFFF, and
 * runs a word-at-a-time fast path over ASCII.
 */
#ifndef PARLEY_UTF8_H
#define PARLEY_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    UTF8_ACCEPT = 0, /* at a code point boundary: a complete, valid text */
    UTF8_REJECT = 1  /* invalid: stays rejected until utf8_reset() */
};

typedef struct {
    uint32_t state; /* UTF8_ACCEPT, UTF8_REJECT or inside a sequence */
} utf8_state_t;

/* Starts a new text: the state is UTF8_ACCEPT. */
static inline void utf8_reset(utf8_state_t *s)
{
    s->state = UTF8_ACCEPT;
}

/*
 * Feeds len bytes of a text that may continue in later calls.
 * Returns UTF8_REJECT as soon as the bytes so far cannot be the start of
 * valid UTF-8, UTF8_ACCEPT when they end on a code point boundary, and
 * another value (in the middle of a code point) otherwise.  The end of a
 * text is valid only when the last call returned UTF8_ACCEPT.
 */
uint32_t utf8_feed(utf8_state_t *s, const uint8_t *p, size_t len);

/* Whole-buffer check: true when p[0..len) is complete, valid UTF-8. */
bool utf8_valid(const uint8_t *p, size_t len);

#endif
