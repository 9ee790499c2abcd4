/*
 * chat.h - the chat side of a worker: the broker link, the rooms of this
 * worker, and the parley.v1 request handling.  worker.c calls chat_start()
 * after creating its event_base and chat_stop() before exiting.
 */
#ifndef PARLEY_CHAT_H
#define PARLEY_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "worker.h"

/* Creates the worker's ZeroMQ context, broker link and rooms.  Returns 0,
 * or -1 with a message in err. */
int chat_start(worker_t *w, char *err, size_t errlen);

/* Says goodbye to the broker (its members leave at once) and releases the
 * link and the ZeroMQ context.  Called after every connection is closed. */
void chat_stop(worker_t *w);

/* True while the broker link is up (heartbeats flowing both ways). */
bool chat_link_up(const worker_t *w);

/* A short reason when the link is down ("no heartbeat from broker for
 * 3000 ms", "connecting"), for /healthz. */
const char *chat_link_reason(const worker_t *w);

#endif
