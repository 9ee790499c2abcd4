/*
 * frame_cache.h - refcounted, immutable WebSocket server frames, built once
 * per broadcast and shared by every client of a room, and the JSON
 * escaping that builds the parley.v1 `msg` frame by hand (no jansson on the
 * hot path).
 *
 * The builders are pure (no I/O); frame_queue() is the one function that
 * touches libevent: it hands a frame's bytes to an evbuffer, copying small
 * frames and referencing large ones.
 */
#ifndef PARLEY_FRAME_CACHE_H
#define PARLEY_FRAME_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "pmd.h"
#include "ws_frame.h"

struct evbuffer;

/* Frames larger than this are queued by reference instead of copied:
 * libevent 2.1 allocates a chain per reference, which costs more than
 * copying a small frame.  bench/micro/evbuf_fanout.c measured the
 * crossover near 1 KiB (docs/gateway.md, "Fan-out"). */
#define FRAME_REF_THRESHOLD 1024

typedef struct frame {
    uint32_t refs;
    size_t len;     /* bytes of data: header and payload */
    uint8_t data[]; /* a complete unmasked server frame */
} frame_t;

/*
 * A single-frame server message (FIN set, no RSV) of opcode op with
 * payload[0..len).  Returns an owned frame (1 reference), or NULL when out
 * of memory.
 */
frame_t *frame_new(ws_opcode_t op, const void *payload, size_t len);

/*
 * The parley.v1 `msg` text frame:
 * {"type":"msg","room":R,"seq":S,"ts":T,"nick":N,"text":X}, with nick and
 * text escaped by json_escape().  Returns an owned frame, or NULL when out
 * of memory.
 */
frame_t *frame_new_msg_json(const char *room, size_t room_len, uint64_t seq,
                            uint64_t ts, const char *nick, size_t nick_len,
                            const char *text, size_t text_len);

/*
 * The compressed variant of a message (RFC 7692): a single frame of
 * opcode op with RSV1 set whose payload is payload[0..len) compressed
 * alone by z, the worker's compressor (the server never takes over its
 * context), so the same bytes suit every client whose agreed window
 * pmd_shareable() accepts.  Returns an owned frame, or NULL when out of
 * memory.
 */
frame_t *frame_new_deflated(pmd_compressor_t *z, ws_opcode_t op,
                            const void *payload, size_t len);

/* The payload of f (a frame built by this module) and its length in
 * *len; borrowed from f. */
const uint8_t *frame_payload(const frame_t *f, size_t *len);

/* Takes one more reference; returns f. */
frame_t *frame_ref(frame_t *f);

/* Drops one reference, freeing f at the last; NULL is a no-op. */
void frame_unref(frame_t *f);

/*
 * Bytes json_escape() writes for s[0..len) (without quotes): at most
 * 6 * len.
 */
size_t json_escape_len(const char *s, size_t len);

/*
 * Writes s[0..len) as the inside of a JSON string to out (which has
 * json_escape_len(s, len) bytes): '"' and '\\' escaped, control characters
 * as \n \r \t \b \f or \u00XX, and every byte of an invalid UTF-8 sequence
 * as \ufffd (so the output is always valid JSON).  Returns the bytes
 * written.
 */
size_t json_escape(char *out, const char *s, size_t len);

/*
 * Appends f's bytes to out: copied when small, referenced (holding a
 * reference until the bytes are written or dropped) when larger than
 * FRAME_REF_THRESHOLD.  Returns 0, or -1 when out of memory.
 */
int frame_queue(struct evbuffer *out, frame_t *f);

#endif
