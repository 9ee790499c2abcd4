/*
 * fuzz_wire.c - libFuzzer target for the broker wire decoder.  The input is
 * cut into frames, each a 2-byte little-endian length then that many bytes
 * (the last frame takes what is left); the decoder must never read out of
 * bounds, and what it accepts must survive an encode/decode round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "fuzz.h"

#define MAX_FRAMES 64

static size_t split(const uint8_t *data, size_t size, wire_buf_t *frames)
{
    size_t n = 0;
    while (size > 0 && n < MAX_FRAMES) {
        size_t len = size >= 2 ? (size_t)(data[0] | (data[1] << 8)) : 0;
        size_t skip = size >= 2 ? 2 : size;
        data += skip;
        size -= skip;
        if (len > size)
            len = size;
        frames[n].p = data;
        frames[n].len = len;
        n++;
        data += len;
        size -= len;
    }
    return n;
}

static void check_round_trip(const wire_msg_t *m)
{
    uint8_t hdr[WIRE_HDR_LEN];
    wire_buf_t out[MAX_FRAMES];
    int n = wire_encode(m, hdr, out, MAX_FRAMES);
    if (n < 1)
        abort();
    size_t per = wire_item_frames(m->type);
    for (size_t i = 0; i < m->num_items * per; i++)
        out[n + (int)i] = m->items[i];
    wire_msg_t d;
    const char *err;
    if (wire_decode(out, (size_t)n + m->num_items * per, &d, &err) != 0)
        abort();
    if (d.type != m->type || d.seq != m->seq || d.conn != m->conn ||
        d.flags != m->flags || d.num_items != m->num_items)
        abort();
    for (size_t i = 0; i < d.num_items && per == 3; i++) {
        wire_item_t it;
        wire_item(&d, i, &it);
        if (it.nick.len > WIRE_MAX_NICK)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wire_buf_t frames[MAX_FRAMES];
    size_t n = split(data, size, frames);
    wire_msg_t m;
    const char *err = NULL;
    if (wire_decode(frames, n, &m, &err) == 0)
        check_round_trip(&m);
    else if (err == NULL)
        abort();
    return 0;
}
