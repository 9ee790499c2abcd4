/*
 * fuzz_ws_frame.c - fuzzes the WebSocket frame parser.
 *
 * Input: byte 0 picks the first split point, byte 1 holds flags (bit 0:
 * allow RSV1, bit 1: client side, rejecting masked frames instead of
 * requiring masks, bits 2-6: size of the later chunks), the rest is the
 * byte stream.  The stream is parsed once whole and once in chunks, each
 * chunk in its own exact-size allocation so an over-read trips ASan; both
 * runs must give the same messages and the same error, and every message
 * must satisfy the parser's contract.  Any violation aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"
#include "fuzz.h"

#define FUZZ_MAX_MESSAGE 4096

/* What one run saw: a running digest of messages, and how it ended. */
typedef struct {
    uint64_t digest;
    size_t messages;
    uint16_t error;
} run_t;

static void check(bool ok)
{
    if (!ok)
        abort();
}

static uint64_t mix(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static void check_close(const ws_message_t *m)
{
    if (m->len == 0) {
        check(m->close_code == WS_CLOSE_NO_STATUS);
        check(m->close_reason_len == 0);
        return;
    }
    check(m->len >= 2 && ws_close_code_valid(m->close_code));
    check(m->close_reason_len == m->len - 2);
    check((const uint8_t *)m->close_reason == m->data + 2);
    check(utf8_valid((const uint8_t *)m->close_reason, m->close_reason_len));
}

static void check_message(const ws_parser_config_t *cfg, const ws_message_t *m,
                          run_t *r)
{
    switch (m->opcode) {
    case WS_OP_TEXT:
        if (!m->compressed)
            check(utf8_valid(m->data, m->len));
        /* fall through */
    case WS_OP_BINARY:
        check(m->len <= cfg->max_message);
        check(!m->compressed || (cfg->allowed_rsv & WS_RSV1));
        break;
    case WS_OP_CLOSE:
        check_close(m);
        /* fall through */
    case WS_OP_PING:
    case WS_OP_PONG:
        check(m->len <= WS_MAX_CONTROL && !m->compressed);
        break;
    default:
        abort();
    }
    check(m->data != NULL || m->len == 0);
    uint8_t tag[3] = {(uint8_t)m->opcode, m->compressed,
                      (uint8_t)m->close_code};
    r->digest = mix(mix(r->digest, tag, sizeof tag), m->data, m->len);
    r->messages++;
}

/* Feeds one chunk from its own allocation; false once the parser failed. */
static bool feed_chunk(ws_parser_t *p, const uint8_t *in, size_t len, run_t *r)
{
    uint8_t *copy = malloc(len ? len : 1);
    check(copy != NULL);
    memcpy(copy, in, len);
    size_t off = 0;
    bool ok = true;
    while (off < len) {
        ws_message_t m;
        ssize_t n = ws_parser_feed(p, copy + off, len - off, &m);
        if (n < 0) {
            check(m.opcode == WS_OP_CONT && p->error != NULL);
            check(p->error_code == WS_CLOSE_PROTOCOL ||
                  p->error_code == WS_CLOSE_INVALID_DATA ||
                  p->error_code == WS_CLOSE_TOO_BIG);
            check(ws_parser_feed(p, copy, len, &m) == -1);
            r->error = p->error_code;
            ok = false;
            break;
        }
        check((size_t)n <= len - off);
        if (m.opcode == WS_OP_CONT)
            check((size_t)n == len - off);
        else
            check_message(&p->cfg, &m, r);
        off += (size_t)n;
    }
    free(copy);
    return ok;
}

/* Parses the stream cut first at `cut`, then every `step` bytes. */
static void run(const ws_parser_config_t *cfg, const uint8_t *in, size_t len,
                size_t cut, size_t step, run_t *r)
{
    ws_parser_t p;
    memset(r, 0, sizeof *r);
    ws_parser_init(&p, cfg);
    size_t from = 0, to = cut;
    while (from < len || from == 0) {
        if (!feed_chunk(&p, in + from, to - from, r))
            break;
        if (to == len)
            break;
        from = to;
        to = len - from > step ? from + step : len;
    }
    check(p.msg_len <= cfg->max_message && p.msg_cap <= cfg->max_message);
    ws_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t *in = data + 2;
    size_t len = size - 2;
    ws_parser_config_t cfg = {
        .max_message = FUZZ_MAX_MESSAGE,
        .require_mask = !(data[1] & 2),
        .reject_mask = (data[1] & 2) != 0,
        .allowed_rsv = (data[1] & 1) ? WS_RSV1 : 0,
    };
    size_t cut = len ? data[0] % (len + 1) : 0;
    size_t step = ((data[1] >> 2) & 0x1f) + 1;
    run_t whole, chunked;

    run(&cfg, in, len, len, 1, &whole);
    run(&cfg, in, len, cut, step, &chunked);
    check(whole.digest == chunked.digest);
    check(whole.messages == chunked.messages);
    check(whole.error == chunked.error);
    return 0;
}
