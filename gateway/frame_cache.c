/*
 * frame_cache.c - shared broadcast frames and the hand-written JSON of the
 * `msg` frame (frame_cache.h).
 */
#include "frame_cache.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "utf8.h"

frame_t *frame_new(ws_opcode_t op, const void *payload, size_t len)
{
    size_t hlen = ws_frame_header_size(len, false);
    frame_t *f = malloc(sizeof *f + hlen + len);
    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->len = ws_frame_write_header(f->data, op, true, 0, len, NULL) + len;
    if (len > 0)
        memcpy(f->data + hlen, payload, len);
    return f;
}

frame_t *frame_new_deflated(pmd_compressor_t *z, ws_opcode_t op,
                            const void *payload, size_t len)
{
    uint8_t *out;
    size_t n;
    if (pmd_compress(z, payload, len, &out, &n) != 0)
        return NULL;
    size_t hlen = ws_frame_header_size(n, false);
    frame_t *f = malloc(sizeof *f + hlen + n);
    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->len = ws_frame_write_header(f->data, op, true, WS_RSV1, n, NULL) + n;
    memcpy(f->data + hlen, out + PMD_HEADROOM, n);
    return f;
}

const uint8_t *frame_payload(const frame_t *f, size_t *len)
{
    uint8_t b1 = f->data[1] & 0x7f; /* server frames are never masked */
    size_t hlen = b1 < 126 ? 2 : b1 == 126 ? 4 : 10;
    *len = f->len - hlen;
    return f->data + hlen;
}

frame_t *frame_ref(frame_t *f)
{
    f->refs++;
    return f;
}

void frame_unref(frame_t *f)
{
    if (f != NULL && --f->refs == 0)
        free(f);
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when the bytes
 * there do not start one. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (n == 0 || n > len || !utf8_valid(s, n))
        return 0;
    return n;
}

/* The escape of control character ch into esc; returns its length. */
static size_t escape_ctl(unsigned char ch, char esc[7])
{
    switch (ch) {
    case '\n':
        memcpy(esc, "\\n", 2);
        return 2;
    case '\r':
        memcpy(esc, "\\r", 2);
        return 2;
    case '\t':
        memcpy(esc, "\\t", 2);
        return 2;
    case '\b':
        memcpy(esc, "\\b", 2);
        return 2;
    case '\f':
        memcpy(esc, "\\f", 2);
        return 2;
    default:
        snprintf(esc, 7, "\\u%04x", ch);
        return 6;
    }
}

/* Escapes s into out, or only counts when out is NULL. */
static size_t escape(char *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char ch = p[i];
        char esc[7];
        size_t elen = 0, take = 1;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            elen = 2;
        } else if (ch < 0x20) {
            elen = escape_ctl(ch, esc);
        } else if (ch >= 0x80 && (take = utf8_seq(p + i, len - i)) == 0) {
            memcpy(esc, "\\ufffd", 6);
            elen = 6;
            take = 1;
        }
        if (elen > 0) {
            if (out != NULL)
                memcpy(out + o, esc, elen);
            o += elen;
        } else {
            if (out != NULL)
                memcpy(out + o, p + i, take);
            o += take;
        }
        i += take;
    }
    return o;
}

size_t json_escape_len(const char *s, size_t len)
{
    return escape(NULL, s, len);
}

size_t json_escape(char *out, const char *s, size_t len)
{
    return escape(out, s, len);
}

frame_t *frame_new_msg_json(const char *room, size_t room_len, uint64_t seq,
                            uint64_t ts, const char *nick, size_t nick_len,
                            const char *text, size_t text_len)
{
    char nums[96];
    int nlen = snprintf(nums, sizeof nums,
                        "\",\"seq\":%" PRIu64 ",\"ts\":%" PRIu64 ",\"nick\":\"",
                        seq, ts);
    static const char head[] = "{\"type\":\"msg\",\"room\":\"";
    static const char mid[] = "\",\"text\":\"";
    static const char tail[] = "\"}";
    size_t ej_room = json_escape_len(room, room_len);
    size_t ej_nick = json_escape_len(nick, nick_len);
    size_t ej_text = json_escape_len(text, text_len);
    size_t plen = sizeof head - 1 + ej_room + (size_t)nlen + ej_nick +
                  sizeof mid - 1 + ej_text + sizeof tail - 1;
    size_t hlen = ws_frame_header_size(plen, false);
    frame_t *f = malloc(sizeof *f + hlen + plen);
    if (f == NULL)
        return NULL;
    f->refs = 1;
    f->len = ws_frame_write_header(f->data, WS_OP_TEXT, true, 0, plen, NULL);
    char *o = (char *)f->data + f->len;
    memcpy(o, head, sizeof head - 1);
    o += sizeof head - 1;
    o += json_escape(o, room, room_len);
    memcpy(o, nums, (size_t)nlen);
    o += nlen;
    o += json_escape(o, nick, nick_len);
    memcpy(o, mid, sizeof mid - 1);
    o += sizeof mid - 1;
    o += json_escape(o, text, text_len);
    memcpy(o, tail, sizeof tail - 1);
    f->len += plen;
    return f;
}

static void unref_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    frame_unref(arg);
}

int frame_queue(struct evbuffer *out, frame_t *f)
{
    if (f->len <= FRAME_REF_THRESHOLD)
        return evbuffer_add(out, f->data, f->len);
    frame_ref(f);
    if (evbuffer_add_reference(out, f->data, f->len, unref_cleanup, f) != 0) {
        frame_unref(f);
        return -1;
    }
    return 0;
}
