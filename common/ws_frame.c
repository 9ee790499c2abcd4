/*
 * ws_frame.c - RFC 6455 frame codec with no I/O.
 *
 * Parser states, all carried in ws_parser_t:
 *   reading a header   hdr_need > 0: first the 2 fixed bytes, which are
 *                      checked at once (opcode, RSV, mask, continuation
 *                      rules) and tell how many more bytes the header has;
 *   reading a payload  hdr_need == 0: payload_have of payload_len bytes are
 *                      in; data payloads are copied straight into the
 *                      message buffer and unmasked there, control payloads
 *                      into ctl, so a control frame between two fragments
 *                      leaves the message being assembled untouched;
 *   error              error_code != 0: every later call fails.
 */
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

#define MSG_MIN_CAP 256
/* Above this, the message buffer is released once its message is consumed,
   so one big message does not pin memory on an idle connection. */
#define MSG_KEEP_CAP (64 * 1024)

static int fail(ws_parser_t *p, uint16_t code, const char *why)
{
    p->error_code = code;
    p->error = why;
    return -1;
}

static bool is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

static bool opcode_known(uint8_t op)
{
    return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY ||
           op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG;
}

static void next_frame(ws_parser_t *p)
{
    p->hdr_have = 0;
    p->hdr_need = 2;
    p->payload_len = 0;
    p->payload_have = 0;
}

void ws_parser_init(ws_parser_t *p, const ws_parser_config_t *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    utf8_reset(&p->utf8);
    next_frame(p);
}

void ws_parser_free(ws_parser_t *p)
{
    free(p->msg);
    p->msg = NULL;
    p->msg_cap = 0;
    p->msg_len = 0;
}

bool ws_parser_idle(const ws_parser_t *p)
{
    return p->hdr_need == 2 && p->hdr_have == 0 && !p->in_message &&
           p->error_code == 0;
}

/* Frame rules decided by the 2 fixed header bytes. */
static int check_frame_kind(ws_parser_t *p)
{
    if (!opcode_known(p->opcode))
        return fail(p, WS_CLOSE_PROTOCOL, "reserved opcode");
    if (p->rsv & ~p->cfg.allowed_rsv)
        return fail(p, WS_CLOSE_PROTOCOL, "reserved bit set");
    if (is_control(p->opcode)) {
        if (p->rsv != 0)
            return fail(p, WS_CLOSE_PROTOCOL, "RSV bit on a control frame");
        if (!p->fin)
            return fail(p, WS_CLOSE_PROTOCOL, "fragmented control frame");
        if ((p->hdr[1] & 0x7f) > WS_MAX_CONTROL)
            return fail(p, WS_CLOSE_PROTOCOL, "control frame too long");
    } else if (p->opcode == WS_OP_CONT) {
        if (!p->in_message)
            return fail(p, WS_CLOSE_PROTOCOL, "continuation without message");
        if (p->rsv != 0)
            return fail(p, WS_CLOSE_PROTOCOL, "RSV bit on a continuation");
    } else if (p->in_message) {
        return fail(p, WS_CLOSE_PROTOCOL,
                    "new message inside a fragmented one");
    }
    if (p->cfg.require_mask && !p->masked)
        return fail(p, WS_CLOSE_PROTOCOL, "unmasked client frame");
    if (p->cfg.reject_mask && p->masked)
        return fail(p, WS_CLOSE_PROTOCOL, "masked server frame");
    return 0;
}

/* Starts assembling a TEXT or BINARY message. */
static void start_message(ws_parser_t *p)
{
    p->in_message = true;
    p->msg_opcode = p->opcode;
    p->msg_compressed = (p->rsv & WS_RSV1) != 0;
    p->msg_len = 0;
    utf8_reset(&p->utf8);
}

/* Checks the fixed bytes, then sets hdr_need to the whole header's size. */
static int parse_fixed_header(ws_parser_t *p)
{
    uint8_t len7 = p->hdr[1] & 0x7f;

    p->fin = (p->hdr[0] & 0x80) != 0;
    p->rsv = p->hdr[0] & 0x70;
    p->opcode = p->hdr[0] & 0x0f;
    p->masked = (p->hdr[1] & 0x80) != 0;
    if (check_frame_kind(p) < 0)
        return -1;
    if (p->opcode == WS_OP_TEXT || p->opcode == WS_OP_BINARY)
        start_message(p);
    p->hdr_need = 2 +
                  (len7 == 126   ? 2
                   : len7 == 127 ? 8
                                 : 0) +
                  (p->masked ? 4 : 0);
    return 0;
}

/* Decodes the payload length; rejects non-minimal and 63-bit overflows. */
static int parse_length(ws_parser_t *p)
{
    uint8_t len7 = p->hdr[1] & 0x7f;
    uint64_t v = 0;

    if (len7 < 126) {
        p->payload_len = len7;
        return 0;
    }
    size_t n = len7 == 126 ? 2 : 8;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p->hdr[2 + i];
    if (v >> 63)
        return fail(p, WS_CLOSE_PROTOCOL, "64-bit length with top bit set");
    if ((n == 2 && v < 126) || (n == 8 && v <= 0xffff))
        return fail(p, WS_CLOSE_PROTOCOL, "non-minimal length encoding");
    p->payload_len = v;
    return 0;
}

/* The header is complete: length, mask, size limit; enters the payload. */
static int finish_header(ws_parser_t *p)
{
    if (parse_length(p) < 0)
        return -1;
    if (p->masked)
        memcpy(p->mask, p->hdr + p->hdr_need - 4, 4);
    if (!is_control(p->opcode) &&
        p->payload_len > p->cfg.max_message - p->msg_len)
        return fail(p, WS_CLOSE_TOO_BIG, "message too big");
    p->payload_have = 0;
    p->hdr_have = 0;
    p->hdr_need = 0;
    return 0;
}

/* Reads header bytes from in[*used..len); fails on a rule violation. */
static int read_header(ws_parser_t *p, const uint8_t *in, size_t len,
                       size_t *used)
{
    while (p->hdr_have < p->hdr_need && *used < len) {
        size_t n = p->hdr_need - p->hdr_have;
        if (n > len - *used)
            n = len - *used;
        memcpy(p->hdr + p->hdr_have, in + *used, n);
        p->hdr_have += n;
        *used += n;
        if (p->hdr_have == 2 && parse_fixed_header(p) < 0)
            return -1;
    }
    if (p->hdr_have < p->hdr_need)
        return 0;
    return finish_header(p);
}

/* Grows the message buffer geometrically to hold need bytes (need is
   already known to be <= cfg.max_message). */
static int reserve(ws_parser_t *p, size_t need)
{
    if (need <= p->msg_cap)
        return 0;
    size_t cap = p->msg_cap < MSG_MIN_CAP ? MSG_MIN_CAP : p->msg_cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > p->cfg.max_message)
        cap = p->cfg.max_message; /* still >= need */
    uint8_t *m = realloc(p->msg, cap);
    if (m == NULL)
        return fail(p, WS_CLOSE_INTERNAL, "out of memory");
    p->msg = m;
    p->msg_cap = cap;
    return 0;
}

/* Takes n payload bytes (n <= what the frame still lacks), unmasks them in
   place and validates text as it arrives. */
static int read_payload(ws_parser_t *p, const uint8_t *in, size_t n)
{
    uint8_t *dst;

    if (is_control(p->opcode)) {
        dst = p->ctl + p->payload_have;
    } else {
        size_t at = p->msg_len + (size_t)p->payload_have;
        if (reserve(p, at + n) < 0)
            return -1;
        dst = p->msg + at;
    }
    memcpy(dst, in, n);
    if (p->masked)
        ws_mask(dst, n, p->mask, (size_t)p->payload_have);
    p->payload_have += n;
    if (!is_control(p->opcode) && p->msg_opcode == WS_OP_TEXT &&
        !p->msg_compressed && utf8_feed(&p->utf8, dst, n) == UTF8_REJECT)
        return fail(p, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text");
    return 0;
}

/* Validates a complete close frame and describes it in out. */
static int deliver_close(ws_parser_t *p, ws_message_t *out)
{
    out->close_reason = (const char *)p->ctl + (p->ctl_len ? 2 : 0);
    if (p->ctl_len == 0) {
        out->close_code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (p->ctl_len == 1)
        return fail(p, WS_CLOSE_PROTOCOL, "close payload of 1 byte");
    out->close_code = (uint16_t)(p->ctl[0] << 8 | p->ctl[1]);
    if (!ws_close_code_valid(out->close_code))
        return fail(p, WS_CLOSE_PROTOCOL, "invalid close code");
    out->close_reason_len = p->ctl_len - 2;
    if (!utf8_valid(p->ctl + 2, out->close_reason_len))
        return fail(p, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
    return 0;
}

/* A control frame is complete: hands it out. */
static int finish_control(ws_parser_t *p, ws_message_t *out)
{
    p->ctl_len = (size_t)p->payload_len;
    out->opcode = (ws_opcode_t)p->opcode;
    out->data = p->ctl;
    out->len = p->ctl_len;
    if (p->opcode == WS_OP_CLOSE && deliver_close(p, out) < 0)
        return -1;
    return 1;
}

/* A data frame is complete: hands out the message after its last frame.
   Returns 1 when out holds a message, 0 when more frames are due. */
static int finish_data(ws_parser_t *p, ws_message_t *out)
{
    p->msg_len += (size_t)p->payload_len;
    if (!p->fin)
        return 0;
    if (p->msg_opcode == WS_OP_TEXT && !p->msg_compressed &&
        p->utf8.state != UTF8_ACCEPT)
        return fail(p, WS_CLOSE_INVALID_DATA, "truncated UTF-8 in text");
    p->in_message = false;
    out->opcode = (ws_opcode_t)p->msg_opcode;
    out->compressed = p->msg_compressed;
    out->data = p->msg != NULL ? p->msg : p->ctl;
    out->len = p->msg_len;
    return 1;
}

static int finish_frame(ws_parser_t *p, ws_message_t *out)
{
    int rc =
        is_control(p->opcode) ? finish_control(p, out) : finish_data(p, out);
    if (rc >= 0)
        next_frame(p);
    return rc;
}

/* Between messages, drops a buffer that a big message left behind. */
static void shrink_idle_buffer(ws_parser_t *p)
{
    if (!p->in_message && p->msg_cap > MSG_KEEP_CAP) {
        free(p->msg);
        p->msg = NULL;
        p->msg_cap = 0;
        p->msg_len = 0;
    }
}

/* The parse loop: returns bytes used, or -1 after fail(). */
static ssize_t feed(ws_parser_t *p, const uint8_t *in, size_t len,
                    ws_message_t *out)
{
    size_t used = 0;

    for (;;) {
        if (p->hdr_need != 0) {
            if (used == len)
                break;
            if (read_header(p, in, len, &used) < 0)
                return -1;
            continue;
        }
        uint64_t rest = p->payload_len - p->payload_have;
        if (rest > 0 && used == len)
            break;
        size_t n = rest < len - used ? (size_t)rest : len - used;
        if (n > 0 && read_payload(p, in + used, n) < 0)
            return -1;
        used += n;
        if (p->payload_have < p->payload_len)
            break;
        int rc = finish_frame(p, out);
        if (rc != 0)
            return rc < 0 ? -1 : (ssize_t)used;
    }
    return (ssize_t)used;
}

ssize_t ws_parser_feed(ws_parser_t *p, const uint8_t *in, size_t len,
                       ws_message_t *out)
{
    memset(out, 0, sizeof *out);
    out->opcode = WS_OP_CONT;
    if (p->error_code != 0)
        return -1;
    shrink_idle_buffer(p);
    ssize_t n = feed(p, in, len, out);
    if (n < 0) {
        memset(out, 0, sizeof *out);
        out->opcode = WS_OP_CONT;
    }
    return n;
}

size_t ws_frame_header_size(uint64_t len, bool masked)
{
    size_t ext = len < 126 ? 0 : len <= 0xffff ? 2 : 8;
    return 2 + ext + (masked ? 4 : 0);
}

size_t ws_frame_write_header(uint8_t *out, ws_opcode_t op, bool fin,
                             uint8_t rsv, uint64_t len, const uint8_t *mask)
{
    size_t n = 2;

    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 0x70) | (op & 0x0f));
    out[1] = mask != NULL ? 0x80 : 0;
    if (len < 126) {
        out[1] |= (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] |= 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[1] |= 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(len >> shift);
    }
    if (mask != NULL) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

size_t ws_frame_write(uint8_t *out, size_t cap, ws_opcode_t op, bool fin,
                      uint8_t rsv, const uint8_t *payload, size_t len,
                      const uint8_t *mask)
{
    size_t hdr = ws_frame_header_size(len, mask != NULL);

    if (len > SIZE_MAX - hdr || cap < hdr + len)
        return 0;
    ws_frame_write_header(out, op, fin, rsv, len, mask);
    if (len > 0)
        memmove(out + hdr, payload, len);
    if (mask != NULL)
        ws_mask(out + hdr, len, mask, 0);
    return hdr + len;
}

void ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset)
{
    uint8_t m8[8];
    uint64_t mw, w;

    for (size_t i = 0; i < 8; i++)
        m8[i] = mask[(offset + i) & 3];
    memcpy(&mw, m8, sizeof mw);
    /* 8 is a multiple of 4, so the mask phase is the same at every word. */
    for (; len >= 8; data += 8, len -= 8) {
        memcpy(&w, data, sizeof w);
        w ^= mw;
        memcpy(data, &w, sizeof w);
    }
    for (size_t i = 0; i < len; i++)
        data[i] ^= m8[i];
}

bool ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

size_t ws_close_payload(uint8_t *out, uint16_t code, const char *reason)
{
    size_t n = reason != NULL ? strlen(reason) : 0;

    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (n > WS_MAX_CONTROL - 2) {
        n = WS_MAX_CONTROL - 2;
        /* Cut before a code point's lead byte, never inside it. */
        while (n > 0 && ((uint8_t)reason[n] & 0xc0) == 0x80)
            n--;
    }
    if (n > 0)
        memcpy(out + 2, reason, n);
    return 2 + n;
}
