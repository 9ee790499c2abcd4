/*
 * test_frame_cache.c - the shared broadcast frames: the hand-written JSON
 * escaping of the `msg` frame (checked byte for byte and by decoding it
 * with jansson), frame headers for every length encoding, and the
 * copy-or-reference hand-off to an evbuffer with its reference counting,
 * and the permessage-deflate variant of a frame (RSV1, inflates back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "frame_cache.h"

/* Escapes s and checks the output and json_escape_len(). */
static void check_escape(const char *s, size_t len, const char *want)
{
    char out[512];
    size_t need = json_escape_len(s, len);
    assert_true(need < sizeof out);
    size_t n = json_escape(out, s, len);
    assert_int_equal(n, need);
    out[n] = '\0';
    assert_string_equal(out, want);
}

static void test_escape_ascii(void **state)
{
    (void)state;
    check_escape("hello", 5, "hello");
    check_escape("", 0, "");
    check_escape("a\"b\\c", 5, "a\\\"b\\\\c");
    check_escape("/<>'", 4, "/<>'");
}

static void test_escape_controls(void **state)
{
    (void)state;
    check_escape("\n\r\t\b\f", 5, "\\n\\r\\t\\b\\f");
    check_escape("\x01\x1f", 2, "\\u0001\\u001f");
    check_escape("a\0b", 3, "a\\u0000b");
    check_escape("\x7f", 1, "\x7f"); /* DEL needs no escape in JSON */
}

static void test_escape_utf8(void **state)
{
    (void)state;
    check_escape("h\xc3\xa9llo", 6, "h\xc3\xa9llo");
    check_escape("\xe2\x82\xac", 3, "\xe2\x82\xac");
    check_escape("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");
    /* invalid bytes become U+FFFD, one per byte */
    check_escape("\xff", 1, "\\ufffd");
    check_escape("a\xc3", 2, "a\\ufffd");          /* truncated at the end */
    check_escape("\xc0\xaf", 2, "\\ufffd\\ufffd"); /* overlong */
    check_escape("\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd"); /* surrogate */
    check_escape("\xe2\x82x", 3, "\\ufffd\\ufffdx");
}

/* Payload of a single unmasked frame f, checking its header. */
static const char *payload_of(const frame_t *f, size_t *len)
{
    assert_true(f->len >= 2);
    assert_int_equal(f->data[0], 0x81); /* FIN, text */
    size_t n = f->data[1] & 0x7f, off = 2;
    assert_int_equal(f->data[1] & 0x80, 0); /* server frames: no mask */
    if (n == 126) {
        n = (size_t)f->data[2] << 8 | f->data[3];
        off = 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | f->data[2 + i];
        off = 10;
    }
    assert_int_equal(off + n, f->len);
    *len = n;
    return (const char *)f->data + off;
}

static void test_msg_exact(void **state)
{
    (void)state;
    frame_t *f = frame_new_msg_json("lobby", 5, 58, 1763900000123ull, "bob", 3,
                                    "hi \"you\"", 8);
    assert_non_null(f);
    size_t len;
    const char *p = payload_of(f, &len);
    const char *want = "{\"type\":\"msg\",\"room\":\"lobby\",\"seq\":58,"
                       "\"ts\":1763900000123,\"nick\":\"bob\","
                       "\"text\":\"hi \\\"you\\\"\"}";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(p, want, len);
    frame_unref(f);
}

/* The frame decodes with jansson to the same fields. */
static void check_roundtrip(const char *nick, size_t nick_len, const char *text,
                            size_t text_len, const char *want_text,
                            size_t want_len)
{
    frame_t *f = frame_new_msg_json("r-1.x", 5, UINT64_MAX / 2, 7, nick,
                                    nick_len, text, text_len);
    assert_non_null(f);
    size_t len;
    const char *p = payload_of(f, &len);
    json_error_t err;
    json_t *o = json_loadb(p, len, JSON_ALLOW_NUL, &err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "msg");
    assert_string_equal(json_string_value(json_object_get(o, "room")), "r-1.x");
    assert_true(json_integer_value(json_object_get(o, "seq")) ==
                (json_int_t)(UINT64_MAX / 2));
    assert_int_equal(json_integer_value(json_object_get(o, "ts")), 7);
    json_t *n = json_object_get(o, "nick"), *t = json_object_get(o, "text");
    assert_int_equal(json_string_length(n), nick_len);
    assert_memory_equal(json_string_value(n), nick, nick_len);
    assert_int_equal(json_string_length(t), want_len);
    assert_memory_equal(json_string_value(t), want_text, want_len);
    json_decref(o);
    frame_unref(f);
}

static void test_msg_roundtrip(void **state)
{
    (void)state;
    static const char tricky[] = "tab\there \"q\" back\\slash nl\n "
                                 "nul\0 \x1b[0m \xc3\xa9\xe2\x82\xac";
    check_roundtrip("\xc3\xa9ve", 4, tricky, sizeof tricky - 1, tricky,
                    sizeof tricky - 1);
    /* invalid UTF-8 (cannot come from a client, but stays valid JSON) */
    check_roundtrip("n", 1,
                    "a\xff"
                    "b",
                    3,
                    "a\xef\xbf\xbd"
                    "b",
                    5);
}

static void test_msg_large(void **state)
{
    (void)state;
    size_t n = 70000;
    char *text = malloc(n);
    assert_non_null(text);
    memset(text, '"', n); /* every byte doubles: a 64-bit length */
    frame_t *f = frame_new_msg_json("a", 1, 1, 1, "b", 1, text, n);
    assert_non_null(f);
    size_t len;
    payload_of(f, &len);
    assert_true(len > 2 * n);
    frame_unref(f);
    free(text);
}

static void test_frame_new_lengths(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *p = calloc(1, lens[i] + 1);
        assert_non_null(p);
        frame_t *f = frame_new(WS_OP_TEXT, p, lens[i]);
        assert_non_null(f);
        size_t len;
        payload_of(f, &len);
        assert_int_equal(len, lens[i]);
        frame_unref(f);
        free(p);
    }
}

static void test_queue_small_copies(void **state)
{
    (void)state;
    frame_t *f = frame_new(WS_OP_TEXT, "hello", 5);
    assert_non_null(f);
    struct evbuffer *b = evbuffer_new();
    assert_int_equal(frame_queue(b, f), 0);
    assert_int_equal(frame_queue(b, f), 0);
    assert_int_equal(f->refs, 1); /* copied, not referenced */
    assert_int_equal(evbuffer_get_length(b), 2 * f->len);
    unsigned char out[14];
    assert_int_equal(evbuffer_remove(b, out, sizeof out), 14);
    assert_memory_equal(out, f->data, 7);
    assert_memory_equal(out + 7, f->data, 7);
    evbuffer_free(b);
    frame_unref(f);
}

static void test_queue_large_references(void **state)
{
    (void)state;
    size_t n = FRAME_REF_THRESHOLD * 2;
    char *p = malloc(n);
    assert_non_null(p);
    memset(p, 'x', n);
    frame_t *f = frame_new(WS_OP_TEXT, p, n);
    free(p);
    assert_non_null(f);
    struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
    assert_int_equal(frame_queue(a, f), 0);
    assert_int_equal(frame_queue(b, f), 0);
    assert_int_equal(f->refs, 3);
    assert_int_equal(evbuffer_get_length(a), f->len);
    evbuffer_drain(a, f->len); /* written: the reference is dropped */
    assert_int_equal(f->refs, 2);
    evbuffer_free(b); /* connection freed with output queued */
    assert_int_equal(f->refs, 1);
    evbuffer_free(a);
    frame_unref(f);
}

static void test_frame_payload(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 125, 126, 65535, 65536};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *p = calloc(1, lens[i] + 1);
        assert_non_null(p);
        frame_t *f = frame_new(WS_OP_TEXT, p, lens[i]);
        assert_non_null(f);
        size_t want, got;
        const char *wp = payload_of(f, &want);
        const uint8_t *gp = frame_payload(f, &got);
        assert_int_equal(got, want);
        assert_ptr_equal(gp, (const uint8_t *)wp);
        frame_unref(f);
        free(p);
    }
}

/* A deflated frame of text: FIN + RSV1 + text, and it inflates back. */
static void check_deflated(pmd_compressor_t *z, const char *text, size_t len)
{
    frame_t *f = frame_new_deflated(z, WS_OP_TEXT, text, len);
    assert_non_null(f);
    assert_int_equal(f->data[0], 0xC1);
    size_t n;
    const uint8_t *p = frame_payload(f, &n);
    assert_int_equal((size_t)(p - f->data) + n, f->len);
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, 15, false);
    pmd_buf_t out = {0};
    assert_int_equal(pmd_inflate(&inf, p, n, len, &out), 0);
    assert_int_equal(out.len, len);
    if (len > 0)
        assert_memory_equal(out.data, text, len);
    pmd_buf_free(&out);
    pmd_inflater_free(&inf);
    frame_unref(f);
}

static void test_deflated(void **state)
{
    (void)state;
    pmd_compressor_t z = {0};
    assert_int_equal(pmd_compressor_init(&z, 15, 6), 0);
    size_t n = 100000; /* compresses to more than 125 bytes: long header */
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + (i * 7919 % 26));
    check_deflated(&z, "", 0);
    check_deflated(&z, "hello hello hello hello", 23);
    check_deflated(&z, big, n);
    /* each message alone: the same input gives the same bytes again */
    frame_t *a = frame_new_deflated(&z, WS_OP_TEXT, big, 1000);
    frame_t *b = frame_new_deflated(&z, WS_OP_TEXT, big, 1000);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
    frame_unref(a);
    frame_unref(b);
    free(big);
    pmd_compressor_free(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_ascii),
        cmocka_unit_test(test_escape_controls),
        cmocka_unit_test(test_escape_utf8),
        cmocka_unit_test(test_msg_exact),
        cmocka_unit_test(test_msg_roundtrip),
        cmocka_unit_test(test_msg_large),
        cmocka_unit_test(test_frame_new_lengths),
        cmocka_unit_test(test_queue_small_copies),
        cmocka_unit_test(test_queue_large_references),
        cmocka_unit_test(test_frame_payload),
        cmocka_unit_test(test_deflated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
