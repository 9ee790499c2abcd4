/*
 * broker.h - the broker's ZeroMQ loop: a ROUTER for requests from the
 * gateway workers, a PUB for MSG, PRESENCE and HEARTBEAT (docs/wire.md).
 * The state itself lives in store.h; this module only moves bytes between
 * the sockets and the store.
 */
#ifndef PARLEY_BROKER_H
#define PARLEY_BROKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Rooms the broker holds at most; a request that would create one more is
 * answered ERROR "unavailable". */
#define BROKER_MAX_ROOMS 100000

/* Requests handled per wake-up before timers are checked again. */
#define BROKER_BATCH 512

typedef struct broker broker_t;

/*
 * Creates the ZeroMQ context and binds the ROUTER (c->broker_router) and
 * the PUB (c->broker_pub), removing stale ipc:// socket files first.
 * Reads heartbeat_ms, link_timeout_ms and history_size from c (c is only
 * borrowed for the call).  Returns the broker, or NULL with a message in
 * err[errlen].
 */
broker_t *broker_new(const config_t *c, char *err, size_t errlen);

/*
 * Runs the loop until *stop becomes non-zero (set by a signal handler; the
 * loop wakes at least every 250 ms to look).  Returns 0 on a requested
 * stop, -1 on a fatal ZeroMQ error (logged).
 */
int broker_run(broker_t *b, volatile sig_atomic_t *stop);

/* Closes the sockets (small linger), removes the ipc:// socket files it
 * bound (ZeroMQ leaves them) and frees everything; NULL is a no-op. */
void broker_free(broker_t *b);

#endif
