/*
 * gateway.h - what the gateway master sets up before forking and every
 * worker shares: the configuration, the listening sockets, and the
 * per-worker statistics slots in shared memory (so /metrics on any worker
 * can sum all of them).
 */
#ifndef PARLEY_GATEWAY_H
#define PARLEY_GATEWAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct ssl_ctx_st;

#define GW_MAX_LISTENERS 8
#define GW_MAX_WORKERS 256

/* Handshake failures by reason, for /metrics. */
typedef enum {
    HS_FAIL_BAD_REQUEST = 0, /* 400 */
    HS_FAIL_VERSION,         /* 426 */
    HS_FAIL_METHOD,          /* 405 */
    HS_FAIL_ROOM,            /* 404: invalid room in the path */
    HS_FAIL_UNAVAILABLE,     /* 503: broker link down */
    HS_FAIL_LIMIT,           /* 503: connection limit (worker or address) */
    HS_FAIL_ORIGIN,          /* 403: Origin not allowed */
    HS_FAIL_COUNT
} hs_fail_t;

/*
 * Counters of one worker.  Each worker writes only its own slot (relaxed
 * atomics, no locks); readers sum all slots.  Gauges (the *_open fields and
 * broker_link_up) are reset when a worker starts in the slot; counters
 * continue from the previous occupant so totals never go backwards.
 */
typedef struct {
    _Atomic int64_t pid;
    _Atomic int64_t conns_open;     /* gauge: TCP connections */
    _Atomic int64_t ws_plain_open;  /* gauge */
    _Atomic int64_t ws_json_open;   /* gauge */
    _Atomic int64_t broker_link_up; /* gauge: 0 or 1 */
    _Atomic int64_t conns_total;
    _Atomic int64_t http_requests;
    _Atomic int64_t ws_plain_total;
    _Atomic int64_t ws_json_total;
    _Atomic int64_t messages_in;  /* WebSocket messages from clients */
    _Atomic int64_t messages_out; /* WebSocket messages to clients */
    _Atomic int64_t bytes_in;
    _Atomic int64_t bytes_out;
    _Atomic int64_t broadcasts; /* room messages received from broker */
    _Atomic int64_t deliveries; /* broadcast frames queued to clients */
    _Atomic int64_t slow_consumer_closes;
    _Atomic int64_t writes;          /* direct writes (one per connection
                                      * per loop iteration with output) */
    _Atomic int64_t short_writes;    /* of which the socket took only part */
    _Atomic int64_t protocol_closes; /* closed for a protocol violation */
    _Atomic int64_t handshake_failures[HS_FAIL_COUNT];
    _Atomic int64_t broker_reconnects;
    _Atomic int64_t gap_repairs;            /* history fetches to fill a gap */
    _Atomic int64_t history_replays;        /* joins answered with a replay */
    _Atomic int64_t errors_sent;            /* JSON error replies */
    _Atomic int64_t tls_handshakes;         /* TLS handshakes completed */
    _Atomic int64_t tls_handshake_failures; /* failed or timed out */
    /* the broker's figures from its last heartbeat (gauges) */
    _Atomic int64_t broker_rooms;
    _Atomic int64_t broker_members;
    _Atomic int64_t broker_messages; /* sequenced since the broker started */
    _Atomic int64_t broker_journal_bytes;
} gw_stats_t;

#define STAT_ADD(st, field, n)                                                 \
    atomic_fetch_add_explicit(&(st)->field, (n), memory_order_relaxed)
#define STAT_SET(st, field, v)                                                 \
    atomic_store_explicit(&(st)->field, (v), memory_order_relaxed)

typedef struct {
    config_t cfg;
    const char *config_path; /* NULL when none was given */
    int argc;                /* the command line, for reload */
    char **argv;
    int listen_fds[GW_MAX_LISTENERS];
    char listen_names[GW_MAX_LISTENERS][64];
    bool listen_tls[GW_MAX_LISTENERS]; /* from tls_listen */
    size_t num_listeners;              /* listen and tls_listen together */
    struct ssl_ctx_st *tls_ctx;        /* NULL without tls_listen; the master
                                        * replaces it on reload (tls.h) */
    gw_stats_t *stats;                 /* shared mapping of nslots slots */
    size_t nslots;
    int nworkers; /* 0: single process, no master */
} gateway_t;

#endif
