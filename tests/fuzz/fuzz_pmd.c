/*
 * fuzz_pmd.c - libFuzzer target for permessage-deflate.
 *
 * The first input byte is a set of flags, the rest the data:
 *   bits 0-2  window bits 8 + n (the inflater's and the compressor's)
 *   bit 3     context takeover: the data is inflated as two messages (cut in
 *             the middle) on one inflater, so the second sees the first's
 *             window
 *   bits 4-5  max_out: 64, 512, 4096 or 65536 bytes
 *   bit 6     server policy for the negotiation (cfg with small windows and
 *             client_no_context_takeover forced)
 *   bit 7     also compress the data and check the round trip
 * Every input is inflated (output never over max_out, capacity never over
 * max_out + 1) and used as a Sec-WebSocket-Extensions value in a complete
 * upgrade request, through http_parse_request, ws_handshake_check and
 * pmd_negotiate; an accepted answer must parse back as one well-formed
 * permessage-deflate response.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pmd.h"
#include "fuzz.h"

static const size_t max_outs[4] = {64, 512, 4096, 65536};

/* Inflates msg into a fresh buffer and checks the bound. */
static int inflate_checked(pmd_inflater_t *inf, const uint8_t *msg, size_t len,
                           size_t max_out)
{
    pmd_buf_t out = {0};
    int rc = pmd_inflate(inf, msg, len, max_out, &out);
    CHECK(rc == 0 || rc == PMD_ERR_TOO_BIG || rc == PMD_ERR_DATA);
    CHECK(out.cap <= max_out + 1);
    if (rc == 0)
        CHECK(out.len <= max_out);
    pmd_buf_free(&out);
    return rc;
}

static void fuzz_inflate(uint8_t flags, const uint8_t *msg, size_t len)
{
    int bits = 8 + (flags & 7);
    size_t max_out = max_outs[(flags >> 4) & 3];
    pmd_inflater_t inf;
    if (flags & 8) {
        pmd_inflater_init(&inf, bits, true);
        size_t half = len / 2;
        if (inflate_checked(&inf, msg, half, max_out) == 0)
            inflate_checked(&inf, msg + half, len - half, max_out);
    } else {
        pmd_inflater_init(&inf, bits, false);
        inflate_checked(&inf, msg, len, max_out);
        CHECK(inf.zs == NULL);
    }
    pmd_inflater_free(&inf);
}

/* Compresses msg with a worker-style compressor and inflates it back. */
static void fuzz_round_trip(uint8_t flags, const uint8_t *msg, size_t len)
{
    static pmd_compressor_t comp[PMD_MAX_WINDOW_BITS + 1];
    static pmd_inflater_t shared;
    static pmd_buf_t out;
    int bits = 8 + (flags & 7);
    if (bits < PMD_MIN_WINDOW_BITS)
        bits = PMD_MIN_WINDOW_BITS;
    if (comp[bits].zs == NULL)
        CHECK(pmd_compressor_init(&comp[bits], bits, -1) == 0);
    uint8_t *frame;
    size_t n;
    CHECK(pmd_compress(&comp[bits], msg, len, &frame, &n) == 0);
    if (shared.window_bits == 0) /* once: it keeps its state */
        pmd_inflater_init(&shared, PMD_MAX_WINDOW_BITS, false);
    CHECK(pmd_inflate_oneshot(&shared, frame + PMD_HEADROOM, n, len, &out) ==
          0);
    CHECK(out.len == len && (len == 0 || memcmp(out.data, msg, len) == 0));
}

/* An accepted response must itself be a well-formed extension list. */
static void check_response(const char *resp, const pmd_params_t *p)
{
    static ws_handshake_t back;
    size_t n = strlen(resp);
    CHECK(n < PMD_RESPONSE_MAX);
    memset(&back, 0, sizeof back);
    CHECK(ws_parse_extensions(resp, n, &back) == 0);
    CHECK(back.num_extensions == 1);
    CHECK(back.extensions[0].num_params >= 1);
    CHECK(p->server_no_context_takeover);
    CHECK(p->server_window_bits >= PMD_MIN_WINDOW_BITS &&
          p->server_window_bits <= PMD_MAX_WINDOW_BITS);
    CHECK(p->client_window_bits >= 8 &&
          p->client_window_bits <= PMD_MAX_WINDOW_BITS);
    /* The answer is acceptable to ourselves as an offer. */
    pmd_params_t again;
    char resp2[PMD_RESPONSE_MAX];
    CHECK(pmd_negotiate(&back, NULL, &again, resp2, sizeof resp2) == 1);
}

static void fuzz_negotiate(uint8_t flags, const uint8_t *ext, size_t len)
{
    static const char pre[] =
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Extensions: ";
    static const char post[] = "\r\n\r\n";
    static char buf[sizeof pre + 4096 + sizeof post];
    static http_request_t req;
    static ws_handshake_t hs;
    static const http_limits_t lim = {1024, 8192, 64};
    if (len > 4096)
        len = 4096;
    size_t n = 0;
    memcpy(buf, pre, sizeof pre - 1);
    n += sizeof pre - 1;
    memcpy(buf + n, ext, len);
    n += len;
    memcpy(buf + n, post, sizeof post - 1);
    n += sizeof post - 1;
    if (http_parse_request(buf, n, 0, &lim, &req) <= 0)
        return;
    if (ws_handshake_check(&req, &hs) != 0)
        return;
    pmd_config_t cfg = {0};
    if (flags & 64)
        cfg = (pmd_config_t){.client_max_window_bits = 9,
                             .server_max_window_bits = 10,
                             .client_no_context_takeover = true};
    pmd_params_t p;
    char resp[PMD_RESPONSE_MAX];
    int rc = pmd_negotiate(&hs, &cfg, &p, resp, sizeof resp);
    CHECK(rc == 0 || rc == 1);
    if (rc == 1) {
        check_response(resp, &p);
        char small[24];
        CHECK(pmd_negotiate(&hs, &cfg, &p, small, sizeof small) == -1);
        CHECK(small[0] == '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    fuzz_inflate(flags, data + 1, size - 1);
    if (flags & 128)
        fuzz_round_trip(flags, data + 1, size - 1);
    fuzz_negotiate(flags, data + 1, size - 1);
    return 0;
}
