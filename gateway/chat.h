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

/* ---- for ws_session.c (gwchat extension) --------------------------------- */

struct conn;

/* A parley.v1 text message from c: parses and answers the request
 * (PROTOCOL.md section 3). */
void chat_on_json(struct conn *c, const char *text, size_t len);

/* A parley.v1 text message from c over its rate limit: answered with error
 * rate_limited (carrying the request's ref when it has a valid one) and
 * otherwise dropped. */
void chat_json_rate_limited(struct conn *c, const char *text, size_t len);

/*
 * A plain connection c enters room[0..len) at its upgrade.  Returns 1 when
 * c is a live member now (send the 101 now), 0 when the room is being
 * synced (ws_session_plain_ready() is called later), -1 when the broker is
 * unreachable (answer 503).
 */
int chat_plain_join(struct conn *c, const char *room, size_t len);

/* A chat line from plain connection c: SAY without ack, nick "anonymous".
 * Returns 0, or -1 when the broker is unreachable. */
int chat_plain_say(struct conn *c, const char *text, size_t len);

/* c leaves every room it is in (LEAVE to the broker for JSON members) and
 * its requests in flight are forgotten.  Idempotent. */
void chat_conn_gone(struct conn *c);

#endif
