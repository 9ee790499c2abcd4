/*
 * test_pmd.c - permessage-deflate: the negotiation table (browser offers,
 * declined offers, fallback to a later offer, server policy), round trips
 * at every window size checked against plain zlib, the RFC 7692 examples,
 * the zip-bomb bound, corrupt input, and context takeover.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "pmd.h"

/* --- negotiation ---------------------------------------------------------- */

static ws_handshake_t hs;
static char extbuf[512]; /* hs borrows from it */

/* Negotiates the Sec-WebSocket-Extensions value ext under cfg. */
static int nego(const char *ext, const pmd_config_t *cfg, pmd_params_t *p,
                char *resp, size_t cap)
{
    size_t n = strlen(ext);
    assert_true(n < sizeof extbuf);
    memcpy(extbuf, ext, n);
    memset(&hs, 0, sizeof hs);
    assert_int_equal(ws_parse_extensions(extbuf, n, &hs), 0);
    return pmd_negotiate(&hs, cfg, p, resp, cap);
}

/* Asserts that ext negotiates to the response want (NULL: declined). */
static void expect(const char *ext, const pmd_config_t *cfg, const char *want,
                   pmd_params_t *p)
{
    char resp[PMD_RESPONSE_MAX];
    int rc = nego(ext, cfg, p, resp, sizeof resp);
    if (want == NULL) {
        assert_int_equal(rc, 0);
        assert_string_equal(resp, "");
        assert_false(p->server_no_context_takeover);
        return;
    }
    assert_int_equal(rc, 1);
    assert_string_equal(resp, want);
    assert_true(p->server_no_context_takeover);
}

#define SNCT "permessage-deflate; server_no_context_takeover"

static void test_browser_offers(void **state)
{
    pmd_params_t p;
    /* Chrome */
    expect("permessage-deflate; client_max_window_bits", NULL,
           SNCT "; client_max_window_bits=15", &p);
    assert_false(p.client_no_context_takeover);
    assert_int_equal(p.server_window_bits, 15);
    assert_int_equal(p.client_window_bits, 15);
    /* Firefox: no client_max_window_bits, so none in the answer. */
    expect("permessage-deflate", NULL, SNCT, &p);
    assert_int_equal(p.client_window_bits, 15);
    /* Safari-style: both no_context_takeover flags. */
    expect("permessage-deflate; server_no_context_takeover; "
           "client_no_context_takeover",
           NULL, SNCT "; client_no_context_takeover", &p);
    assert_true(p.client_no_context_takeover);
}

static void test_window_bits(void **state)
{
    pmd_params_t p;
    expect("permessage-deflate; server_max_window_bits=10", NULL,
           SNCT "; server_max_window_bits=10", &p);
    assert_int_equal(p.server_window_bits, 10);
    expect("permessage-deflate; server_max_window_bits=9; "
           "client_max_window_bits=12",
           NULL, SNCT "; server_max_window_bits=9; client_max_window_bits=12",
           &p);
    assert_int_equal(p.server_window_bits, 9);
    assert_int_equal(p.client_window_bits, 12);
    /* A quoted value is the same token. */
    expect("permessage-deflate; client_max_window_bits=\"10\"", NULL,
           SNCT "; client_max_window_bits=10", &p);
    /* client_max_window_bits=8 is the client's own promise: accepted. */
    expect("permessage-deflate; client_max_window_bits=8", NULL,
           SNCT "; client_max_window_bits=8", &p);
    assert_int_equal(p.client_window_bits, 8);
    /* server_max_window_bits=8 alone: declined, no extension. */
    expect("permessage-deflate; server_max_window_bits=8", NULL, NULL, &p);
    /* ... and with a fallback offer, the fallback is taken. */
    expect("permessage-deflate; server_max_window_bits=8, "
           "permessage-deflate; client_max_window_bits",
           NULL, SNCT "; client_max_window_bits=15", &p);
    assert_int_equal(p.server_window_bits, 15);
}

static void test_declined(void **state)
{
    static const char *const bad[] = {
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=07",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=015",
        "permessage-deflate; client_max_window_bits=1",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; client_no_context_takeover; "
        "client_no_context_takeover",
        "permessage-deflate; client_max_window_bits; "
        "client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; "
        "server_max_window_bits=10",
        "permessage-deflate; foo",
        "permessage-deflate; x-webkit=1",
        "x-webkit-deflate-frame",
        "deflate-frame; client_max_window_bits",
        "permessage-deflat",
        "permessage-deflate; a; b; c; d; e; f; g; h; i; j",
    };
    pmd_params_t p;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("# offer: %s\n", bad[i]);
        expect(bad[i], NULL, NULL, &p);
    }
}

static void test_first_acceptable_offer(void **state)
{
    pmd_params_t p;
    expect("permessage-deflate; client_max_window_bits=16, "
           "permessage-deflate; client_no_context_takeover; "
           "client_max_window_bits=12, permessage-deflate",
           NULL, SNCT "; client_no_context_takeover; client_max_window_bits=12",
           &p);
    assert_true(p.client_no_context_takeover);
    assert_int_equal(p.client_window_bits, 12);
    /* Other extensions before it are skipped. */
    expect("x-webkit-deflate-frame, foo; bar=1, permessage-deflate", NULL, SNCT,
           &p);
    /* Extension and parameter names are ASCII case-insensitive. */
    expect("PerMessage-Deflate; Client_Max_Window_Bits", NULL,
           SNCT "; client_max_window_bits=15", &p);
}

static void test_server_policy(void **state)
{
    pmd_params_t p;
    pmd_config_t cfg = {.client_max_window_bits = 10};
    /* A bound on the client's window is sent only if it was offered. */
    expect("permessage-deflate; client_max_window_bits", &cfg,
           SNCT "; client_max_window_bits=10", &p);
    assert_int_equal(p.client_window_bits, 10);
    expect("permessage-deflate; client_max_window_bits=12", &cfg,
           SNCT "; client_max_window_bits=10", &p);
    expect("permessage-deflate; client_max_window_bits=9", &cfg,
           SNCT "; client_max_window_bits=9", &p);
    expect("permessage-deflate", &cfg, SNCT, &p);
    assert_int_equal(p.client_window_bits, 15);

    /* The server's compressor window answers a larger request. */
    cfg = (pmd_config_t){.server_max_window_bits = 12};
    expect("permessage-deflate; server_max_window_bits=14", &cfg,
           SNCT "; server_max_window_bits=12", &p);
    assert_int_equal(p.server_window_bits, 12);
    expect("permessage-deflate", &cfg, SNCT, &p);
    assert_int_equal(p.server_window_bits, 12);

    /* Asking every client not to take over its context. */
    cfg = (pmd_config_t){.client_no_context_takeover = true};
    expect("permessage-deflate", &cfg, SNCT "; client_no_context_takeover", &p);
    assert_true(p.client_no_context_takeover);

    /* Out-of-range settings fall back to 15. */
    cfg = (pmd_config_t){.client_max_window_bits = 8,
                         .server_max_window_bits = 20};
    expect("permessage-deflate; client_max_window_bits", &cfg,
           SNCT "; client_max_window_bits=15", &p);
    assert_int_equal(p.server_window_bits, 15);
}

static void test_response_too_small(void **state)
{
    pmd_params_t p;
    const char *ext = "permessage-deflate; client_max_window_bits";
    const char *want = SNCT "; client_max_window_bits=15";
    char resp[PMD_RESPONSE_MAX];
    size_t n = strlen(want);
    assert_int_equal(nego(ext, NULL, &p, resp, n), -1);
    assert_string_equal(resp, "");
    assert_false(p.server_no_context_takeover);
    assert_int_equal(nego(ext, NULL, &p, resp, n + 1), 1);
    assert_string_equal(resp, want);
    /* The longest possible answer fits PMD_RESPONSE_MAX. */
    assert_int_equal(nego("permessage-deflate; client_no_context_takeover; "
                          "server_max_window_bits=15; "
                          "client_max_window_bits=15",
                          NULL, &p, resp, sizeof resp),
                     1);
    assert_true(strlen(resp) < PMD_RESPONSE_MAX);
    /* No offer at all. */
    memset(&hs, 0, sizeof hs);
    assert_int_equal(pmd_negotiate(&hs, NULL, &p, resp, sizeof resp), 0);
}

static void test_through_handshake(void **state)
{
    static const char head[] =
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; "
        "server_max_window_bits=8\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; "
        "client_max_window_bits\r\n\r\n";
    static const http_limits_t lim = {1024, 8192, 64};
    http_request_t req;
    ws_handshake_t h;
    pmd_params_t p;
    char resp[PMD_RESPONSE_MAX];
    size_t n = sizeof head - 1;
    assert_int_equal(http_parse_request(head, n, 0, &lim, &req), (int)n);
    assert_int_equal(ws_handshake_check(&req, &h), 0);
    assert_int_equal(pmd_negotiate(&h, NULL, &p, resp, sizeof resp), 1);
    assert_string_equal(resp, SNCT "; client_max_window_bits=15");
}

/* --- helpers for the data tests ------------------------------------------- */

static uint32_t rng = 12345;

static void fill(uint8_t *buf, size_t len, bool random)
{
    static const char text[] = "the quick brown fox jumps over the lazy dog ";
    for (size_t i = 0; i < len; i++) {
        if (random) {
            rng = rng * 1103515245u + 12345u;
            buf[i] = (uint8_t)(rng >> 16);
        } else {
            buf[i] = (uint8_t)text[i % (sizeof text - 1)];
        }
    }
}

/* Plain zlib, independent of pmd.c: raw inflate of payload + 00 00 ff ff. */
static size_t zlib_inflate_plain(const uint8_t *payload, size_t n, uint8_t *out,
                                 size_t cap)
{
    uint8_t *in = malloc(n + 4);
    assert_non_null(in);
    memcpy(in, payload, n);
    memcpy(in + n, "\x00\x00\xff\xff", 4);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit2(&zs, -15), Z_OK);
    zs.next_in = in;
    zs.avail_in = (uInt)(n + 4);
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int rc = inflate(&zs, Z_SYNC_FLUSH);
    assert_true(rc == Z_OK || rc == Z_BUF_ERROR);
    assert_int_equal(zs.avail_in, 0);
    size_t got = cap - zs.avail_out;
    inflateEnd(&zs);
    free(in);
    return got;
}

/*
 * A client-style deflater (raw, sync flush, 00 00 ff ff stripped) that
 * keeps its context across messages unless reset.
 */
static size_t client_deflate(z_stream *zs, const void *msg, size_t len,
                             uint8_t *out, size_t cap)
{
    zs->next_in = (Bytef *)msg;
    zs->avail_in = (uInt)len;
    zs->next_out = out;
    zs->avail_out = (uInt)cap;
    assert_int_equal(deflate(zs, Z_SYNC_FLUSH), Z_OK);
    assert_int_equal(zs->avail_in, 0);
    assert_true(zs->avail_out > 0);
    size_t n = cap - zs->avail_out;
    assert_true(n >= 4);
    assert_memory_equal(out + n - 4, "\x00\x00\xff\xff", 4);
    return n - 4;
}

/* --- compression and decompression ---------------------------------------- */

static void round_trip(pmd_compressor_t *c, pmd_inflater_t *shared,
                       const uint8_t *msg, size_t len, int bits)
{
    uint8_t *frame;
    size_t n;
    pmd_buf_t out = {0};
    assert_int_equal(pmd_compress(c, msg, len, &frame, &n), 0);
    const uint8_t *payload = frame + PMD_HEADROOM;
    assert_true(n > 0);

    /* Independent check with plain zlib. */
    uint8_t *plain = malloc(len + 1);
    assert_non_null(plain);
    assert_int_equal(zlib_inflate_plain(payload, n, plain, len + 1), len);
    assert_memory_equal(plain, msg, len);
    free(plain);

    /* A per-connection inflater at the same window, no takeover. */
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, bits, false);
    assert_int_equal(pmd_inflate(&inf, payload, n, len, &out), 0);
    assert_int_equal(out.len, len);
    assert_memory_equal(out.data, msg, len);
    assert_null(inf.zs); /* freed after the message */

    /* The worker-wide inflater. */
    assert_int_equal(pmd_inflate_oneshot(shared, payload, n, len, &out), 0);
    assert_int_equal(out.len, len);
    assert_memory_equal(out.data, msg, len);
    pmd_buf_free(&out);
}

static void test_round_trip(void **state)
{
    static const size_t sizes[] = {0, 1, 125, 65536};
    uint8_t *msg = malloc(65536);
    assert_non_null(msg);
    pmd_inflater_t shared;
    pmd_inflater_init(&shared, 15, false);
    for (int bits = 9; bits <= 15; bits++) {
        pmd_compressor_t c;
        assert_int_equal(pmd_compressor_init(&c, bits, -1), 0);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (int random = 0; random <= 1; random++) {
                fill(msg, sizes[s], random);
                round_trip(&c, &shared, msg, sizes[s], bits);
            }
        }
        pmd_compressor_free(&c);
        pmd_compressor_free(&c); /* twice is harmless */
    }
    pmd_inflater_free(&shared);
    free(msg);
}

static void test_compress_shape(void **state)
{
    pmd_compressor_t c;
    uint8_t *frame, first[64];
    size_t n, n1;
    assert_int_equal(pmd_compressor_init(&c, 0, -1), 0);
    assert_int_equal(c.window_bits, 15);
    /* RFC 7692 7.2.3.6: an empty message compresses to a single 0x00. */
    assert_int_equal(pmd_compress(&c, NULL, 0, &frame, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(frame[PMD_HEADROOM], 0x00);
    /* Fresh context per message: the same message, the same bytes, so a
     * broadcast compressed once is valid for every client. */
    assert_int_equal(pmd_compress(&c, (const uint8_t *)"Hello", 5, &frame, &n1),
                     0);
    assert_true(n1 <= sizeof first);
    memcpy(first, frame + PMD_HEADROOM, n1);
    assert_int_equal(pmd_compress(&c, (const uint8_t *)"Hello", 5, &frame, &n),
                     0);
    assert_int_equal(n, n1);
    assert_memory_equal(frame + PMD_HEADROOM, first, n);
    /* RFC 7692 7.2.3.1 gives this exact encoding of "Hello". */
    assert_memory_equal(first, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
    pmd_compressor_free(&c);

    /* Bad arguments. */
    assert_int_equal(pmd_compressor_init(&c, 8, -1), PMD_ERR_DATA);
    assert_int_equal(pmd_compressor_init(&c, 16, -1), PMD_ERR_DATA);
    assert_int_equal(pmd_compressor_init(&c, 15, 10), PMD_ERR_DATA);
    pmd_compressor_free(&c);
}

static void test_deflate_message(void **state)
{
    uint8_t msg[3000];
    fill(msg, sizeof msg, false);
    uint8_t *block = NULL;
    size_t n;
    assert_int_equal(pmd_deflate_message(msg, sizeof msg, 12, &block, &n), 0);
    assert_non_null(block);
    assert_true(n < sizeof msg / 4);
    /* The headroom is writable: the longest frame header fits in place. */
    memset(block, 0xee, PMD_HEADROOM);
    uint8_t out[sizeof msg + 1];
    assert_int_equal(
        zlib_inflate_plain(block + PMD_HEADROOM, n, out, sizeof out),
        sizeof msg);
    assert_memory_equal(out, msg, sizeof msg);
    free(block);
    assert_int_equal(pmd_deflate_message(msg, 1, 8, &block, &n), PMD_ERR_DATA);
}

static void test_rfc_examples(void **state)
{
    pmd_buf_t out = {0};
    pmd_inflater_t inf;
    /* 7.2.3.3: a stored (uncompressed) block. */
    pmd_inflater_init(&inf, 15, false);
    assert_int_equal(pmd_inflate(&inf,
                                 (const uint8_t *)"\x00\x05\x00\xfa\xff"
                                                  "Hello\x00",
                                 11, 100, &out),
                     0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "Hello", 5);
    /* 7.2.3.2: the second "Hello" refers to the first. */
    pmd_inflater_init(&inf, 15, true);
    assert_int_equal(pmd_inflate(&inf,
                                 (const uint8_t *)"\xf2\x48\xcd\xc9\xc9"
                                                  "\x07\x00",
                                 7, 100, &out),
                     0);
    assert_memory_equal(out.data, "Hello", 5);
    assert_non_null(inf.zs); /* kept for the next message */
    assert_int_equal(pmd_inflate(&inf,
                                 (const uint8_t *)"\xf2\x00\x11\x00"
                                                  "\x00",
                                 5, 100, &out),
                     0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "Hello", 5);
    pmd_inflater_free(&inf);
    assert_null(inf.zs);
    /* The empty message. */
    assert_int_equal(pmd_inflate(&inf, (const uint8_t *)"\x00", 1, 0, &out), 0);
    assert_int_equal(out.len, 0);
    pmd_inflater_free(&inf);
    pmd_buf_free(&out);
}

static void test_zip_bomb(void **state)
{
    const size_t big = 10u << 20, max_out = 64u << 10;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    uint8_t *block;
    size_t n;
    assert_int_equal(pmd_deflate_message(zeros, big, 15, &block, &n), 0);
    free(zeros);
    assert_true(n < 16u << 10); /* about 10 KiB */
    pmd_buf_t out = {0};
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, 15, true);
    int rc = pmd_inflate(&inf, block + PMD_HEADROOM, n, max_out, &out);
    assert_int_equal(rc, PMD_ERR_TOO_BIG);
    assert_int_equal(pmd_close_code(rc), 1009);
    /* Never more than the bound (plus one byte to detect it) allocated. */
    assert_true(out.cap <= max_out + 1);
    assert_null(inf.zs); /* the broken context is gone */
    /* The worker-wide inflater stops the same way. */
    pmd_inflater_t shared;
    pmd_inflater_init(&shared, 15, false);
    assert_int_equal(
        pmd_inflate_oneshot(&shared, block + PMD_HEADROOM, n, max_out, &out),
        PMD_ERR_TOO_BIG);
    assert_true(out.cap <= max_out + 1);
    pmd_inflater_free(&shared);
    free(block);
    pmd_buf_free(&out);
}

static void test_bound_is_exact(void **state)
{
    uint8_t msg[40000];
    fill(msg, sizeof msg, false);
    uint8_t *block;
    size_t n;
    assert_int_equal(pmd_deflate_message(msg, sizeof msg, 15, &block, &n), 0);
    pmd_buf_t out = {0};
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, 15, false);
    assert_int_equal(
        pmd_inflate(&inf, block + PMD_HEADROOM, n, sizeof msg, &out), 0);
    assert_int_equal(out.len, sizeof msg);
    assert_int_equal(
        pmd_inflate(&inf, block + PMD_HEADROOM, n, sizeof msg - 1, &out),
        PMD_ERR_TOO_BIG);
    /* A reused buffer larger than the bound does not lift the bound. */
    assert_int_equal(pmd_inflate(&inf, block + PMD_HEADROOM, n, 100, &out),
                     PMD_ERR_TOO_BIG);
    free(block);
    pmd_buf_free(&out);
}

static void test_corrupt(void **state)
{
    pmd_buf_t out = {0};
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, 15, true);
    /* BTYPE 11 is reserved. */
    int rc = pmd_inflate(&inf, (const uint8_t *)"\xff\xff\xff", 3, 1000, &out);
    assert_int_equal(rc, PMD_ERR_DATA);
    assert_int_equal(pmd_close_code(rc), 1007);
    assert_null(inf.zs);
    /* Stored block whose NLEN is not the complement of LEN. */
    assert_int_equal(pmd_inflate(&inf,
                                 (const uint8_t *)"\x00\x05\x00\x00\x00"
                                                  "Hello",
                                 10, 1000, &out),
                     PMD_ERR_DATA);
    /* A message cut inside a block. */
    uint8_t msg[2000], *block;
    size_t n;
    fill(msg, sizeof msg, true);
    assert_int_equal(pmd_deflate_message(msg, sizeof msg, 15, &block, &n), 0);
    assert_int_equal(pmd_inflate(&inf, block + PMD_HEADROOM, n / 2, 4000, &out),
                     PMD_ERR_DATA);
    free(block);
    /* Zero bytes is not a deflate stream (the empty message is 0x00). */
    assert_int_equal(pmd_inflate(&inf, NULL, 0, 1000, &out), PMD_ERR_DATA);
    /* Random garbage never crashes and never exceeds the bound. */
    for (int i = 0; i < 200; i++) {
        fill(msg, 64, true);
        rc = pmd_inflate(&inf, msg, 64, 512, &out);
        assert_true(rc == 0 || rc == PMD_ERR_DATA || rc == PMD_ERR_TOO_BIG);
        if (rc == 0)
            assert_true(out.len <= 512);
    }
    pmd_inflater_free(&inf);
    /* After an error the inflater works again. */
    assert_int_equal(pmd_inflate(&inf, (const uint8_t *)"\x00", 1, 10, &out),
                     0);
    pmd_inflater_free(&inf);
    pmd_buf_free(&out);
}

static void test_context_takeover(void **state)
{
    static const char m1[] = "{\"type\":\"say\",\"room\":\"lobby\",\"text\":"
                             "\"hello, everybody in the lobby\"}";
    static const char m2[] = "{\"type\":\"say\",\"room\":\"lobby\",\"text\":"
                             "\"hello, everybody in the lobby!\"}";
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(
        deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    uint8_t c1[256], c2[256];
    size_t n1 = client_deflate(&zs, m1, sizeof m1 - 1, c1, sizeof c1);
    size_t n2 = client_deflate(&zs, m2, sizeof m2 - 1, c2, sizeof c2);
    deflateEnd(&zs);
    assert_true(n2 < n1 / 2); /* the second really refers to the first */

    pmd_buf_t out = {0};
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, 15, true);
    assert_int_equal(pmd_inflate(&inf, c1, n1, 1000, &out), 0);
    assert_int_equal(out.len, sizeof m1 - 1);
    assert_memory_equal(out.data, m1, out.len);
    assert_int_equal(pmd_inflate(&inf, c2, n2, 1000, &out), 0);
    assert_int_equal(out.len, sizeof m2 - 1);
    assert_memory_equal(out.data, m2, out.len);
    pmd_inflater_free(&inf);

    /* Without the first message's context the second cannot decode. */
    pmd_inflater_init(&inf, 15, false);
    int rc = pmd_inflate(&inf, c2, n2, 1000, &out);
    assert_true(rc == PMD_ERR_DATA ||
                (rc == 0 && (out.len != sizeof m2 - 1 ||
                             memcmp(out.data, m2, out.len) != 0)));
    pmd_buf_free(&out);
}

static void test_final_block(void **state)
{
    /* A sender may end messages with BFINAL set (RFC 7692 7.2.3.4); with
     * context takeover the next message still sees the window. */
    static const char m1[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    z_stream zs;
    uint8_t c1[128], c2[128];
    memset(&zs, 0, sizeof zs);
    assert_int_equal(
        deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)m1;
    zs.avail_in = sizeof m1 - 1;
    zs.next_out = c1;
    zs.avail_out = sizeof c1;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t n1 = sizeof c1 - zs.avail_out;
    deflateEnd(&zs);
    /* Second message: a new stream primed with the first as dictionary. */
    memset(&zs, 0, sizeof zs);
    assert_int_equal(
        deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    assert_int_equal(
        deflateSetDictionary(&zs, (const Bytef *)m1, sizeof m1 - 1), Z_OK);
    size_t n2 = client_deflate(&zs, m1, sizeof m1 - 1, c2, sizeof c2);
    deflateEnd(&zs);

    pmd_buf_t out = {0};
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, 15, true);
    assert_int_equal(pmd_inflate(&inf, c1, n1, 100, &out), 0);
    assert_memory_equal(out.data, m1, sizeof m1 - 1);
    assert_int_equal(pmd_inflate(&inf, c2, n2, 100, &out), 0);
    assert_int_equal(out.len, sizeof m1 - 1);
    assert_memory_equal(out.data, m1, sizeof m1 - 1);
    /* Bytes after the final block are invalid. */
    c1[n1] = 0x00;
    assert_int_equal(pmd_inflate(&inf, c1, n1 + 1, 100, &out), PMD_ERR_DATA);
    pmd_inflater_free(&inf);
    pmd_buf_free(&out);
}

static void test_small_client_window(void **state)
{
    /* A client asked for 8 bits compresses with 9 (zlib): the inflater
     * takes 8 as 9 so such messages decode. */
    uint8_t msg[4000], comp[4096];
    fill(msg, sizeof msg, false);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(
        deflateInit2(&zs, 9, Z_DEFLATED, -9, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t n = client_deflate(&zs, msg, sizeof msg, comp, sizeof comp);
    deflateEnd(&zs);
    pmd_buf_t out = {0};
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, 8, false);
    assert_int_equal(inf.window_bits, 9);
    assert_int_equal(pmd_inflate(&inf, comp, n, sizeof msg, &out), 0);
    assert_memory_equal(out.data, msg, sizeof msg);
    pmd_buf_free(&out);
}

static void test_shareable(void **state)
{
    pmd_params_t p = {.server_no_context_takeover = true,
                      .server_window_bits = 10,
                      .client_window_bits = 15};
    assert_true(pmd_shareable(&p, 10, 100000));
    assert_true(pmd_shareable(&p, 9, 100000));
    assert_false(pmd_shareable(&p, 15, 1025));
    assert_true(pmd_shareable(&p, 15, 1024));

    /* And it holds: a 1 KiB message compressed with 15 bits decodes with
     * a 10-bit window. */
    uint8_t msg[1024], *block;
    size_t n;
    fill(msg, sizeof msg, false);
    assert_int_equal(pmd_deflate_message(msg, sizeof msg, 15, &block, &n), 0);
    pmd_buf_t out = {0};
    pmd_inflater_t inf;
    pmd_inflater_init(&inf, 10, false);
    assert_int_equal(
        pmd_inflate(&inf, block + PMD_HEADROOM, n, sizeof msg, &out), 0);
    assert_memory_equal(out.data, msg, sizeof msg);
    free(block);
    pmd_buf_free(&out);
}

static void test_close_codes(void **state)
{
    assert_int_equal(pmd_close_code(PMD_ERR_TOO_BIG), 1009);
    assert_int_equal(pmd_close_code(PMD_ERR_DATA), 1007);
    assert_int_equal(pmd_close_code(PMD_ERR_NOMEM), 1011);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_browser_offers),
        cmocka_unit_test(test_window_bits),
        cmocka_unit_test(test_declined),
        cmocka_unit_test(test_first_acceptable_offer),
        cmocka_unit_test(test_server_policy),
        cmocka_unit_test(test_response_too_small),
        cmocka_unit_test(test_through_handshake),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_compress_shape),
        cmocka_unit_test(test_deflate_message),
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_zip_bomb),
        cmocka_unit_test(test_bound_is_exact),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_context_takeover),
        cmocka_unit_test(test_final_block),
        cmocka_unit_test(test_small_client_window),
        cmocka_unit_test(test_shareable),
        cmocka_unit_test(test_close_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
