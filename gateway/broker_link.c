/*
 * broker_link.c - a worker's DEALER/SUB pair to the broker, its heartbeat
 * and link state (broker_link.h, docs/wire.md "The gateway's side").
 */
#include "broker_link.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <zmq.h>

#include "log.h"
#include "util.h"
#include "zmq_event.h"

#define LINK_DEALER_HWM 10000
#define LINK_SUB_HWM 100000
#define LINK_LINGER_MS 100
#define LINK_RECONNECT_MS 100
#define LINK_RECONNECT_MAX_MS 1000
#define LINK_HELLO_RETRY_MS 100 /* until the first WELCOME */
#define LINK_MAX_BOOT 64

struct broker_link {
    struct event_base *base;
    const config_t *cfg;
    gw_stats_t *stats;
    broker_link_cbs_t cbs;
    void *dealer, *sub;
    zev_t *zdealer, *zsub;
    struct event *tick;
    char node[WIRE_MAX_NODE + 1];
    char boot[LINK_MAX_BOOT + 1];
    bool have_boot;
    bool welcomed; /* a WELCOME was received (we are registered) */
    bool up, was_up;
    uint64_t last_pong_ms; /* WELCOME or PONG; 0: never */
    uint64_t last_hb_ms;   /* HEARTBEAT; 0: never */
    uint64_t last_ping_ms;
    bool gseq_known;
    uint64_t gseq; /* last gseq seen on the published stream */
    char reason[96];
};

/* ---- setup ------------------------------------------------------------- */

static int set_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

static void make_node_id(broker_link_t *l)
{
    char host[64] = "gateway", rnd[5] = "0000";
    const char *name = l->cfg->node_name;
    if (name == NULL || name[0] == '\0') {
        if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
            snprintf(host, sizeof host, "gateway");
        host[sizeof host - 1] = '\0';
        name = host;
    }
    if (util_random_hex(rnd, 2) != 0)
        snprintf(rnd, sizeof rnd, "%04x", (unsigned)(getpid() & 0xffff));
    snprintf(l->node, sizeof l->node, "%.48s-%d-%s", name, (int)getpid(), rnd);
}

static int setup_dealer(broker_link_t *l, void *zctx, char *err, size_t n)
{
    l->dealer = zmq_socket(zctx, ZMQ_DEALER);
    if (l->dealer == NULL ||
        zmq_setsockopt(l->dealer, ZMQ_ROUTING_ID, l->node, strlen(l->node)) !=
            0 ||
        set_int(l->dealer, ZMQ_IMMEDIATE, 1) != 0 ||
        set_int(l->dealer, ZMQ_LINGER, LINK_LINGER_MS) != 0 ||
        set_int(l->dealer, ZMQ_SNDHWM, LINK_DEALER_HWM) != 0 ||
        set_int(l->dealer, ZMQ_RCVHWM, LINK_DEALER_HWM) != 0 ||
        set_int(l->dealer, ZMQ_RECONNECT_IVL, LINK_RECONNECT_MS) != 0 ||
        set_int(l->dealer, ZMQ_RECONNECT_IVL_MAX, LINK_RECONNECT_MAX_MS) != 0 ||
        zmq_connect(l->dealer, l->cfg->broker_router) != 0) {
        snprintf(err, n, "broker DEALER to %s: %s", l->cfg->broker_router,
                 zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static int setup_sub(broker_link_t *l, char *err, size_t n, void *zctx)
{
    l->sub = zmq_socket(zctx, ZMQ_SUB);
    if (l->sub == NULL || zmq_setsockopt(l->sub, ZMQ_SUBSCRIBE, "", 0) != 0 ||
        set_int(l->sub, ZMQ_LINGER, 0) != 0 ||
        set_int(l->sub, ZMQ_RCVHWM, LINK_SUB_HWM) != 0 ||
        set_int(l->sub, ZMQ_RECONNECT_IVL, LINK_RECONNECT_MS) != 0 ||
        set_int(l->sub, ZMQ_RECONNECT_IVL_MAX, LINK_RECONNECT_MAX_MS) != 0 ||
        zmq_connect(l->sub, l->cfg->broker_pub) != 0) {
        snprintf(err, n, "broker SUB to %s: %s", l->cfg->broker_pub,
                 zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- link state -------------------------------------------------------- */

static bool recent(uint64_t t, uint64_t now, int64_t window)
{
    return t != 0 && now - t <= (uint64_t)window;
}

static void update_state(broker_link_t *l)
{
    uint64_t now = util_mono_ms();
    int64_t lt = l->cfg->link_timeout_ms;
    bool pong = recent(l->last_pong_ms, now, lt);
    bool hb = recent(l->last_hb_ms, now, lt);
    bool up = pong && hb;
    if (!up) {
        if (l->last_pong_ms == 0 && l->last_hb_ms == 0)
            snprintf(l->reason, sizeof l->reason, "connecting");
        else if (!hb)
            snprintf(l->reason, sizeof l->reason,
                     "no heartbeat from broker for %" PRId64 " ms", lt);
        else
            snprintf(l->reason, sizeof l->reason,
                     "no pong from broker for %" PRId64 " ms", lt);
    }
    if (up == l->up)
        return;
    l->up = up;
    STAT_SET(l->stats, broker_link_up, up ? 1 : 0);
    if (up) {
        l->reason[0] = '\0';
        if (l->was_up)
            STAT_ADD(l->stats, broker_reconnects, 1);
        l->was_up = true;
        log_info("broker_link_up", "node=%s boot=%s", l->node, l->boot);
    } else {
        log_warn("broker_link_down", "node=%s reason=\"%s\"", l->node,
                 l->reason);
    }
}

/* Notes the broker's boot id; a new one means the broker restarted (then
 * on_resync was called and true is returned). */
static bool check_boot(broker_link_t *l, const wire_buf_t *boot)
{
    size_t n = boot->len > LINK_MAX_BOOT ? LINK_MAX_BOOT : boot->len;
    if (l->have_boot && strlen(l->boot) == n &&
        (n == 0 || memcmp(l->boot, boot->p, n) == 0))
        return false;
    bool restarted = l->have_boot;
    if (n > 0)
        memcpy(l->boot, boot->p, n);
    l->boot[n] = '\0';
    l->have_boot = true;
    l->gseq_known = false;
    if (restarted) {
        log_warn("broker_restarted", "node=%s boot=%s", l->node, l->boot);
        l->cbs.on_resync(l->cbs.arg);
    }
    return restarted;
}

static void send_simple(broker_link_t *l, uint8_t type)
{
    wire_msg_t m = {.type = type};
    if (type == WIRE_HELLO) {
        m.node.p = (const uint8_t *)l->node;
        m.node.len = strlen(l->node);
    }
    if (broker_link_send(l, &m) != 0 && l->up)
        log_debug("broker_send_failed", "type=%s error=\"%s\"",
                  wire_type_name(type), zmq_strerror(errno));
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    broker_link_t *l = arg;
    (void)fd;
    (void)what;
    uint64_t now = util_mono_ms();
    if (!l->welcomed) {
        send_simple(l, WIRE_HELLO);
    } else if (now - l->last_ping_ms >= (uint64_t)l->cfg->heartbeat_ms) {
        send_simple(l, WIRE_PING);
        l->last_ping_ms = now;
    }
    update_state(l);
    l->cbs.on_tick(l->cbs.arg);
    int64_t ms = l->welcomed ? l->cfg->heartbeat_ms : LINK_HELLO_RETRY_MS;
    if (ms > LINK_HELLO_RETRY_MS * 5)
        ms = LINK_HELLO_RETRY_MS * 5; /* notice a dead link in time */
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(l->tick, &tv);
}

/* ---- receiving --------------------------------------------------------- */

static bool decode(const wire_buf_t *frames, size_t n, wire_msg_t *m,
                   const char *sock)
{
    const char *err = "";
    if (wire_decode(frames, n, m, &err) == 0)
        return true;
    log_warn("broker_bad_message", "socket=%s frames=%zu reason=\"%s\"", sock,
             n, err);
    return false;
}

static void on_dealer(const wire_buf_t *frames, size_t n, void *arg)
{
    broker_link_t *l = arg;
    wire_msg_t m;
    if (!decode(frames, n, &m, "dealer"))
        return;
    switch (m.type) {
    case WIRE_WELCOME:
    case WIRE_PONG: {
        bool again = m.type == WIRE_WELCOME && l->welcomed;
        l->last_pong_ms = util_mono_ms();
        if (m.type == WIRE_WELCOME)
            l->welcomed = true;
        bool fired = check_boot(l, &m.boot);
        update_state(l);
        if (again && !fired) {
            log_info("broker_forgot_node", "node=%s", l->node);
            l->cbs.on_resync(l->cbs.arg);
        }
        break;
    }
    case WIRE_JOINED:
    case WIRE_ACK:
    case WIRE_WHO_REPLY:
    case WIRE_HISTORY:
    case WIRE_ERROR:
        l->cbs.on_reply(l->cbs.arg, &m);
        break;
    default:
        log_warn("broker_bad_message", "socket=dealer type=%s",
                 wire_type_name(m.type));
    }
}

static void on_sub(const wire_buf_t *frames, size_t n, void *arg)
{
    broker_link_t *l = arg;
    wire_msg_t m;
    if (!decode(frames, n, &m, "sub"))
        return;
    bool gap = false;
    if (m.type == WIRE_HEARTBEAT) {
        l->last_hb_ms = util_mono_ms();
        STAT_SET(l->stats, broker_rooms, (int64_t)m.limit);
        STAT_SET(l->stats, broker_members, (int64_t)m.members);
        STAT_SET(l->stats, broker_messages, (int64_t)m.seq);
        STAT_SET(l->stats, broker_journal_bytes, (int64_t)m.since);
        check_boot(l, &m.boot);
        gap = l->gseq_known && m.gseq > l->gseq;
        if (!l->gseq_known || m.gseq > l->gseq)
            l->gseq = m.gseq;
        l->gseq_known = true;
        update_state(l);
    } else if (m.type == WIRE_MSG || m.type == WIRE_PRESENCE) {
        gap = l->gseq_known && m.gseq > l->gseq + 1;
        l->gseq = m.gseq;
        l->gseq_known = true;
        l->cbs.on_pub(l->cbs.arg, &m);
    } else {
        log_warn("broker_bad_message", "socket=sub type=%s",
                 wire_type_name(m.type));
        return;
    }
    if (gap) {
        log_info("broker_stream_gap", "gseq=%" PRIu64, m.gseq);
        l->cbs.on_gap(l->cbs.arg);
    }
}

/* ---- API --------------------------------------------------------------- */

broker_link_t *broker_link_new(struct event_base *base, void *zctx,
                               const config_t *cfg, gw_stats_t *stats,
                               const broker_link_cbs_t *cbs, char *err,
                               size_t errlen)
{
    broker_link_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->base = base;
    l->cfg = cfg;
    l->stats = stats;
    l->cbs = *cbs;
    snprintf(l->reason, sizeof l->reason, "connecting");
    make_node_id(l);
    STAT_SET(stats, broker_link_up, 0);
    if (setup_dealer(l, zctx, err, errlen) != 0 ||
        setup_sub(l, err, errlen, zctx) != 0)
        goto fail;
    l->zdealer = zev_new(base, l->dealer, on_dealer, l);
    l->zsub = zev_new(base, l->sub, on_sub, l);
    l->tick = evtimer_new(base, on_tick, l);
    if (l->zdealer == NULL || l->zsub == NULL || l->tick == NULL) {
        snprintf(err, errlen, "broker link: cannot watch sockets");
        goto fail;
    }
    log_info("broker_link_start", "node=%s router=%s pub=%s", l->node,
             cfg->broker_router, cfg->broker_pub);
    on_tick(-1, 0, l); /* HELLO now, and arms the timer */
    return l;
fail:
    broker_link_free(l, false);
    return NULL;
}

void broker_link_free(broker_link_t *l, bool say_bye)
{
    if (l == NULL)
        return;
    if (say_bye && l->zdealer != NULL)
        send_simple(l, WIRE_BYE);
    if (l->tick != NULL)
        event_free(l->tick);
    zev_free(l->zdealer);
    zev_free(l->zsub);
    if (l->dealer != NULL)
        zmq_close(l->dealer);
    if (l->sub != NULL)
        zmq_close(l->sub);
    STAT_SET(l->stats, broker_link_up, 0);
    free(l);
}

int broker_link_send(broker_link_t *l, const wire_msg_t *m)
{
    uint8_t hdr[WIRE_HDR_LEN];
    wire_buf_t frames[1 + WIRE_MAX_FIELDS];
    int n = wire_encode(m, hdr, frames, 1 + WIRE_MAX_FIELDS);
    if (n < 0) {
        log_error("broker_encode_failed", "type=%s", wire_type_name(m->type));
        errno = EINVAL;
        return -1;
    }
    return zev_send(l->zdealer, frames, (size_t)n);
}

bool broker_link_up(const broker_link_t *l)
{
    return l != NULL && l->up;
}

const char *broker_link_reason(const broker_link_t *l)
{
    return l == NULL ? "no broker link" : l->reason;
}

const char *broker_link_node(const broker_link_t *l)
{
    return l->node;
}
