/*
 * wire.c - encode and decode the gateway <-> broker messages (wire.h).
 * No I/O: frames are borrowed byte strings; the callers own the ZeroMQ
 * messages behind them.
 */
#include "wire.h"

#include <stddef.h>
#include <string.h>

#define OFF(f) offsetof(wire_msg_t, f)

typedef struct {
    uint8_t type;
    const char *name;
    uint8_t nfields;
    size_t fields[WIRE_MAX_FIELDS];
    uint8_t item_frames;
} type_info_t;

static const type_info_t types[] = {
    {WIRE_HELLO, "HELLO", 1, {OFF(node)}, 0},
    {WIRE_PING, "PING", 0, {0}, 0},
    {WIRE_JOIN, "JOIN", 3, {OFF(room), OFF(nick), OFF(epoch)}, 0},
    {WIRE_SAY, "SAY", 4, {OFF(room), OFF(nick), OFF(text), OFF(ref)}, 0},
    {WIRE_LEAVE, "LEAVE", 1, {OFF(room)}, 0},
    {WIRE_WHO, "WHO", 2, {OFF(room), OFF(ref)}, 0},
    {WIRE_HIST, "HIST", 1, {OFF(room)}, 0},
    {WIRE_BYE, "BYE", 0, {0}, 0},
    {WIRE_WELCOME, "WELCOME", 1, {OFF(boot)}, 0},
    {WIRE_PONG, "PONG", 1, {OFF(boot)}, 0},
    {WIRE_JOINED, "JOINED", 2, {OFF(room), OFF(epoch)}, 3},
    {WIRE_ACK, "ACK", 2, {OFF(room), OFF(ref)}, 0},
    {WIRE_WHO_REPLY, "WHO_REPLY", 2, {OFF(room), OFF(ref)}, 1},
    {WIRE_HISTORY, "HISTORY", 2, {OFF(room), OFF(epoch)}, 3},
    {WIRE_ERROR, "ERROR", 3, {OFF(ref), OFF(nick), OFF(text)}, 0},
    {WIRE_MSG, "MSG", 4, {OFF(room), OFF(epoch), OFF(nick), OFF(text)}, 0},
    {WIRE_PRESENCE, "PRESENCE", 3, {OFF(room), OFF(nick), OFF(node)}, 0},
    {WIRE_HEARTBEAT, "HEARTBEAT", 1, {OFF(boot)}, 0},
};

static const type_info_t *type_info(uint8_t type)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == type)
            return &types[i];
    return NULL;
}

int wire_fields(uint8_t type, size_t offsets[WIRE_MAX_FIELDS])
{
    const type_info_t *t = type_info(type);
    if (t == NULL)
        return -1;
    memcpy(offsets, t->fields, sizeof t->fields);
    return t->nfields;
}

size_t wire_item_frames(uint8_t type)
{
    const type_info_t *t = type_info(type);
    return t ? t->item_frames : 0;
}

const char *wire_type_name(uint8_t type)
{
    const type_info_t *t = type_info(type);
    return t ? t->name : "?";
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static bool room_chars_valid(const wire_buf_t *b)
{
    for (size_t i = 0; i < b->len; i++) {
        uint8_t ch = b->p[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
                  ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Checks the bound of the string field at offset off; NULL when fine. */
static const char *check_field(size_t off, const wire_buf_t *b)
{
    if (off == OFF(room)) {
        if (b->len == 0 || b->len > WIRE_MAX_ROOM || !room_chars_valid(b))
            return "invalid room";
    } else if (off == OFF(nick)) {
        if (b->len > WIRE_MAX_NICK)
            return "nick too long";
    } else if (off == OFF(ref)) {
        if (b->len > WIRE_MAX_REF)
            return "ref too long";
    } else if (off == OFF(epoch) || off == OFF(boot)) {
        if (b->len > WIRE_MAX_EPOCH)
            return "epoch or boot id too long";
    } else if (off == OFF(node)) {
        if (b->len > WIRE_MAX_NODE)
            return "node id too long";
    } else if (off == OFF(text)) {
        if (b->len > WIRE_MAX_TEXT)
            return "text too long";
    }
    return NULL;
}

static const char *check_items(const wire_msg_t *m, size_t per_item)
{
    for (size_t i = 0; i < m->num_items; i++) {
        const wire_buf_t *f = &m->items[i * per_item];
        if (per_item == 1) {
            if (f[0].len > WIRE_MAX_NICK)
                return "item nick too long";
            continue;
        }
        if (f[0].len != WIRE_ITEM_HDR_LEN)
            return "bad item header";
        if (f[1].len > WIRE_MAX_NICK || f[2].len > WIRE_MAX_TEXT)
            return "item field too long";
    }
    return NULL;
}

static void decode_header(const uint8_t *h, wire_msg_t *m)
{
    m->type = h[1];
    m->flags = get_u16(h + 2);
    m->members = get_u32(h + 4);
    m->limit = get_u32(h + 8);
    m->conn = get_u64(h + 16);
    m->seq = get_u64(h + 24);
    m->since = get_u64(h + 32);
    m->gseq = get_u64(h + 40);
    m->ts = get_u64(h + 48);
}

int wire_decode(const wire_buf_t *frames, size_t n, wire_msg_t *m,
                const char **err)
{
    memset(m, 0, sizeof *m);
    if (n == 0 || frames[0].len != WIRE_HDR_LEN) {
        *err = "bad header length";
        return -1;
    }
    if (frames[0].p[0] != WIRE_VERSION) {
        *err = "unsupported wire version";
        return -1;
    }
    const type_info_t *t = type_info(frames[0].p[1]);
    if (t == NULL) {
        *err = "unknown message type";
        return -1;
    }
    decode_header(frames[0].p, m);
    if (n < 1u + t->nfields) {
        *err = "missing frames";
        return -1;
    }
    for (size_t i = 0; i < t->nfields; i++) {
        wire_buf_t *field = (wire_buf_t *)((char *)m + t->fields[i]);
        *field = frames[1 + i];
        const char *e = check_field(t->fields[i], field);
        if (e != NULL) {
            *err = e;
            return -1;
        }
    }
    size_t rest = n - 1 - t->nfields;
    if (rest > 0 && (t->item_frames == 0 || rest % t->item_frames != 0)) {
        *err = "unexpected frames";
        return -1;
    }
    m->items = rest ? &frames[1 + t->nfields] : NULL;
    m->num_items = rest ? rest / t->item_frames : 0;
    *err = check_items(m, t->item_frames);
    return *err == NULL ? 0 : -1;
}

void wire_item(const wire_msg_t *m, size_t i, wire_item_t *out)
{
    const wire_buf_t *f = &m->items[i * 3];
    out->seq = get_u64(f[0].p);
    out->ts = get_u64(f[0].p + 8);
    out->nick = f[1];
    out->text = f[2];
}

int wire_encode(const wire_msg_t *m, uint8_t hdr[WIRE_HDR_LEN],
                wire_buf_t *frames, size_t cap)
{
    const type_info_t *t = type_info(m->type);
    if (t == NULL || cap < 1u + t->nfields)
        return -1;
    memset(hdr, 0, WIRE_HDR_LEN);
    hdr[0] = WIRE_VERSION;
    hdr[1] = m->type;
    put_u16(hdr + 2, m->flags);
    put_u32(hdr + 4, m->members);
    put_u32(hdr + 8, m->limit);
    put_u64(hdr + 16, m->conn);
    put_u64(hdr + 24, m->seq);
    put_u64(hdr + 32, m->since);
    put_u64(hdr + 40, m->gseq);
    put_u64(hdr + 48, m->ts);
    frames[0].p = hdr;
    frames[0].len = WIRE_HDR_LEN;
    for (size_t i = 0; i < t->nfields; i++)
        frames[1 + i] = *(const wire_buf_t *)((const char *)m + t->fields[i]);
    return 1 + t->nfields;
}

void wire_item_header(uint64_t seq, uint64_t ts, uint8_t out[WIRE_ITEM_HDR_LEN])
{
    put_u64(out, seq);
    put_u64(out + 8, ts);
}
