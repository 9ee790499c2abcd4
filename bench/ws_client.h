/*
 * ws_client.h - a non-blocking WebSocket client connection for parley-bench.
 *
 * One wsc_t is one TCP connection that goes CONNECTING -> HANDSHAKE -> OPEN
 * -> (CLOSING) -> CLOSED.  It knows nothing of the event loop: the caller
 * owns the epoll set, calls wsc_on_writable() / wsc_on_readable() when the
 * socket is ready, and asks wsc_wants_write() which events to watch.  The
 * handshake answer is checked (status 101, Sec-WebSocket-Accept computed
 * with the project's ws_accept_key, the subprotocol when one was asked for,
 * permessage-deflate when offered); server frames are parsed with the
 * project's ws_parser_t (reject_mask); client frames are masked.  Pings are
 * answered with pongs by the module itself.
 */
#ifndef PARLEY_BENCH_WS_CLIENT_H
#define PARLEY_BENCH_WS_CLIENT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws_frame.h"

typedef enum {
    WSC_CONNECTING, /* connect(2) in progress */
    WSC_HANDSHAKE,  /* request sent (or queued), waiting for the 101 */
    WSC_OPEN,       /* frames flow */
    WSC_CLOSING,    /* close frame sent: waiting for the server's TCP close */
    WSC_CLOSED      /* fd closed; wsc_free() still needed */
} wsc_state_t;

/* What every connection of a run shares (borrowed for the run). */
typedef struct {
    const char *host;     /* Host header, e.g. "127.0.0.1:8080" */
    const char *protocol; /* Sec-WebSocket-Protocol to offer, or NULL */
    bool deflate;         /* offer permessage-deflate (no context takeover) */
    size_t max_message;   /* parser bound on one server message */
} wsc_opts_t;

typedef struct wsc wsc_t;

/*
 * Called for every complete text or binary message from the server (after
 * inflating).  data is borrowed until the callback returns.
 */
typedef void (*wsc_msg_fn)(wsc_t *c, const uint8_t *data, size_t len,
                           void *arg);

struct wsc {
    int fd;
    wsc_state_t state;
    const wsc_opts_t *opts;
    void *user;          /* the caller's per-connection data */
    uint32_t rng;        /* xorshift state for masks */
    bool deflate;        /* permessage-deflate agreed */
    uint16_t close_code; /* server's close code, or 0 */
    char accept[32];     /* expected Sec-WebSocket-Accept */
    char *head;          /* handshake answer being read (owned) */
    size_t head_len;
    uint8_t *out; /* bytes not yet written (owned) */
    size_t out_off, out_len, out_cap;
    ws_parser_t parser;
    void *inflater; /* z_stream, owned, when deflate */
};

/*
 * Starts a connection to dst (from src when src != NULL: a loopback source
 * address, to have more than one ephemeral port range) and queues the
 * upgrade request for path.  Returns 0 with c->fd set (non-blocking,
 * connecting), or -1 with errno set (c is then CLOSED and needs no free).
 */
int wsc_start(wsc_t *c, const struct sockaddr_in *dst,
              const struct sockaddr_in *src, const char *path,
              const wsc_opts_t *opts);

/* True when output is pending (or the connect is): watch EPOLLOUT. */
bool wsc_wants_write(const wsc_t *c);

/*
 * Handles EPOLLOUT: completes the connect, writes pending output.
 * Returns 0, or -1 when the connection failed (caller calls wsc_free()).
 */
int wsc_on_writable(wsc_t *c);

/*
 * Handles EPOLLIN: reads what is there (a bounded number of reads into the
 * caller's scratch buffer), checks the handshake answer, parses frames and
 * calls fn for each message.  Returns 0 while the connection lives, 1 when
 * the server closed it (EOF, or its close frame after ours), -1 on an error
 * (bad handshake, protocol violation, reset).  The caller then calls
 * wsc_free().
 */
int wsc_on_readable(wsc_t *c, uint8_t *scratch, size_t cap, wsc_msg_fn fn,
                    void *arg);

/*
 * Sends one message (masked, compressed never: the benchmark measures the
 * server's outgoing deflate).  Writes at once if nothing is queued,
 * queues the rest.  Returns 0, or -1 when the connection is not open or
 * out of memory.
 */
int wsc_send(wsc_t *c, ws_opcode_t op, const void *data, size_t len);

/* Sends a close frame (code 1000) and enters CLOSING.  Returns as
   wsc_send(). */
int wsc_close(wsc_t *c);

/* Closes the fd and releases everything; c may be started again. */
void wsc_free(wsc_t *c);

#endif
