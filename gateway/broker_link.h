/*
 * broker_link.h - one worker's link to the broker (docs/wire.md, "The
 * gateway's side"): a DEALER for requests and replies and a SUB for the
 * published stream, both in the worker's libevent loop; the node id; HELLO
 * and PING every heartbeat; the link state (up while a WELCOME/PONG and a
 * HEARTBEAT were both received within link_timeout); the broker's boot id
 * and the gseq of the published stream, so that a broker restart or a lost
 * published message is noticed.
 *
 * Every received message is decoded with wire_decode() (malformed ones are
 * logged and dropped) and handed to the callbacks; chat.c gives meaning to
 * them.
 */
#ifndef PARLEY_BROKER_LINK_H
#define PARLEY_BROKER_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "gateway.h"
#include "wire.h"

struct event_base;

typedef struct broker_link broker_link_t;

typedef struct {
    /* A reply on the DEALER: JOINED, ACK, WHO_REPLY, HISTORY or ERROR. */
    void (*on_reply)(void *arg, const wire_msg_t *m);
    /* A published MSG or PRESENCE (after the gseq check). */
    void (*on_pub)(void *arg, const wire_msg_t *m);
    /* The broker restarted (new boot id) or forgot this node (WELCOME
     * after the first): register every member again, resync every room. */
    void (*on_resync)(void *arg);
    /* A published message was lost (gseq jump, or a heartbeat ahead of
     * the stream): fetch what every room missed. */
    void (*on_gap)(void *arg);
    /* Once per heartbeat period, after the link state was updated. */
    void (*on_tick)(void *arg);
    void *arg;
} broker_link_cbs_t;

/*
 * Creates the sockets in zctx (borrowed), connects them to cfg's endpoints
 * and starts the heartbeat timer on base.  cfg and stats are borrowed for
 * the link's lifetime.  Returns an owned link, or NULL with a message in
 * err.
 */
broker_link_t *broker_link_new(struct event_base *base, void *zctx,
                               const config_t *cfg, gw_stats_t *stats,
                               const broker_link_cbs_t *cbs, char *err,
                               size_t errlen);

/* Sends BYE when say_bye (best effort), closes the sockets (with a small
 * linger) and frees l; NULL is a no-op. */
void broker_link_free(broker_link_t *l, bool say_bye);

/*
 * Encodes and sends a request m (without items) on the DEALER, never
 * blocking.  Returns 0, or -1 when the broker is unreachable (its queue is
 * full or it is not connected): the caller answers `unavailable`.
 */
int broker_link_send(broker_link_t *l, const wire_msg_t *m);

/* True while the link is up. */
bool broker_link_up(const broker_link_t *l);

/* Why the link is down (static or owned by l), "" when up. */
const char *broker_link_reason(const broker_link_t *l);

/* This worker's node id (NUL-terminated, owned by l). */
const char *broker_link_node(const broker_link_t *l);

#endif
