/*
 * fuzz_utf8.c - differential fuzzing of the UTF-8 validator: the whole-
 * buffer check, incremental feeding at a split point taken from the first
 * byte, feeding byte by byte, and a plain reference decoder written here
 * must all agree.  Any disagreement aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "fuzz.h"

/* Length of the sequence a lead byte starts, 0 when it cannot lead. */
static size_t seq_len(uint8_t b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xc0 && b < 0xe0)
        return 2;
    if (b >= 0xe0 && b < 0xf0)
        return 3;
    if (b >= 0xf0 && b < 0xf8)
        return 4;
    return 0;
}

/* Decodes one code point at p (n bytes long); false when invalid. */
static bool ref_decode_one(const uint8_t *p, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t cp = n == 1 ? p[0] : p[0] & (0x7f >> n);
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return false;
        cp = cp << 6 | (p[k] & 0x3f);
    }
    if (cp < min_cp[n] || cp > 0x10ffff)
        return false;
    return cp < 0xd800 || cp > 0xdfff;
}

static bool ref_valid(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = seq_len(p[i]);
        if (n == 0 || len - i < n || !ref_decode_one(p + i, n))
            return false;
        i += n;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cut = data[0] % size;
    const uint8_t *text = data + 1;
    size_t len = size - 1;
    bool whole = utf8_valid(text, len);

    if (whole != ref_valid(text, len))
        abort();
    utf8_state_t s;
    utf8_reset(&s);
    uint32_t first = utf8_feed(&s, text, cut);
    uint32_t st = utf8_feed(&s, text + cut, len - cut);
    if ((st == UTF8_ACCEPT) != whole || st != s.state)
        abort();
    if (first == UTF8_REJECT && st != UTF8_REJECT)
        abort(); /* a rejection must stick */
    utf8_reset(&s);
    for (size_t i = 0; i < len; i++)
        utf8_feed(&s, text + i, 1);
    if ((s.state == UTF8_ACCEPT) != whole)
        abort();
    return 0;
}
