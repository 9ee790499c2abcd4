/*
 * test_ws_frame.c - the RFC 6455 frame codec: the section 5.7 examples fed
 * whole, one byte at a time and at every split point (and from just before
 * an unreadable page, so an over-read crashes), every framing error with
 * its close code, control frames between fragments, the message buffer's
 * life cycle, and serializer -> parser round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ws_frame.h"

#define MAX_GOT 16

/* What a parse produced: copies of the messages, and the error if any. */
typedef struct {
    ws_opcode_t opcode;
    bool compressed;
    uint8_t *data;
    size_t len;
    uint16_t close_code;
    char reason[WS_MAX_CONTROL];
    size_t reason_len;
} got_msg_t;

typedef struct {
    got_msg_t m[MAX_GOT];
    size_t n;
    uint16_t error;
} got_t;

static const ws_parser_config_t server_cfg = {.max_message = 1 << 20,
                                              .require_mask = true};
static const ws_parser_config_t client_cfg = {.max_message = 1 << 20,
                                              .reject_mask = true};

static const uint8_t test_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

static void got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->m[i].data);
    memset(g, 0, sizeof *g);
}

static void got_add(got_t *g, const ws_message_t *m)
{
    assert_true(g->n < MAX_GOT);
    got_msg_t *c = &g->m[g->n++];
    c->opcode = m->opcode;
    c->compressed = m->compressed;
    c->len = m->len;
    c->data = malloc(m->len ? m->len : 1);
    assert_non_null(c->data);
    assert_non_null(m->data);
    memcpy(c->data, m->data, m->len);
    c->close_code = m->close_code;
    if (m->opcode == WS_OP_CLOSE) {
        assert_true(m->close_reason_len <= sizeof c->reason);
        assert_non_null(m->close_reason);
        memcpy(c->reason, m->close_reason, m->close_reason_len);
        c->reason_len = m->close_reason_len;
    }
}

/* Feeds one chunk, calling again with the rest after each message. */
static bool feed_chunk(ws_parser_t *p, const uint8_t *in, size_t len, got_t *g)
{
    size_t off = 0;
    while (off < len) {
        ws_message_t m;
        ssize_t n = ws_parser_feed(p, in + off, len - off, &m);
        if (n < 0) {
            assert_int_not_equal(p->error_code, 0);
            assert_non_null(p->error);
            assert_int_equal(m.opcode, WS_OP_CONT);
            g->error = p->error_code;
            return false;
        }
        assert_true(n > 0 && (size_t)n <= len - off);
        if (m.opcode != WS_OP_CONT)
            got_add(g, &m);
        else
            assert_int_equal((size_t)n, len - off);
        off += (size_t)n;
    }
    return true;
}

/* Parses in[0..len) cut at the sorted offsets cuts[0..ncuts). */
static void parse_cuts(const ws_parser_config_t *cfg, const uint8_t *in,
                       size_t len, const size_t *cuts, size_t ncuts, got_t *g)
{
    ws_parser_t p;
    size_t from = 0;

    memset(g, 0, sizeof *g);
    ws_parser_init(&p, cfg);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        if (!feed_chunk(&p, in + from, to - from, g))
            break;
        from = to;
    }
    ws_parser_free(&p);
}

static void parse_bytewise(const ws_parser_config_t *cfg, const uint8_t *in,
                           size_t len, got_t *g)
{
    ws_parser_t p;

    memset(g, 0, sizeof *g);
    ws_parser_init(&p, cfg);
    for (size_t i = 0; i < len; i++)
        if (!feed_chunk(&p, in + i, 1, g))
            break;
    ws_parser_free(&p);
}

static void assert_same(const got_t *a, const got_t *b, const char *how,
                        size_t cut)
{
    if (a->n != b->n || a->error != b->error)
        fail_msg("%s %zu: %zu messages, error %u; expected %zu, error %u", how,
                 cut, a->n, a->error, b->n, b->error);
    for (size_t i = 0; i < a->n; i++) {
        const got_msg_t *x = &a->m[i], *y = &b->m[i];
        assert_int_equal(x->opcode, y->opcode);
        assert_int_equal(x->compressed, y->compressed);
        assert_int_equal(x->len, y->len);
        assert_memory_equal(x->data, y->data, x->len);
        assert_int_equal(x->close_code, y->close_code);
        assert_int_equal(x->reason_len, y->reason_len);
        assert_memory_equal(x->reason, y->reason, x->reason_len);
    }
}

/* Every way of cutting the input gives the same result as the whole. */
static void check_all_splits(const ws_parser_config_t *cfg, const uint8_t *in,
                             size_t len, const got_t *want)
{
    got_t g;
    size_t cuts[2];

    parse_cuts(cfg, in, len, NULL, 0, &g);
    assert_same(&g, want, "whole", 0);
    got_free(&g);
    parse_bytewise(cfg, in, len, &g);
    assert_same(&g, want, "bytewise", 0);
    got_free(&g);
    for (size_t k = 0; k <= len; k++) {
        if (len > 200 && k > 40 && k + 40 < len && k % 997 != 0)
            continue;
        cuts[0] = k;
        parse_cuts(cfg, in, len, cuts, 1, &g);
        assert_same(&g, want, "split", k);
        got_free(&g);
    }
    for (size_t a = 0; len <= 64 && a <= len; a++)
        for (size_t b = a; b <= len; b++) {
            cuts[0] = a;
            cuts[1] = b;
            parse_cuts(cfg, in, len, cuts, 2, &g);
            assert_same(&g, want, "two splits", a * 1000 + b);
            got_free(&g);
        }
}

static void want_msg(got_t *w, ws_opcode_t op, const void *data, size_t len)
{
    ws_message_t m = {.opcode = op, .data = data, .len = len};
    got_add(w, &m);
}

static void want_close(got_t *w, const void *payload, size_t len, uint16_t code,
                       const char *reason)
{
    ws_message_t m = {.opcode = WS_OP_CLOSE,
                      .data = payload,
                      .len = len,
                      .close_code = code,
                      .close_reason = reason,
                      .close_reason_len = strlen(reason)};
    got_add(w, &m);
}

/* Expects exactly the error code, after the messages already in w. */
static void check_error(const ws_parser_config_t *cfg, const uint8_t *in,
                        size_t len, got_t *w, uint16_t code)
{
    w->error = code;
    check_all_splits(cfg, in, len, w);
    got_free(w);
}

static void check_error_only(const ws_parser_config_t *cfg, const uint8_t *in,
                             size_t len, uint16_t code)
{
    got_t w = {0};
    check_error(cfg, in, len, &w, code);
}

/* ---- guard page: input that ends right before an unreadable page ---- */

typedef struct {
    uint8_t *base;
    size_t size;
    size_t page;
} guard_t;

static uint8_t *guard_place(guard_t *g, const uint8_t *in, size_t len)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (len + g->page - 1) / g->page * g->page;
    if (data == 0)
        data = g->page;
    g->size = data + g->page;
    g->base = mmap(NULL, g->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->base != MAP_FAILED);
    assert_int_equal(mprotect(g->base + data, g->page, PROT_NONE), 0);
    uint8_t *at = g->base + data - len;
    memcpy(at, in, len);
    return at;
}

static void guard_free(guard_t *g)
{
    munmap(g->base, g->size);
}

/* Every prefix of the input, placed against the guard page, fed whole and
   byte by byte: a read past the end of any chunk faults. */
static void check_guarded(const ws_parser_config_t *cfg, const uint8_t *in,
                          size_t len, const got_t *want)
{
    guard_t gp;
    got_t g;

    for (size_t plen = 0; plen <= len; plen++) {
        if (len > 200 && plen > 40 && plen + 40 < len)
            continue;
        uint8_t *at = guard_place(&gp, in, plen);
        parse_cuts(cfg, at, plen, NULL, 0, &g);
        if (plen == len)
            assert_same(&g, want, "guarded", plen);
        got_free(&g);
        guard_free(&gp);
    }
    /* byte at a time, each byte on its own right before the guard */
    guard_place(&gp, in, 0);
    ws_parser_t p;
    ws_parser_init(&p, cfg);
    memset(&g, 0, sizeof g);
    uint8_t *last = gp.base + gp.size - gp.page - 1;
    for (size_t i = 0; i < len; i++) {
        *last = in[i];
        assert_true(feed_chunk(&p, last, 1, &g));
    }
    assert_same(&g, want, "guarded bytewise", len);
    got_free(&g);
    ws_parser_free(&p);
    guard_free(&gp);
}

/* ---- RFC 6455 section 5.7 examples ---- */

static void check_example(const ws_parser_config_t *cfg, const uint8_t *in,
                          size_t len, got_t *want)
{
    check_all_splits(cfg, in, len, want);
    check_guarded(cfg, in, len, want);
    got_free(want);
}

static void test_rfc_unmasked_text(void **state)
{
    static const uint8_t f[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    got_t w = {0};
    (void)state;
    want_msg(&w, WS_OP_TEXT, "Hello", 5);
    check_example(&client_cfg, f, sizeof f, &w);
    /* a server requires masking */
    check_error_only(&server_cfg, f, sizeof f, WS_CLOSE_PROTOCOL);
}

static void test_rfc_masked_text(void **state)
{
    static const uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                0x7f, 0x9f, 0x4d, 0x51, 0x58};
    got_t w = {0};
    (void)state;
    want_msg(&w, WS_OP_TEXT, "Hello", 5);
    check_example(&server_cfg, f, sizeof f, &w);
    /* a client rejects masked server frames */
    check_error_only(&client_cfg, f, sizeof f, WS_CLOSE_PROTOCOL);
}

static void test_rfc_fragmented_text(void **state)
{
    static const uint8_t f[] = {0x01, 0x03, 0x48, 0x65, 0x6c,
                                0x80, 0x02, 0x6c, 0x6f};
    got_t w = {0};
    (void)state;
    want_msg(&w, WS_OP_TEXT, "Hello", 5);
    check_example(&client_cfg, f, sizeof f, &w);
}

static void test_rfc_ping_pong(void **state)
{
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    got_t w = {0};
    (void)state;
    want_msg(&w, WS_OP_PING, "Hello", 5);
    check_example(&client_cfg, ping, sizeof ping, &w);
    want_msg(&w, WS_OP_PONG, "Hello", 5);
    check_example(&server_cfg, pong, sizeof pong, &w);
}

static void test_rfc_binary_256(void **state)
{
    uint8_t f[4 + 256];
    got_t w = {0};
    (void)state;
    f[0] = 0x82;
    f[1] = 0x7e;
    f[2] = 0x01;
    f[3] = 0x00;
    for (size_t i = 0; i < 256; i++)
        f[4 + i] = (uint8_t)(i * 7 + 3);
    want_msg(&w, WS_OP_BINARY, f + 4, 256);
    check_example(&client_cfg, f, sizeof f, &w);
}

static void test_rfc_binary_64k(void **state)
{
    size_t n = 65536, len = 10 + n;
    uint8_t *f = malloc(len);
    got_t w = {0};
    (void)state;
    assert_non_null(f);
    static const uint8_t hdr[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    memcpy(f, hdr, sizeof hdr);
    for (size_t i = 0; i < n; i++)
        f[10 + i] = (uint8_t)(i ^ (i >> 8));
    want_msg(&w, WS_OP_BINARY, f + 10, n);
    check_example(&client_cfg, f, len, &w);
    free(f);
}

/* ---- framing errors, each with its close code ---- */

static void test_reserved_opcodes(void **state)
{
    (void)state;
    for (uint8_t op = 0; op < 16; op++) {
        if (op <= 2 || (op >= 8 && op <= 10))
            continue;
        uint8_t f[] = {(uint8_t)(0x80 | op), 0x80, 1, 2, 3, 4};
        check_error_only(&server_cfg, f, sizeof f, WS_CLOSE_PROTOCOL);
    }
}

static void test_rsv_bits(void **state)
{
    ws_parser_config_t deflate = server_cfg;
    deflate.allowed_rsv = WS_RSV1;
    got_t w = {0};
    (void)state;
    for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        uint8_t f[] = {(uint8_t)(0x81 | rsv), 0x80, 1, 2, 3, 4};
        check_error_only(&server_cfg, f, sizeof f, WS_CLOSE_PROTOCOL);
        if (rsv != WS_RSV1)
            check_error_only(&deflate, f, sizeof f, WS_CLOSE_PROTOCOL);
    }
    /* RSV1 on a data message's first frame: compressed, and not UTF-8
       checked (the caller validates after inflating) */
    static const uint8_t ok[] = {0xc1, 0x82, 0, 0, 0, 0, 0xff, 0xfe};
    want_msg(&w, WS_OP_TEXT, "\xff\xfe", 2);
    w.m[0].compressed = true;
    check_all_splits(&deflate, ok, sizeof ok, &w);
    got_free(&w);
    /* never on a continuation frame */
    static const uint8_t cont[] = {0x41, 0x80, 0, 0, 0, 0,
                                   0xc0, 0x80, 0, 0, 0, 0};
    check_error_only(&deflate, cont, sizeof cont, WS_CLOSE_PROTOCOL);
    /* never on a control frame */
    static const uint8_t ping[] = {0xc9, 0x80, 0, 0, 0, 0};
    check_error_only(&deflate, ping, sizeof ping, WS_CLOSE_PROTOCOL);
}

static void test_compressed_fragments(void **state)
{
    ws_parser_config_t deflate = server_cfg;
    deflate.allowed_rsv = WS_RSV1;
    static const uint8_t f[] = {0x42, 0x81, 0, 0, 0, 0, 0xaa,
                                0x80, 0x81, 0, 0, 0, 0, 0xbb};
    got_t w = {0};
    (void)state;
    want_msg(&w, WS_OP_BINARY, "\xaa\xbb", 2);
    w.m[0].compressed = true;
    check_all_splits(&deflate, f, sizeof f, &w);
    got_free(&w);
}

static void test_control_frame_rules(void **state)
{
    (void)state;
    /* unfragmented only */
    static const uint8_t nofin[] = {0x09, 0x80, 1, 2, 3, 4};
    check_error_only(&server_cfg, nofin, sizeof nofin, WS_CLOSE_PROTOCOL);
    /* <= 125 bytes: 126 in the 16-bit form, and the 64-bit form */
    static const uint8_t long16[] = {0x89, 0xfe, 0x00, 0x7e, 1, 2, 3, 4};
    check_error_only(&server_cfg, long16, sizeof long16, WS_CLOSE_PROTOCOL);
    static const uint8_t long64[] = {0x8a, 0xff, 0, 0, 0, 0, 0, 1, 0, 0};
    check_error_only(&server_cfg, long64, sizeof long64, WS_CLOSE_PROTOCOL);
    /* exactly 125 is fine */
    uint8_t ok[6 + 125];
    got_t w = {0};
    ok[0] = 0x89;
    ok[1] = 0x80 | 125;
    memset(ok + 2, 0, 4);
    memset(ok + 6, 'p', 125);
    want_msg(&w, WS_OP_PING, ok + 6, 125);
    check_all_splits(&server_cfg, ok, sizeof ok, &w);
    got_free(&w);
}

static void test_continuation_rules(void **state)
{
    got_t w = {0};
    (void)state;
    static const uint8_t orphan[] = {0x80, 0x80, 0, 0, 0, 0};
    check_error_only(&server_cfg, orphan, sizeof orphan, WS_CLOSE_PROTOCOL);
    /* a complete message, then a continuation */
    static const uint8_t after[] = {0x81, 0x81, 0, 0, 0, 0, 'a',
                                    0x80, 0x81, 0, 0, 0, 0, 'b'};
    want_msg(&w, WS_OP_TEXT, "a", 1);
    check_error(&server_cfg, after, sizeof after, &w, WS_CLOSE_PROTOCOL);
    /* a new TEXT or BINARY inside a fragmented message */
    static const uint8_t text[] = {0x01, 0x81, 0, 0, 0, 0, 'a',
                                   0x81, 0x81, 0, 0, 0, 0, 'b'};
    check_error_only(&server_cfg, text, sizeof text, WS_CLOSE_PROTOCOL);
    static const uint8_t bin[] = {0x02, 0x81, 0, 0, 0, 0, 'a',
                                  0x02, 0x81, 0, 0, 0, 0, 'b'};
    check_error_only(&server_cfg, bin, sizeof bin, WS_CLOSE_PROTOCOL);
}

static void test_length_encodings(void **state)
{
    (void)state;
    /* 16-bit form for a length that fits in 7 bits */
    static const uint8_t short16[] = {0x82, 0xfe, 0x00, 0x7d, 1, 2, 3, 4};
    check_error_only(&server_cfg, short16, sizeof short16, WS_CLOSE_PROTOCOL);
    static const uint8_t zero16[] = {0x82, 0xfe, 0x00, 0x00, 1, 2, 3, 4};
    check_error_only(&server_cfg, zero16, sizeof zero16, WS_CLOSE_PROTOCOL);
    /* 64-bit form for a length that fits in 16 bits */
    static const uint8_t short64[] = {0x82, 0xff, 0,    0, 0, 0, 0,
                                      0,    0xff, 0xff, 1, 2, 3, 4};
    check_error_only(&server_cfg, short64, sizeof short64, WS_CLOSE_PROTOCOL);
    static const uint8_t tiny64[] = {0x82, 0xff, 0, 0, 0, 0, 0,
                                     0,    0,    5, 1, 2, 3, 4};
    check_error_only(&server_cfg, tiny64, sizeof tiny64, WS_CLOSE_PROTOCOL);
    /* 64-bit length with the most significant bit set */
    static const uint8_t msb[] = {0x82, 0xff, 0x80, 0, 0, 0, 0,
                                  0,    0,    0,    1, 2, 3, 4};
    check_error_only(&server_cfg, msb, sizeof msb, WS_CLOSE_PROTOCOL);
    static const uint8_t all[] = {0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 1,    2,    3,    4};
    check_error_only(&server_cfg, all, sizeof all, WS_CLOSE_PROTOCOL);
}

static void test_masking_rules(void **state)
{
    ws_parser_config_t either = {.max_message = 1024};
    got_t w = {0};
    (void)state;
    static const uint8_t unmasked[] = {0x82, 0x01, 0xaa};
    check_error_only(&server_cfg, unmasked, sizeof unmasked, WS_CLOSE_PROTOCOL);
    static const uint8_t masked[] = {0x82, 0x81, 1, 2, 3, 4, 0xab};
    check_error_only(&client_cfg, masked, sizeof masked, WS_CLOSE_PROTOCOL);
    /* a control frame is held to the same rule */
    static const uint8_t ping[] = {0x89, 0x00};
    check_error_only(&server_cfg, ping, sizeof ping, WS_CLOSE_PROTOCOL);
    /* with neither rule both forms parse */
    want_msg(&w, WS_OP_BINARY, "\xaa", 1);
    want_msg(&w, WS_OP_BINARY, "\xaa", 1);
    uint8_t both[sizeof unmasked + sizeof masked];
    memcpy(both, unmasked, sizeof unmasked);
    memcpy(both + sizeof unmasked, masked, sizeof masked);
    check_all_splits(&either, both, sizeof both, &w);
    got_free(&w);
}

/* Builds a masked client frame with the test mask into out. */
static size_t client_frame(uint8_t *out, size_t cap, ws_opcode_t op, bool fin,
                           const void *payload, size_t len)
{
    size_t n = ws_frame_write(out, cap, op, fin, 0, payload, len, test_mask);
    assert_int_not_equal(n, 0);
    return n;
}

static void test_max_message(void **state)
{
    ws_parser_config_t cfg = server_cfg;
    uint8_t payload[64], buf[512];
    got_t w = {0};
    size_t n;
    (void)state;
    cfg.max_message = 40;
    memset(payload, 'x', sizeof payload);
    /* exactly the limit, in one frame and in three */
    n = client_frame(buf, sizeof buf, WS_OP_TEXT, true, payload, 40);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_TEXT, false, payload, 20);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, false, payload, 0);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, true, payload, 20);
    want_msg(&w, WS_OP_TEXT, payload, 40);
    want_msg(&w, WS_OP_TEXT, payload, 40);
    check_all_splits(&cfg, buf, n, &w);
    got_free(&w);
    /* one byte over in one frame: the header alone is enough to refuse */
    n = client_frame(buf, sizeof buf, WS_OP_BINARY, true, payload, 41);
    check_error_only(&cfg, buf, 6, WS_CLOSE_TOO_BIG);
    /* one byte over across fragments: refused at the second header */
    n = client_frame(buf, sizeof buf, WS_OP_BINARY, false, payload, 30);
    size_t hdr2 = n + 6;
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, true, payload, 11);
    check_error_only(&cfg, buf, hdr2, WS_CLOSE_TOO_BIG);
    check_error_only(&cfg, buf, n, WS_CLOSE_TOO_BIG);
    /* a control frame does not count against the message */
    n = client_frame(buf, sizeof buf, WS_OP_BINARY, false, payload, 40);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_PING, true, payload, 50);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, true, payload, 0);
    want_msg(&w, WS_OP_PING, payload, 50);
    want_msg(&w, WS_OP_BINARY, payload, 40);
    check_all_splits(&cfg, buf, n, &w);
    got_free(&w);
}

static void test_utf8_in_text(void **state)
{
    uint8_t buf[256];
    got_t w = {0};
    size_t n;
    (void)state;
    /* U+20AC split inside the code point across three fragments */
    n = client_frame(buf, sizeof buf, WS_OP_TEXT, false, "a\xe2", 2);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, false, "\x82", 1);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, true, "\xac!", 2);
    want_msg(&w, WS_OP_TEXT, "a\xe2\x82\xac!", 5);
    check_all_splits(&server_cfg, buf, n, &w);
    got_free(&w);
    /* truncated at FIN */
    n = client_frame(buf, sizeof buf, WS_OP_TEXT, false, "a\xe2", 2);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, true, "\x82", 1);
    check_error_only(&server_cfg, buf, n, WS_CLOSE_INVALID_DATA);
    n = client_frame(buf, sizeof buf, WS_OP_TEXT, true, "\xf0\x9f", 2);
    check_error_only(&server_cfg, buf, n, WS_CLOSE_INVALID_DATA);
    /* invalid in the first fragment: refused before the message (and even
       the frame) completes */
    n = client_frame(buf, sizeof buf, WS_OP_TEXT, false, "ok\xed\xa0\x80..", 7);
    check_error_only(&server_cfg, buf, 6 + 4, WS_CLOSE_INVALID_DATA);
    /* binary messages are not checked */
    n = client_frame(buf, sizeof buf, WS_OP_BINARY, true, "\xff", 1);
    want_msg(&w, WS_OP_BINARY, "\xff", 1);
    check_all_splits(&server_cfg, buf, n, &w);
    got_free(&w);
}

static void test_control_between_fragments(void **state)
{
    uint8_t buf[256], close[WS_MAX_CONTROL];
    got_t w = {0};
    size_t n, c;
    (void)state;
    c = ws_close_payload(close, 1001, "bye");
    n = client_frame(buf, sizeof buf, WS_OP_TEXT, false, "Hel", 3);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_PING, true, "x", 1);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, false, "l", 1);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_PONG, true, "", 0);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CLOSE, true, close, c);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, true, "o", 1);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_BINARY, true, "!", 1);
    want_msg(&w, WS_OP_PING, "x", 1);
    want_msg(&w, WS_OP_PONG, "", 0);
    want_close(&w, close, c, 1001, "bye");
    want_msg(&w, WS_OP_TEXT, "Hello", 5);
    want_msg(&w, WS_OP_BINARY, "!", 1);
    check_all_splits(&server_cfg, buf, n, &w);
    got_free(&w);
}

/* ws_parser_idle() holds exactly between messages (a control frame
 * inside a fragmented message is not), and a parser moved by memcpy
 * between any two bytes goes on as before. */
static void test_idle_and_move(void **state)
{
    uint8_t buf[256];
    size_t n, ends[3];
    got_t g = {0}, w = {0};
    ws_parser_t a, b;
    (void)state;
    n = ends[0] = client_frame(buf, sizeof buf, WS_OP_TEXT, true, "hi", 2);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_TEXT, false, "Hel", 3);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_PING, true, "x", 1);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CONT, true, "lo", 2);
    ends[1] = n;
    n += client_frame(buf + n, sizeof buf - n, WS_OP_PONG, true, "", 0);
    ends[2] = n;
    want_msg(&w, WS_OP_TEXT, "hi", 2);
    want_msg(&w, WS_OP_PING, "x", 1);
    want_msg(&w, WS_OP_TEXT, "Hello", 5);
    want_msg(&w, WS_OP_PONG, "", 0);
    ws_parser_init(&a, &server_cfg);
    assert_true(ws_parser_idle(&a));
    for (size_t i = 0; i < n; i++) {
        assert_true(feed_chunk(&a, buf + i, 1, &g));
        size_t at = i + 1;
        bool boundary = at == ends[0] || at == ends[1] || at == ends[2];
        if (ws_parser_idle(&a) != boundary)
            fail_msg("idle=%d after byte %zu", ws_parser_idle(&a), at);
        memcpy(&b, &a, sizeof b);
        memset(&a, 0xa5, sizeof a);
        memcpy(&a, &b, sizeof a);
    }
    ws_parser_free(&a);
    assert_same(&g, &w, "bytewise", 0);
    got_free(&g);
    ws_parser_init(&a, &server_cfg);
    assert_false(feed_chunk(&a, (const uint8_t *)"\x81\x05", 2, &g));
    assert_false(ws_parser_idle(&a)); /* an unmasked frame: in error */
    ws_parser_free(&a);
    got_free(&g);
    got_free(&w);
}

static void test_close_frames(void **state)
{
    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007,
                                    1008, 1009, 1010, 1011, 1012,
                                    1013, 1014, 3000, 4000, 4999};
    static const unsigned bad[] = {0,    999,  1004, 1005, 1006, 1015,
                                   1016, 2000, 2999, 5000, 65535};
    uint8_t buf[256], pl[WS_MAX_CONTROL];
    got_t w = {0};
    size_t n, c;
    (void)state;
    n = client_frame(buf, sizeof buf, WS_OP_CLOSE, true, "", 0);
    want_close(&w, "", 0, WS_CLOSE_NO_STATUS, "");
    check_all_splits(&server_cfg, buf, n, &w);
    got_free(&w);
    /* a 1-byte payload, after a valid close left 03 E8 in the buffer */
    n = client_frame(buf, sizeof buf, WS_OP_CLOSE, true, "\x03\xe8", 2);
    n += client_frame(buf + n, sizeof buf - n, WS_OP_CLOSE, true, "\x03", 1);
    want_close(&w, "\x03\xe8", 2, 1000, "");
    check_error(&server_cfg, buf, n, &w, WS_CLOSE_PROTOCOL);
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        c = ws_close_payload(pl, (uint16_t)good[i], "r\xc3\xa9");
        n = client_frame(buf, sizeof buf, WS_OP_CLOSE, true, pl, c);
        want_close(&w, pl, c, (uint16_t)good[i], "r\xc3\xa9");
        check_all_splits(&server_cfg, buf, n, &w);
        got_free(&w);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        c = ws_close_payload(pl, (uint16_t)bad[i], "");
        n = client_frame(buf, sizeof buf, WS_OP_CLOSE, true, pl, c);
        check_error_only(&server_cfg, buf, n, WS_CLOSE_PROTOCOL);
    }
    c = ws_close_payload(pl, 1000, "bad \xc0\xaf");
    n = client_frame(buf, sizeof buf, WS_OP_CLOSE, true, pl, c);
    check_error_only(&server_cfg, buf, n, WS_CLOSE_INVALID_DATA);
}

static void test_error_is_sticky(void **state)
{
    static const uint8_t bad[] = {0x83, 0x80, 0, 0, 0, 0};
    uint8_t good[16];
    ws_parser_t p;
    ws_message_t m;
    (void)state;
    size_t n = client_frame(good, sizeof good, WS_OP_TEXT, true, "hi", 2);
    ws_parser_init(&p, &server_cfg);
    assert_int_equal(ws_parser_feed(&p, bad, sizeof bad, &m), -1);
    assert_int_equal(p.error_code, WS_CLOSE_PROTOCOL);
    assert_int_equal(ws_parser_feed(&p, good, n, &m), -1);
    assert_int_equal(m.opcode, WS_OP_CONT);
    assert_int_equal(p.error_code, WS_CLOSE_PROTOCOL);
    ws_parser_free(&p);
}

/* Two frames in one chunk: the first call stops after the first message. */
static void test_stops_after_each_message(void **state)
{
    uint8_t buf[64];
    ws_parser_t p;
    ws_message_t m;
    (void)state;
    size_t a = client_frame(buf, sizeof buf, WS_OP_TEXT, true, "one", 3);
    size_t b = client_frame(buf + a, sizeof buf - a, WS_OP_PING, true, "", 0);
    ws_parser_init(&p, &server_cfg);
    assert_int_equal(ws_parser_feed(&p, buf, a + b, &m), (ssize_t)a);
    assert_int_equal(m.opcode, WS_OP_TEXT);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.data, "one", 3);
    assert_int_equal(ws_parser_feed(&p, buf + a, b, &m), (ssize_t)b);
    assert_int_equal(m.opcode, WS_OP_PING);
    assert_int_equal(m.len, 0);
    assert_int_equal(ws_parser_feed(&p, buf, 0, &m), 0);
    assert_int_equal(m.opcode, WS_OP_CONT);
    ws_parser_free(&p);
}

/* The buffer starts small, grows with the message, is dropped after a big
   message once it has been consumed, and is released by ws_parser_free. */
static void test_buffer_life_cycle(void **state)
{
    size_t big = 100 * 1024, cap = big + 16;
    uint8_t *buf = malloc(cap), *payload = calloc(1, big);
    uint8_t small[16];
    ws_parser_t p;
    ws_message_t m;
    (void)state;
    assert_non_null(buf);
    assert_non_null(payload);
    ws_parser_init(&p, &server_cfg);
    size_t n = client_frame(small, sizeof small, WS_OP_TEXT, true, "hi", 2);
    assert_int_equal(ws_parser_feed(&p, small, n, &m), (ssize_t)n);
    assert_true(p.msg_cap > 0 && p.msg_cap <= 256);
    n = client_frame(buf, cap, WS_OP_BINARY, true, payload, big);
    assert_int_equal(ws_parser_feed(&p, buf, n, &m), (ssize_t)n);
    assert_int_equal(m.len, big);
    assert_true(p.msg_cap >= big && p.msg_cap <= server_cfg.max_message);
    assert_int_equal(ws_parser_feed(&p, buf, 0, &m), 0);
    assert_true(p.msg_cap <= 64 * 1024);
    n = client_frame(small, sizeof small, WS_OP_TEXT, true, "hi", 2);
    assert_int_equal(ws_parser_feed(&p, small, n, &m), (ssize_t)n);
    assert_memory_equal(m.data, "hi", 2);
    ws_parser_free(&p);
    assert_null(p.msg);
    assert_int_equal(p.msg_cap, 0);
    free(buf);
    free(payload);
}

/* ---- serializer ---- */

static void test_round_trip(void **state)
{
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70001};
    ws_parser_config_t cfg = server_cfg;
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t len = sizes[i], cap = len + WS_MAX_HEADER;
        uint8_t *pl = malloc(len + 1), *f = malloc(cap);
        assert_non_null(pl);
        assert_non_null(f);
        for (size_t k = 0; k < len; k++)
            pl[k] = (uint8_t)('a' + k % 26);
        for (int masked = 0; masked < 2; masked++) {
            const uint8_t *mk = masked ? test_mask : NULL;
            ws_opcode_t op = len % 2 ? WS_OP_TEXT : WS_OP_BINARY;
            size_t n = ws_frame_write(f, cap, op, true, 0, pl, len, mk);
            assert_int_equal(n, ws_frame_header_size(len, masked) + len);
            cfg.require_mask = masked;
            cfg.reject_mask = !masked;
            got_t g;
            size_t cut = n / 2;
            parse_cuts(&cfg, f, n, &cut, 1, &g);
            assert_int_equal(g.error, 0);
            assert_int_equal(g.n, 1);
            assert_int_equal(g.m[0].opcode, op);
            assert_int_equal(g.m[0].len, len);
            assert_memory_equal(g.m[0].data, pl, len);
            got_free(&g);
        }
        free(pl);
        free(f);
    }
}

static void test_header_sizes(void **state)
{
    uint8_t h[WS_MAX_HEADER], pl[4] = {0};
    (void)state;
    assert_int_equal(ws_frame_header_size(0, false), 2);
    assert_int_equal(ws_frame_header_size(125, false), 2);
    assert_int_equal(ws_frame_header_size(126, false), 4);
    assert_int_equal(ws_frame_header_size(65535, true), 8);
    assert_int_equal(ws_frame_header_size(65536, false), 10);
    assert_int_equal(ws_frame_header_size(UINT64_C(1) << 40, true), 14);
    assert_int_equal(
        ws_frame_write_header(h, WS_OP_BINARY, false, WS_RSV1, 65536, NULL),
        10);
    static const uint8_t want[] = {0x42, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    assert_memory_equal(h, want, sizeof want);
    assert_int_equal(
        ws_frame_write_header(h, WS_OP_PONG, true, 0, 300, test_mask), 8);
    static const uint8_t want2[] = {0x8a, 0xfe, 0x01, 0x2c,
                                    0x37, 0xfa, 0x21, 0x3d};
    assert_memory_equal(h, want2, sizeof want2);
    /* too small a buffer */
    assert_int_equal(ws_frame_write(h, 5, WS_OP_TEXT, true, 0, pl, 4, NULL), 0);
    assert_int_equal(ws_frame_write(h, 6, WS_OP_TEXT, true, 0, pl, 4, NULL), 6);
    assert_int_equal(
        ws_frame_write(h, 9, WS_OP_TEXT, true, 0, pl, 4, test_mask), 0);
}

static void test_mask_reference(void **state)
{
    static const uint8_t mk[4] = {0x01, 0x82, 0x43, 0xc4};
    uint8_t a[64], b[64];
    (void)state;
    for (size_t align = 0; align < 8; align++)
        for (size_t off = 0; off < 8; off++)
            for (size_t len = 0; len + align <= sizeof a && len <= 40; len++) {
                for (size_t i = 0; i < sizeof a; i++)
                    a[i] = b[i] = (uint8_t)(i * 31 + 7);
                ws_mask(a + align, len, mk, off);
                for (size_t i = 0; i < len; i++)
                    b[align + i] ^= mk[(off + i) % 4];
                assert_memory_equal(a, b, sizeof a);
            }
}

static void test_close_payload(void **state)
{
    uint8_t out[WS_MAX_CONTROL], f[WS_MAX_CONTROL + WS_MAX_HEADER];
    char reason[400];
    got_t g;
    (void)state;
    assert_int_equal(ws_close_payload(out, 1000, NULL), 2);
    assert_memory_equal(out, "\x03\xe8", 2);
    assert_int_equal(ws_close_payload(out, 4001, "ok"), 4);
    assert_memory_equal(out, "\x0f\xa1ok", 4);
    memset(reason, 'a', 300);
    reason[300] = '\0';
    assert_int_equal(ws_close_payload(out, 1008, reason), WS_MAX_CONTROL);
    /* multi-byte characters straddling the 123-byte cut, at every phase */
    for (size_t pad = 0; pad < 4; pad++) {
        memset(reason, 'a', pad);
        reason[pad] = '\0';
        for (int i = 0; i < 40; i++)
            strcat(reason, "\xf0\x9f\x98\x80");
        size_t n = ws_close_payload(out, 1001, reason);
        assert_true(n <= WS_MAX_CONTROL && n > WS_MAX_CONTROL - 4);
        assert_true(utf8_valid(out + 2, n - 2));
        size_t fl = ws_frame_write(f, sizeof f, WS_OP_CLOSE, true, 0, out, n,
                                   test_mask);
        parse_cuts(&server_cfg, f, fl, NULL, 0, &g);
        assert_int_equal(g.error, 0);
        assert_int_equal(g.n, 1);
        assert_int_equal(g.m[0].close_code, 1001);
        assert_int_equal(g.m[0].reason_len, n - 2);
        got_free(&g);
    }
}

static void test_close_code_valid(void **state)
{
    (void)state;
    unsigned count = 0;
    for (unsigned c = 0; c < 70000; c++)
        count += ws_close_code_valid(c);
    /* 1000-1003, 1007-1014, 3000-4999 */
    assert_int_equal(count, 4 + 8 + 2000);
    assert_true(ws_close_code_valid(1000));
    assert_true(ws_close_code_valid(1014));
    assert_true(ws_close_code_valid(3000));
    assert_true(ws_close_code_valid(4999));
    assert_false(ws_close_code_valid(1004));
    assert_false(ws_close_code_valid(1005));
    assert_false(ws_close_code_valid(1006));
    assert_false(ws_close_code_valid(1015));
    assert_false(ws_close_code_valid(2999));
    assert_false(ws_close_code_valid(5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_unmasked_text),
        cmocka_unit_test(test_rfc_masked_text),
        cmocka_unit_test(test_rfc_fragmented_text),
        cmocka_unit_test(test_rfc_ping_pong),
        cmocka_unit_test(test_rfc_binary_256),
        cmocka_unit_test(test_rfc_binary_64k),
        cmocka_unit_test(test_reserved_opcodes),
        cmocka_unit_test(test_rsv_bits),
        cmocka_unit_test(test_compressed_fragments),
        cmocka_unit_test(test_control_frame_rules),
        cmocka_unit_test(test_continuation_rules),
        cmocka_unit_test(test_length_encodings),
        cmocka_unit_test(test_masking_rules),
        cmocka_unit_test(test_max_message),
        cmocka_unit_test(test_utf8_in_text),
        cmocka_unit_test(test_control_between_fragments),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_idle_and_move),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_stops_after_each_message),
        cmocka_unit_test(test_buffer_life_cycle),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_header_sizes),
        cmocka_unit_test(test_mask_reference),
        cmocka_unit_test(test_close_payload),
        cmocka_unit_test(test_close_code_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
