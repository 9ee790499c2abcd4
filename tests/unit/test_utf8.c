/*
 * test_utf8.c - the incremental UTF-8 validator against a table of valid and
 * invalid sequences (Markus Kuhn stress-test style), fed whole, at every
 * split point and byte by byte, and against an independent reference
 * decoder over every string of 1 to 3 bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

typedef struct {
    const char *name;
    const char *bytes;
    size_t len;
} sample_t;

#define S(name, lit)                                                           \
    {                                                                          \
        name, lit, sizeof(lit) - 1                                             \
    }

static const sample_t valid_samples[] = {
    S("empty", ""),
    S("ascii", "Hello, world"),
    S("ascii with NUL", "a\0b"),
    S("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    S("first 2-byte U+0080", "\xc2\x80"),
    S("last 2-byte U+07FF", "\xdf\xbf"),
    S("first 3-byte U+0800", "\xe0\xa0\x80"),
    S("last before surrogates U+D7FF", "\xed\x9f\xbf"),
    S("first after surrogates U+E000", "\xee\x80\x80"),
    S("U+FFFD", "\xef\xbf\xbd"),
    S("U+FFFF (noncharacter, valid)", "\xef\xbf\xbf"),
    S("first 4-byte U+10000", "\xf0\x90\x80\x80"),
    S("U+3FFFF via F0", "\xf0\xbf\xbf\xbf"),
    S("U+40000 via F1", "\xf1\x80\x80\x80"),
    S("last U+10FFFF", "\xf4\x8f\xbf\xbf"),
    S("emoji in ascii", "chat \xf0\x9f\x98\x80 room"),
    S("long mixed", "0123456789abcdef\xc3\xa9\xe2\x82\xac"
                    "0123456789"
                    "\xf0\x9f\x92\xa9 tail of the text 0123456789"),
};

static const sample_t invalid_samples[] = {
    S("lone continuation 80", "\x80"),
    S("lone continuation BF", "\xbf"),
    S("continuation after ascii", "abc\x80"),
    S("two continuations", "\x80\xbf"),
    S("overlong C0 80", "\xc0\x80"),
    S("overlong C1 BF", "\xc1\xbf"),
    S("overlong E0 80 80", "\xe0\x80\x80"),
    S("overlong E0 9F BF", "\xe0\x9f\xbf"),
    S("overlong F0 80 80 80", "\xf0\x80\x80\x80"),
    S("overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf"),
    S("5-byte F8 88 80 80 80", "\xf8\x88\x80\x80\x80"),
    S("6-byte FC 84 80 80 80 80", "\xfc\x84\x80\x80\x80\x80"),
    S("surrogate ED A0 80", "\xed\xa0\x80"),
    S("surrogate ED BF BF", "\xed\xbf\xbf"),
    S("surrogate pair", "\xed\xa0\x80\xed\xb0\x80"),
    S("above U+10FFFF F4 90 80 80", "\xf4\x90\x80\x80"),
    S("F5 lead", "\xf5\x80\x80\x80"),
    S("FE", "\xfe"),
    S("FF", "\xff"),
    S("truncated 2-byte", "\xc2"),
    S("truncated 3-byte", "\xe2\x82"),
    S("truncated 4-byte", "\xf0\x9f\x98"),
    S("truncated at end of text", "text \xe2\x82"),
    S("ascii inside 2-byte", "\xc2\x41"),
    S("ascii inside 3-byte", "\xe2\x82\x41"),
    S("ascii inside 4-byte", "\xf0\x9f\x98\x41"),
    S("lead after lead", "\xc3\xc3\xa9"),
    S("bad byte after 16 ascii", "0123456789abcdef\xff"),
};

static uint32_t feed_split(const uint8_t *p, size_t len, size_t cut)
{
    utf8_state_t s;
    utf8_reset(&s);
    uint32_t st = utf8_feed(&s, p, cut);
    if (st == UTF8_REJECT)
        return st;
    st = utf8_feed(&s, p + cut, len - cut);
    assert_int_equal(st, s.state);
    return st;
}

static uint32_t feed_bytewise(const uint8_t *p, size_t len)
{
    utf8_state_t s;
    utf8_reset(&s);
    for (size_t i = 0; i < len; i++)
        utf8_feed(&s, p + i, 1);
    return s.state;
}

static void check_sample(const sample_t *t, bool valid)
{
    const uint8_t *p = (const uint8_t *)t->bytes;

    if (utf8_valid(p, t->len) != valid)
        fail_msg("%s: whole", t->name);
    for (size_t cut = 0; cut <= t->len; cut++)
        if ((feed_split(p, t->len, cut) == UTF8_ACCEPT) != valid)
            fail_msg("%s: split at %zu", t->name, cut);
    if ((feed_bytewise(p, t->len) == UTF8_ACCEPT) != valid)
        fail_msg("%s: byte at a time", t->name);
}

static void test_valid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid_samples / sizeof *valid_samples; i++)
        check_sample(&valid_samples[i], true);
}

static void test_invalid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof invalid_samples / sizeof *invalid_samples;
         i++)
        check_sample(&invalid_samples[i], false);
}

/* Truncated sequences are "inside a code point", not rejected: more bytes
   in a later fragment could still complete them. */
static void test_partial_is_pending(void **state)
{
    static const char *prefixes[] = {"\xc2",     "\xe0\xa0",     "\xed\x9f",
                                     "\xf0\x90", "\xf4\x8f\xbf", "ab\xe2"};
    (void)state;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        utf8_state_t s;
        utf8_reset(&s);
        uint32_t st =
            utf8_feed(&s, (const uint8_t *)prefixes[i], strlen(prefixes[i]));
        assert_int_not_equal(st, UTF8_ACCEPT);
        assert_int_not_equal(st, UTF8_REJECT);
    }
}

/* A rejection is reported at the offending byte and then sticks. */
static void test_reject_is_early_and_sticky(void **state)
{
    utf8_state_t s;
    (void)state;
    utf8_reset(&s);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"\xed\xa0", 2),
                     UTF8_REJECT);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"abc", 3), UTF8_REJECT);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"", 0), UTF8_REJECT);
    utf8_reset(&s);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"abc", 3), UTF8_ACCEPT);
}

/* The 8-byte ASCII fast path: a bad byte or a multi-byte sequence at every
   offset of a long text, at every alignment of the buffer. */
static void test_fast_path_offsets(void **state)
{
    uint8_t buf[80];
    (void)state;
    for (size_t align = 0; align < 8; align++) {
        uint8_t *t = buf + align;
        size_t len = 64;
        for (size_t at = 0; at < len; at++) {
            memset(t, 'a', len);
            t[at] = 0x80;
            assert_false(utf8_valid(t, len));
            t[at] = 0xff;
            assert_false(utf8_valid(t, len));
            if (at + 1 < len) {
                t[at] = 0xc3;
                t[at + 1] = 0xa9;
                assert_true(utf8_valid(t, len));
            }
            if (at + 3 < len) {
                memcpy(t + at, "\xf0\x9f\x98\x80", 4);
                assert_true(utf8_valid(t, len));
                assert_false(utf8_valid(t, at + 2)); /* truncated */
            }
        }
    }
}

/* Independent reference: decodes by the RFC 3629 rules written out. */
static bool ref_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = p[i];
        size_t n;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            n = 2, cp = b & 0x1f, min = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            n = 3, cp = b & 0x0f, min = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            n = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

static void test_exhaustive_short(void **state)
{
    uint8_t b[3];
    (void)state;
    for (uint32_t v = 0; v < (1u << 24); v++) {
        b[0] = (uint8_t)(v >> 16);
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)v;
        if (v < 256)
            assert_int_equal(utf8_valid(b + 2, 1), ref_valid(b + 2, 1));
        if (v < 65536)
            assert_int_equal(utf8_valid(b + 1, 2), ref_valid(b + 1, 2));
        if (utf8_valid(b, 3) != ref_valid(b, 3))
            fail_msg("mismatch on %02x %02x %02x", b[0], b[1], b[2]);
    }
}

static void test_four_byte_leads(void **state)
{
    static const uint8_t tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                    0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    uint8_t b[4];
    (void)state;
    for (unsigned lead = 0xf0; lead <= 0xff; lead++)
        for (unsigned second = 0; second < 256; second++)
            for (size_t i = 0; i < sizeof tails; i++)
                for (size_t j = 0; j < sizeof tails; j++) {
                    b[0] = (uint8_t)lead;
                    b[1] = (uint8_t)second;
                    b[2] = tails[i];
                    b[3] = tails[j];
                    assert_int_equal(utf8_valid(b, 4), ref_valid(b, 4));
                    assert_int_equal(feed_bytewise(b, 4) == UTF8_ACCEPT,
                                     ref_valid(b, 4));
                }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_table),
        cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_partial_is_pending),
        cmocka_unit_test(test_reject_is_early_and_sticky),
        cmocka_unit_test(test_fast_path_offsets),
        cmocka_unit_test(test_exhaustive_short),
        cmocka_unit_test(test_four_byte_leads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
