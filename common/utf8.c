/*
 * utf8.c - incremental UTF-8 validation (RFC 3629 section 4), no I/O.
 *
 * Every byte is mapped to a class, and a 9-state DFA moves on the class.
 * States other than ACCEPT and REJECT say how many continuation bytes are
 * still due and, for the lead bytes E0, ED, F0 and F4, which narrower range
 * the first of them must fall in (that is where overlongs, surrogates and
 * code points above U+10FFFF are excluded).
 */
#include "utf8.h"

#include <string.h>

/* DFA states; ACCEPT and REJECT are the public values of utf8.h. */
enum {
    S_ACCEPT = UTF8_ACCEPT,
    S_REJECT = UTF8_REJECT,
    S_NEED1,    /* one continuation byte 80..BF due */
    S_NEED2,    /* two continuation bytes due */
    S_NEED2_E0, /* after E0: A0..BF, then one more (no overlongs) */
    S_NEED2_ED, /* after ED: 80..9F, then one more (no surrogates) */
    S_NEED3,    /* three continuation bytes due */
    S_NEED3_F0, /* after F0: 90..BF, then two more (no overlongs) */
    S_NEED3_F4, /* after F4: 80..8F, then two more (<= U+10FFFF) */
    S_COUNT
};

/* Byte classes. */
enum {
    C_ASCII, /* 00..7F */
    C_C8,    /* 80..8F */
    C_C9,    /* 90..9F */
    C_CA,    /* A0..BF */
    C_BAD,   /* C0, C1, F5..FF: never valid */
    C_L2,    /* C2..DF */
    C_E0,    /* E0 */
    C_L3,    /* E1..EC, EE, EF */
    C_ED,    /* ED */
    C_F0,    /* F0 */
    C_L4,    /* F1..F3 */
    C_F4,    /* F4 */
    C_COUNT
};

/* clang-format off: one row per 16 bytes */
static const uint8_t byte_class[256] = {
    /* 00..7F */
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    /* 80..8F */
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    /* 90..9F */
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    /* A0..BF */
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    3,
    /* C0..DF */
    4,
    4,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    /* E0..EF */
    6,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    7,
    8,
    7,
    7,
    /* F0..FF */
    9,
    10,
    10,
    10,
    11,
    4,
    4,
    4,
    4,
    4,
    4,
    4,
    4,
    4,
    4,
    4,
};
/* clang-format on */

#define R S_REJECT
static const uint8_t next_state[S_COUNT][C_COUNT] = {
    /*               ASCII 80-8F  90-9F  A0-BF  bad  C2-DF    E0
                     E1-EF      ED          F0          F1-F3    F4 */
    [S_ACCEPT] = {S_ACCEPT, R, R, R, R, S_NEED1, S_NEED2_E0, S_NEED2,
                  S_NEED2_ED, S_NEED3_F0, S_NEED3, S_NEED3_F4},
    [S_REJECT] = {R, R, R, R, R, R, R, R, R, R, R, R},
    [S_NEED1] = {R, S_ACCEPT, S_ACCEPT, S_ACCEPT, R, R, R, R, R, R, R, R},
    [S_NEED2] = {R, S_NEED1, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R},
    [S_NEED2_E0] = {R, R, R, S_NEED1, R, R, R, R, R, R, R, R},
    [S_NEED2_ED] = {R, S_NEED1, S_NEED1, R, R, R, R, R, R, R, R, R},
    [S_NEED3] = {R, S_NEED2, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R},
    [S_NEED3_F0] = {R, R, S_NEED2, S_NEED2, R, R, R, R, R, R, R, R},
    [S_NEED3_F4] = {R, S_NEED2, R, R, R, R, R, R, R, R, R, R},
};
#undef R

/* True when the 8 bytes at p are all ASCII (no high bit set). */
static inline bool ascii8(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return (w & UINT64_C(0x8080808080808080)) == 0;
}

uint32_t utf8_feed(utf8_state_t *s, const uint8_t *p, size_t len)
{
    uint32_t st = s->state;
    size_t i = 0;

    if (st >= S_COUNT)
        st = S_REJECT; /* a corrupted state is never trusted */
    while (i < len && st != S_REJECT) {
        if (st == S_ACCEPT) {
            while (len - i >= 8 && ascii8(p + i))
                i += 8;
            if (i == len)
                break;
        }
        st = next_state[st][byte_class[p[i]]];
        i++;
    }
    s->state = st;
    return st;
}

bool utf8_valid(const uint8_t *p, size_t len)
{
    utf8_state_t s;
    utf8_reset(&s);
    return utf8_feed(&s, p, len) == UTF8_ACCEPT;
}
