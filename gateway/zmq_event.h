/*
 * zmq_event.h - a ZeroMQ socket in a libevent loop.  The only code that
 * knows how: ZMQ_FD is edge-triggered and only says "look at ZMQ_EVENTS",
 * so the socket is drained (with a budget per callback, re-activating
 * itself while more is pending) and ZMQ_EVENTS is re-checked after every
 * send and after every message callback, or messages stall.  The fd is
 * never read or closed here.
 */
#ifndef PARLEY_ZMQ_EVENT_H
#define PARLEY_ZMQ_EVENT_H

#include <stddef.h>

#include "wire.h"

struct event_base;

#define ZEV_BUDGET 256       /* messages handled per callback */
#define ZEV_MAX_FRAMES 65536 /* frames kept of one multipart message */

typedef struct zev zev_t;

/*
 * Called for each multipart message received: frames[0..n) borrow the
 * message's memory until the callback returns.  Messages with more than
 * ZEV_MAX_FRAMES frames are dropped with a warning.
 */
typedef void (*zev_message_cb)(const wire_buf_t *frames, size_t n, void *arg);

/*
 * Watches zsock (borrowed: the caller closes it after zev_free()) on base
 * and calls on_message(frames, n, arg) for every message received.
 * Returns an owned watcher, or NULL on failure (errno set).
 */
zev_t *zev_new(struct event_base *base, void *zsock, zev_message_cb on_message,
               void *arg);

/*
 * Sends frames[0..n) (n >= 1) as one multipart message with ZMQ_DONTWAIT.
 * Returns 0, or -1 with errno (EAGAIN: the peer is absent or its queue is
 * full; EHOSTUNREACH...) when nothing was sent.  Re-checks ZMQ_EVENTS
 * afterwards.
 */
int zev_send(zev_t *z, const wire_buf_t *frames, size_t n);

/* Stops watching and frees z; NULL is a no-op.  The socket stays open. */
void zev_free(zev_t *z);

#endif
