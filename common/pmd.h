/*
 * pmd.h - RFC 7692 permessage-deflate for the server side, no I/O.
 *
 * Three parts:
 *
 * - Negotiation: pmd_negotiate() picks the first acceptable
 *   "permessage-deflate" offer of a parsed handshake and writes the
 *   Sec-WebSocket-Extensions response value.  The server ALWAYS answers
 *   server_no_context_takeover: every outgoing message is compressed alone,
 *   with a fresh context, so a broadcast is compressed once and the same
 *   bytes go to every client of a room.
 *
 * - Compression: a pmd_compressor_t per worker (one z_stream, reset between
 *   messages) turns a whole message into the payload of a frame with RSV1
 *   set (RFC 7692 section 7.2.1: sync flush, trailing 00 00 ff ff removed).
 *
 * - Decompression: a pmd_inflater_t inflates a client's compressed message
 *   with a HARD bound on the output: it inflates in bounded chunks and stops
 *   as soon as the bound is crossed, so a 1 KiB "zip bomb" never costs more
 *   than the bound in memory or time.  Its zlib state (about 7 KiB plus the
 *   window, 32 KiB at 15 bits) is allocated on the first compressed message
 *   only; without context takeover it is freed after every message, or a
 *   single worker-wide inflater serves every such connection
 *   (pmd_inflate_oneshot).
 *
 * Errors map to close codes with pmd_close_code(): output over the bound is
 * 1009 (message too big), undecodable data is 1007 (invalid data: RFC 7692
 * says "fail the connection" without naming a code; 1007 is what browsers
 * and most servers use), out of memory is 1011.  See docs/deflate.md.
 */
#ifndef PARLEY_PMD_H
#define PARLEY_PMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws_frame.h"
#include "ws_handshake.h"

#define PMD_EXTENSION "permessage-deflate"
#define PMD_MIN_WINDOW_BITS 9 /* zlib's deflate cannot do 8 (see below) */
#define PMD_MAX_WINDOW_BITS 15
#define PMD_RESPONSE_MAX 160       /* longest response value, with its NUL */
#define PMD_HEADROOM WS_MAX_HEADER /* room left for a frame header */

/* Error returns of the compress and inflate functions. */
enum {
    PMD_ERR_TOO_BIG = -1, /* inflated output over max_out: close 1009 */
    PMD_ERR_DATA = -2,    /* invalid compressed data: close 1007 */
    PMD_ERR_NOMEM = -3    /* out of memory (or zlib misuse): close 1011 */
};

/* Server policy.  A zeroed config means every default. */
typedef struct {
    /* Bound asked of clients that offer client_max_window_bits, 9..15
     * (0: 15).  A smaller window saves the memory of their inflaters. */
    int client_max_window_bits;
    /* Window of the worker's compressor, 9..15 (0: 15).  An offer asking
     * for a larger server_max_window_bits is answered with this one. */
    int server_max_window_bits;
    /* Answer client_no_context_takeover even when not offered, so no
     * connection keeps an inflater between messages (RFC 7692 7.1.1.2
     * allows it); default false: only honor the client's own offer. */
    bool client_no_context_takeover;
} pmd_config_t;

/* What was agreed for one connection. */
typedef struct {
    /* Always true once negotiated. */
    bool server_no_context_takeover;
    /* The client resets its context per message: no per-connection state. */
    bool client_no_context_takeover;
    /* The server compresses with at most this window for this client. */
    int server_window_bits; /* 9..15 */
    /* The client compresses with at most this window: inflate with it. */
    int client_window_bits; /* 8..15 */
} pmd_params_t;

/*
 * Walks hs's offers in order and accepts the first "permessage-deflate"
 * offer that is acceptable (RFC 7692 sections 5 and 7.1): only the four
 * parameters of the RFC, none twice, server_no_context_takeover and
 * client_no_context_takeover without a value, server_max_window_bits with
 * a value, client_max_window_bits with or without one, values "8".."15"
 * without leading zeros.  server_max_window_bits=8 is declined as well:
 * zlib's deflate silently turns an 8-bit window into 9 bits, which would
 * break that promise.  Declined offers are skipped; none acceptable is no
 * extension, not an error.  cfg may be NULL (defaults).
 *
 * On acceptance fills out and writes the response value, NUL-terminated,
 * to response[0..cap) (PMD_RESPONSE_MAX always suffices), e.g.
 * "permessage-deflate; server_no_context_takeover;
 * client_max_window_bits=15".  Returns 1 when negotiated, 0 when not, -1
 * when response is too small (out is then zeroed, as it is for 0).
 */
int pmd_negotiate(const ws_handshake_t *hs, const pmd_config_t *cfg,
                  pmd_params_t *out, char *response, size_t cap);

/*
 * Whether the bytes compressed once with a window of window_bits for a
 * message of msg_len bytes may be sent to a client with params p: true
 * when the window agreed with that client is as large, or when the message
 * is no longer than the agreed window (no back-reference of a message
 * compressed alone can then reach further back than the client's
 * window).  When false, send that client the message uncompressed (RSV1
 * clear is always allowed) or compress it for its window.
 */
bool pmd_shareable(const pmd_params_t *p, int window_bits, size_t msg_len);

/* Maps a PMD_ERR_* code to the WebSocket close code to send. */
int pmd_close_code(int err);

/* --- compression ---------------------------------------------------------- */

typedef struct {
    void *zs; /* z_stream, owned; NULL before init and after free */
    int window_bits;
    uint8_t *buf; /* scratch output, grown as needed, reused */
    size_t cap;
} pmd_compressor_t;

/*
 * Prepares c (one per worker) to compress with window_bits (9..15; 0 means
 * 15) at zlib level (-1 for zlib's default, 1 fastest .. 9).  Returns 0,
 * PMD_ERR_NOMEM, or PMD_ERR_DATA for a bad argument.
 */
int pmd_compressor_init(pmd_compressor_t *c, int window_bits, int level);

/* Frees c's memory; safe on a zeroed or already freed compressor. */
void pmd_compressor_free(pmd_compressor_t *c);

/*
 * Compresses the whole message in[0..len) with a fresh context (the
 * stream is reset first) into the payload of a frame with RSV1 set.
 * *out is set to PMD_HEADROOM bytes of free room followed by *out_len
 * bytes of payload: a frame header of h bytes (h <= PMD_HEADROOM) can be
 * written at *out + PMD_HEADROOM - h, and the complete frame copied from
 * there in one piece.  *out is borrowed from c until the next call on c
 * (no allocation once the scratch is big enough).  Returns 0 or
 * PMD_ERR_NOMEM.
 */
int pmd_compress(pmd_compressor_t *c, const uint8_t *in, size_t len,
                 uint8_t **out, size_t *out_len);

/*
 * One-shot pmd_compress() with a stream of its own (tests, tools, rare
 * paths): *out is a malloc'ed block owned by the caller (free(*out)) with
 * the same layout, PMD_HEADROOM bytes then *out_len bytes of payload.
 * Returns 0, PMD_ERR_NOMEM, or PMD_ERR_DATA for a bad window_bits.
 */
int pmd_deflate_message(const uint8_t *in, size_t len, int window_bits,
                        uint8_t **out, size_t *out_len);

/* --- decompression -------------------------------------------------------- */

/* A growable byte buffer owned by the caller; zero it before first use. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} pmd_buf_t;

/* Frees b->data and zeroes b. */
void pmd_buf_free(pmd_buf_t *b);

typedef struct {
    void *zs;        /* z_stream, allocated on first use; NULL when idle */
    int window_bits; /* 9..15 */
    bool takeover;   /* the client keeps its context across messages */
} pmd_inflater_t;

/*
 * Prepares inf for a connection (allocates nothing): window_bits is
 * pmd_params_t.client_window_bits (8 is raised to 9, since zlib-based
 * clients silently compress with 9 when asked for 8; 0 means 15), takeover
 * is !client_no_context_takeover.
 */
void pmd_inflater_init(pmd_inflater_t *inf, int window_bits, bool takeover);

/* Frees inf's zlib state; inf may be used again (it re-allocates). */
void pmd_inflater_free(pmd_inflater_t *inf);

/*
 * Inflates the compressed message in[0..len) (the payload of a message
 * with RSV1 set, all fragments joined) into out: out->len is set to the
 * message's length, out->data grown as needed but never beyond max_out + 1
 * bytes of capacity from this call.  Without takeover the zlib state is
 * freed before returning, so an idle connection holds none.  Returns 0, or
 * PMD_ERR_TOO_BIG as soon as the output would exceed max_out,
 * PMD_ERR_DATA for invalid data, PMD_ERR_NOMEM; after an error the
 * connection must be failed (the context is lost).  Text must still be
 * validated as UTF-8 by the caller.
 */
int pmd_inflate(pmd_inflater_t *inf, const uint8_t *in, size_t len,
                size_t max_out, pmd_buf_t *out);

/*
 * As pmd_inflate() for a connection without context takeover, using a
 * worker-wide inflater shared by all such connections: shared is reset
 * before the message and keeps its memory afterwards.  Initialize it with
 * pmd_inflater_init(shared, 15, false) so it accepts every client window.
 */
int pmd_inflate_oneshot(pmd_inflater_t *shared, const uint8_t *in, size_t len,
                        size_t max_out, pmd_buf_t *out);

#endif
