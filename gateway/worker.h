/*
 * worker.h - one gateway worker: a libevent loop that accepts on the
 * inherited listening sockets and owns every connection it accepted, its
 * rooms and its broker link.  Nothing here is shared with other workers
 * except the statistics slot.
 */
#ifndef PARLEY_WORKER_H
#define PARLEY_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "gateway.h"

struct event_base;
struct event;
struct conn;
struct broker_link;
struct rooms;
struct guard_iptab;

typedef struct worker {
    gateway_t *gw;
    const config_t *cfg; /* == &gw->cfg */
    int slot;            /* index into gw->stats */
    gw_stats_t *stats;   /* == &gw->stats[slot] */
    struct event_base *base;
    struct event *accept_ev[GW_MAX_LISTENERS];
    /* per listener: accepted sockets inherit its TCP_NODELAY (1), do not
     * (-1: set it on each), or not known yet (0) */
    signed char nodelay_inherited[GW_MAX_LISTENERS];
    struct event *accept_retry; /* re-enables accepting after EMFILE */
    struct event *sig_term;     /* SIGTERM/SIGINT/SIGQUIT: graceful stop */
    struct event *sig_int;
    struct event *sig_quit;
    struct event *stop_timer; /* bounds the graceful drain */
    struct conn *conns;       /* every open connection (list) */
    size_t nconns;
    struct conn *reap; /* closed connections, freed by reap_ev */
    struct event *reap_ev;
    TAILQ_HEAD(, conn)
    flushq;                 /* FIFO of connections with output to
                             * write (conn.c) */
    struct event *flush_ev; /* writes them: conn_flush() */
    /* connection timeouts (conn.c): a min-heap of connections by
     * deadline_ms, and one timer for the earliest */
    struct conn **timers;
    size_t ntimers, timers_cap;
    struct event *timers_ev;
    uint64_t timers_armed_ms; /* deadline timers_ev fires at; 0: none */
    uint64_t next_conn_id;
    bool accepting;
    bool stopping;
    /* HTTP side (added by worker.c/http.c) */
    int www_fd;                 /* cfg->www opened at start; -1: none */
    uint16_t stop_code;         /* close code of worker_stop() */
    bool accept_paused;         /* accepting off until connections drop */
    uint64_t accept_gate_until; /* start: accept once the link is up, or
                                 * at this time (mono ms); 0: open */
    struct guard_iptab *iptab;  /* connections per client address;
                                 * NULL when max_connections_per_ip = 0 */
    /* chat side: owned by chat.c */
    void *zmq_ctx;
    struct broker_link *link;
    struct rooms *rooms;
} worker_t;

/*
 * Runs a worker until it is told to stop: creates its event_base (after the
 * fork), starts the chat side, accepts on gw's listening sockets.  slot is
 * the statistics slot.  Returns the process exit status (0 after a
 * graceful stop; 2 for a fatal setup error the master must not respawn).
 */
int worker_run(gateway_t *gw, int slot);

/*
 * Stops accepting, closes every WebSocket with close_code (1012 for a
 * restart, 1001 for a shutdown), lets the chat side say goodbye to the
 * broker, and ends the loop once all connections are gone or the drain
 * timeout passed.
 */
void worker_stop(worker_t *w, uint16_t close_code);

#endif
