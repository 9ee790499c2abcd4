/*
 * conn.h - a client connection: one explicit state machine (memcached
 * style), one bufferevent, one deadline (in the worker's timer heap).
 * Every state change goes through conn_set_state().  The HTTP side
 * (http.c) owns the states before the upgrade; the WebSocket session
 * (ws_session.c) owns the states after.
 *
 * Lifetime: a connection is never freed inside a callback that may still
 * use it (for instance a room fan-out loop).  conn_close() marks it dead and
 * queues it on the worker's reap list; the reap event frees it at the end of
 * the current loop iteration.
 */
#ifndef PARLEY_CONN_H
#define PARLEY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

struct bufferevent;
struct evbuffer_cb_entry;
struct event;
struct ws_session;
struct api_req;
struct sockaddr_storage;

typedef enum {
    CONN_HTTP_HEAD = 0, /* reading a request head */
    CONN_HTTP_BODY,     /* reading a request body (HTTP API) */
    CONN_HTTP_SEND,     /* response queued; keep-alive continues after it */
    CONN_WS_PENDING,    /* upgrade valid, waiting for the room (no 101 yet) */
    CONN_WS_OPEN,       /* WebSocket open */
    CONN_WS_CLOSING,    /* close frame sent, waiting for the peer's close */
    CONN_DRAINING, /* final bytes queued: close once written or timed out */
    CONN_CLOSED    /* dead, waiting to be reaped */
} conn_state_t;

/* Every idle connection holds one: keep it small, pointers and 8-byte
 * fields first, then the narrow ones (bench/findings.md F4). */
typedef struct conn {
    worker_t *w;
    uint64_t id; /* unique in the worker; the wire's conn id */
    struct bufferevent *bev;
    struct ws_session *ws;    /* owned; NULL before the upgrade */
    struct conn *next, *prev; /* worker's connection list */
    struct conn *reap_next;
    uint64_t deadline_ms; /* timeout of the current state (mono ms) */
    /* HTTP API (api.c) */
    struct api_req *api; /* the API request being served, or NULL */
    TAILQ_ENTRY(conn)
    flush_link;                          /* the worker's flush queue
                                          * (conn_set_direct) */
    struct evbuffer_cb_entry *first_out; /* plain TCP until the first
                                          * output: enables EV_WRITE then */
    int fd;
    conn_state_t state;
    uint32_t timer_slot; /* 1 + index in w->timers; 0: no timeout */
    /* conn.c / http.c private state (added by the HTTP side) */
    uint32_t head_seen;    /* http_parse_request last_len (<= max_head) */
    uint32_t body_need;    /* CONN_HTTP_BODY: Content-Length
                            * (<= api_max_body, 64 MiB at most) */
    uint32_t linger_bytes; /* input discarded while lingering
                            * (<= CONN_LINGER_MAX_BYTES) */
    /* the client's address (logs: conn_peer()) and per-address accounting
     * (conn.c, worker.c) */
    uint8_t addr[16]; /* as guard_ip_key() makes it (IPv4 mapped);
                       * the per-address table's key */
    uint16_t port;    /* the client's port */
    uint8_t family;   /* AF_INET, AF_INET6, or 0: unknown */
    bool ip_counted;  /* counted in the worker's per-address table */
    bool keep_alive;
    bool peer_eof;    /* the peer half-closed (HTTP states) */
    bool http_idle;   /* keep-alive wait between requests */
    bool lingering;   /* DRAINING: output written, discarding input */
    bool no_linger;   /* DRAINING: the peer sends nothing more */
    bool ws_notified; /* ws_session_on_close() was called */
    bool tls;         /* accepted on a tls_listen socket */
    bool tls_done;    /* the TLS handshake completed */
    /* direct writes (conn_set_direct) */
    bool direct; /* conn.c writes the output itself */
    bool corked; /* on the worker's flush queue */
} conn_t;

/* Creates a connection for the accepted socket fd (non-blocking already)
 * from the client address ss (borrowed) and starts reading a request
 * head; with tls, behind a TLS server handshake (w->gw->tls_ctx), which
 * the header timeout also bounds.  NULL on failure (fd closed). */
conn_t *conn_new(worker_t *w, int fd, const struct sockaddr_storage *ss,
                 bool tls);

/* c's client as "ip:port", "[ip6]:port" or "unknown", for logs.  The
 * string is in a buffer of the process (one loop per process), valid until
 * the next call: use it once per log line. */
const char *conn_peer(const conn_t *c);

/* Moves c to state s (asserting the transition is legal) and logs it at
 * debug level.  Does not touch timers or callbacks. */
void conn_set_state(conn_t *c, conn_state_t s);

/* Arms the connection's single timer to fire after ms milliseconds
 * (replacing any earlier deadline); ms < 0 disarms it.  Never fails: the
 * worker's timer heap has room for every connection (conn_new). */
void conn_set_timeout(conn_t *c, int64_t ms);

/* Closes at once: output not yet written is dropped.  Safe to call more
 * than once and from any callback; the memory is freed later. */
void conn_close(conn_t *c);

/* Stops reading, and closes once the queued output is written, or after
 * timeout_ms at most (state CONN_DRAINING). */
void conn_close_after_write(conn_t *c, int64_t timeout_ms);

/*
 * Direct writes, for a plain (non-TLS) connection once it is a WebSocket:
 * output is no longer written by the bufferevent (which would arm and
 * disarm write readiness with two epoll_ctl calls per message) but by
 * conn_flush(), with one writev per connection for everything queued
 * since its last write (corking).  Only the tail a full socket did not
 * take goes back to the bufferevent, which writes it when the socket is
 * writable; then direct writes resume.  No-op for TLS.
 */
void conn_set_direct(conn_t *c);

/* Notes that output was queued on c: with direct writes, c joins the tail
 * of the worker's flush queue, unless it is on it already; otherwise the
 * bufferevent writes it as usual. */
void conn_output_added(conn_t *c);

/* The worker's flush event: writes the connections at the head of w's
 * flush queue, CONN_FLUSH_BATCH at most, and when some remain, runs again
 * after the next poll, so that client input and broker messages are
 * handled between batches (a message that arrives meanwhile still reaches
 * the members not yet written in this round).  A connection whose socket
 * failed is closed. */
#ifndef CONN_FLUSH_BATCH
#define CONN_FLUSH_BATCH 128
#endif
void conn_flush(worker_t *w);

/* Like conn_close_after_write(), for a peer that has finished sending (its
 * WebSocket close frame was the last of its input): once the output is
 * written the socket is closed at once, without the lingering close. */
void conn_close_when_written(conn_t *c, int64_t timeout_ms);

/* Bytes queued for sending and not yet written to the socket. */
size_t conn_output_pending(const conn_t *c);

/* Creates w's connection timer (one libevent timer for the earliest
 * deadline of all its connections; a per-connection event would cost
 * about 150 bytes per idle connection).  0, or -1 when out of memory.
 * Called once by the worker after creating its event_base. */
int conn_timers_init(worker_t *w);

/* Frees what conn_timers_init() created; the connections must be gone. */
void conn_timers_free(worker_t *w);

/* Frees every reaped connection of w (called by the worker's reap event;
 * also on worker exit). */
void conn_reap_all(worker_t *w);

#endif
