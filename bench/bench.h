/*
 * bench.h - shared types of parley-bench (the load generator).
 *
 * Threads each own an epoll set and a slice of the connections (connection
 * i belongs to thread i % threads); they meet at phase barriers that keep
 * serving their sockets while waiting.  Nothing on the hot path is shared
 * but the per-publisher sent counters, written by one thread each and read
 * by the others only after a barrier.
 */
#ifndef PARLEY_BENCH_H
#define PARLEY_BENCH_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "ws_client.h"

typedef enum { MODE_FANOUT, MODE_HANDSHAKE, MODE_IDLE } bench_mode_t;

typedef struct {
    bench_mode_t mode;
    char host[256]; /* host:port for the Host header */
    char path[256]; /* URL path prefix; plain rooms are appended */
    struct sockaddr_in dst;
    unsigned conns, rooms, publishers, threads, inflight, sources;
    double rate;   /* fanout: messages per second, all publishers */
    unsigned size; /* fanout: text bytes per message */
    double duration, warmup, drain, connect_timeout;
    bool json, deflate;
    const char *label;
} bench_opts_t;

/* Receive state of one (receiver, publisher) pair. */
typedef struct {
    uint64_t window; /* bit d: seq hi-d was seen */
    uint32_t hi;     /* highest seq seen, 0: none */
    uint32_t distinct;
} pair_t;

struct bench_thread;

typedef struct {
    wsc_t ws;
    struct bench_thread *t;
    uint32_t idx, room;
    int32_t pub;       /* publisher id, or -1 */
    bool ready;        /* open (plain) or joined (json) */
    bool alive;        /* fd registered */
    bool watch_out;    /* EPOLLOUT registered */
    bool counted;      /* handshake mode: its 101 was counted */
    bool at_start;     /* ready when publishing began */
    uint64_t sent;     /* publisher: messages sent */
    uint64_t start_ns; /* handshake mode: connect time */
    pair_t *pairs;     /* fanout: ppr entries */
} bench_conn_t;

typedef struct bench_thread {
    unsigned id;
    pthread_t tid;
    int epfd;
    bench_conn_t **conns; /* this thread's connections (or slots) */
    unsigned n;
    bench_conn_t **pubs; /* this thread's publishers */
    unsigned npubs;
    unsigned opened, ready, failed, pending;
    uint64_t now; /* CLOCK_MONOTONIC ns, refreshed per read */
    /* fanout results */
    uint64_t rx, distinct, dup, reordered, foreign, misrouted, other;
    uint64_t window_rx, closed, errors, max_lag_ns, max_queue;
    uint64_t close_codes[16]; /* server close codes 1000..1015 (0: none) */
    hist_t lat;               /* microseconds, from the embedded timestamp */
    /* handshake results */
    uint64_t hs_ok, hs_window, cycles, hs_err, hs_timeout;
    hist_t hs_lat; /* microseconds, connect() to verified 101 */
    uint8_t *scratch;
    char *msg; /* message being built */
} bench_thread_t;

/* The run: options, shared counters and phase barriers. */
typedef struct {
    bench_opts_t o;
    wsc_opts_t wo;
    uint32_t run_id;
    unsigned ppr; /* publishers per room (slots per receiver) */
    bench_conn_t *conns;
    bench_thread_t *threads;
    _Atomic uint64_t *pub_sent;
    _Atomic unsigned arrived[4];
    _Atomic uint64_t t0; /* publishing start, set by the last arrival */
    char *padding;       /* text-like filler, o.size bytes */
} bench_t;

extern bench_t g;

/* ns of CLOCK_MONOTONIC. */
uint64_t bench_now(void);

#endif
