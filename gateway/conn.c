/*
 * conn.c - the connection state machine: one bufferevent, one deadline,
 * and dispatchers that route every event by state to http.c (before the
 * upgrade) or ws_session.c (after it).
 *
 * Timeouts: each connection has at most one deadline, kept in its worker's
 * min-heap (w->timers, room reserved for every connection in conn_new());
 * one libevent timer fires at the earliest deadline.  This replaces one
 * struct event per connection (bench/findings.md F4).
 *
 * Closing is two-step (conn.h): conn_close() marks the connection dead and
 * queues it; the worker's reap event frees it.  conn_close_after_write()
 * adds a lingering close: once the output is written the socket is shut
 * down for writing and the input is read and discarded until the peer
 * closes (bounded in bytes and time), so unread request bytes left in the
 * kernel cannot turn our last response into a reset.
 *
 * TLS (a tls_listen socket) changes only the bufferevent: an OpenSSL one
 * in the accepting state, so http.c and ws_session.c read and write
 * plaintext as usual.  A handshake that fails or does not finish within
 * the header timeout closes the connection and is counted
 * (tls_handshake_failures); the lingering close sends close_notify first.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "api.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "tls.h"
#include "util.h"
#include "ws_session.h"

#define CONN_LINGER_MS 1000
#define CONN_LINGER_MAX_BYTES (1u << 20)
#define CONN_HEAD_MARGIN 4096 /* read watermark beyond max_head */

#define BIT(s) (1u << (s))

_Static_assert(sizeof(((conn_t *)0)->addr) == GUARD_IP_KEY_LEN,
               "conn_t.addr holds a guard_ip_key()");

static const char *const state_names[] = {
    [CONN_HTTP_HEAD] = "http_head", [CONN_HTTP_BODY] = "http_body",
    [CONN_HTTP_SEND] = "http_send", [CONN_WS_PENDING] = "ws_pending",
    [CONN_WS_OPEN] = "ws_open",     [CONN_WS_CLOSING] = "ws_closing",
    [CONN_DRAINING] = "draining",   [CONN_CLOSED] = "closed",
};

/* Legal transitions: allowed[from] is the set of states reachable. */
static const unsigned allowed[] = {
    [CONN_HTTP_HEAD] = BIT(CONN_HTTP_BODY) | BIT(CONN_HTTP_SEND) |
                       BIT(CONN_WS_PENDING) | BIT(CONN_WS_OPEN) |
                       BIT(CONN_DRAINING) | BIT(CONN_CLOSED),
    [CONN_HTTP_BODY] =
        BIT(CONN_HTTP_SEND) | BIT(CONN_DRAINING) | BIT(CONN_CLOSED),
    [CONN_HTTP_SEND] =
        BIT(CONN_HTTP_HEAD) | BIT(CONN_DRAINING) | BIT(CONN_CLOSED),
    [CONN_WS_PENDING] = BIT(CONN_WS_OPEN) | BIT(CONN_WS_CLOSING) |
                        BIT(CONN_DRAINING) | BIT(CONN_CLOSED),
    [CONN_WS_OPEN] =
        BIT(CONN_WS_CLOSING) | BIT(CONN_DRAINING) | BIT(CONN_CLOSED),
    [CONN_WS_CLOSING] = BIT(CONN_DRAINING) | BIT(CONN_CLOSED),
    [CONN_DRAINING] = BIT(CONN_CLOSED),
    [CONN_CLOSED] = 0,
};

static bool is_http_state(conn_state_t s)
{
    return s == CONN_HTTP_HEAD || s == CONN_HTTP_BODY || s == CONN_HTTP_SEND;
}

static bool is_ws_state(conn_state_t s)
{
    return s == CONN_WS_PENDING || s == CONN_WS_OPEN || s == CONN_WS_CLOSING;
}

void conn_set_state(conn_t *c, conn_state_t s)
{
    if (c->state == s)
        return;
    assert(allowed[c->state] & BIT(s));
    log_debug("conn_state", "id=%" PRIu64 " from=%s to=%s", c->id,
              state_names[c->state], state_names[s]);
    c->state = s;
}

/* ---- timer heap -------------------------------------------------------- */

static void heap_put(worker_t *w, size_t i, conn_t *c)
{
    w->timers[i] = c;
    c->timer_slot = (uint32_t)(i + 1);
}

static void sift_up(worker_t *w, size_t i)
{
    conn_t *c = w->timers[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->timers[parent]->deadline_ms <= c->deadline_ms)
            break;
        heap_put(w, i, w->timers[parent]);
        i = parent;
    }
    heap_put(w, i, c);
}

static void sift_down(worker_t *w, size_t i)
{
    conn_t *c = w->timers[i];
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= w->ntimers)
            break;
        if (k + 1 < w->ntimers &&
            w->timers[k + 1]->deadline_ms < w->timers[k]->deadline_ms)
            k++;
        if (c->deadline_ms <= w->timers[k]->deadline_ms)
            break;
        heap_put(w, i, w->timers[k]);
        i = k;
    }
    heap_put(w, i, c);
}

static void timer_remove(conn_t *c)
{
    worker_t *w = c->w;
    if (c->timer_slot == 0)
        return;
    size_t i = c->timer_slot - 1;
    c->timer_slot = 0;
    conn_t *last = w->timers[--w->ntimers];
    if (i == w->ntimers)
        return;
    heap_put(w, i, last);
    sift_up(w, i);
    sift_down(w, last->timer_slot - 1);
}

/* Makes sure timers_ev fires no later than the earliest deadline (firing
 * earlier is harmless: fire_timers() re-arms). */
static void timers_arm(worker_t *w)
{
    if (w->ntimers == 0)
        return;
    uint64_t d = w->timers[0]->deadline_ms;
    if (w->timers_armed_ms != 0 && w->timers_armed_ms <= d)
        return;
    uint64_t now = util_mono_ms();
    uint64_t ms = d > now ? d - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    if (evtimer_add(w->timers_ev, &tv) != 0) {
        log_error("conn_timer_failed", "reason=\"evtimer_add\"");
        return;
    }
    w->timers_armed_ms = d;
}

static void on_timer(conn_t *c);

/* Runs the timeout of every connection due now; a callback that re-arms
 * its connection for now runs again at the next loop iteration at the
 * latest (the budget bounds the work per wake-up). */
static void fire_timers(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    (void)fd;
    (void)what;
    w->timers_armed_ms = 0;
    uint64_t now = util_mono_ms();
    for (size_t budget = w->ntimers; budget > 0 && w->ntimers > 0; budget--) {
        conn_t *c = w->timers[0];
        if (c->deadline_ms > now)
            break;
        timer_remove(c);
        on_timer(c);
    }
    timers_arm(w);
}

/* Room in the heap for n connections.  0 or -1. */
static int timers_reserve(worker_t *w, size_t n)
{
    if (n <= w->timers_cap)
        return 0;
    size_t cap = w->timers_cap < 64 ? 64 : w->timers_cap * 2;
    while (cap < n)
        cap *= 2;
    conn_t **t = realloc(w->timers, cap * sizeof *t);
    if (t == NULL)
        return -1;
    w->timers = t;
    w->timers_cap = cap;
    return 0;
}

int conn_timers_init(worker_t *w)
{
    w->timers_ev = evtimer_new(w->base, fire_timers, w);
    return w->timers_ev != NULL ? 0 : -1;
}

void conn_timers_free(worker_t *w)
{
    if (w->timers_ev != NULL)
        event_free(w->timers_ev);
    w->timers_ev = NULL;
    free(w->timers);
    w->timers = NULL;
    w->ntimers = w->timers_cap = 0;
    w->timers_armed_ms = 0;
}

void conn_set_timeout(conn_t *c, int64_t ms)
{
    timer_remove(c);
    if (ms < 0 || c->state == CONN_CLOSED)
        return; /* a closed connection leaves the heap for good */
    c->deadline_ms = util_mono_ms() + (uint64_t)ms;
    size_t i = c->w->ntimers++;
    c->w->timers[i] = c;
    sift_up(c->w, i);
    timers_arm(c->w);
}

/* ---- events ------------------------------------------------------------ */

size_t conn_output_pending(const conn_t *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* TLS: the close_notify alert goes out before the TCP half-close (the
 * output is empty here, so it is written straight to the socket). */
static void tls_close_notify(conn_t *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    if (ssl != NULL && c->tls_done)
        SSL_shutdown(ssl);
    ERR_clear_error();
}

/* The output of a draining connection is written: half-close and discard
 * what the peer still sends until it closes too. */
static void start_linger(conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->lingering = true;
    if (c->tls && !c->peer_eof)
        tls_close_notify(c);
    if (c->peer_eof || c->no_linger || shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    bufferevent_enable(c->bev, EV_READ);
    conn_set_timeout(c, CONN_LINGER_MS);
}

static void discard_input(conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    evbuffer_drain(in, n);
    if (n > CONN_LINGER_MAX_BYTES - c->linger_bytes)
        conn_close(c);
    else
        c->linger_bytes += (uint32_t)n;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn_t *c = arg;
    (void)bev;
    switch (c->state) {
    case CONN_HTTP_HEAD:
    case CONN_HTTP_BODY:
        http_on_read(c);
        break;
    case CONN_HTTP_SEND:
        break; /* pipelined input waits until the response is written */
    case CONN_WS_PENDING:
    case CONN_WS_OPEN:
    case CONN_WS_CLOSING:
        ws_session_on_read(c);
        break;
    case CONN_DRAINING:
        discard_input(c);
        break;
    case CONN_CLOSED:
        break;
    }
}

/* Everything queued is written. */
static void output_written(conn_t *c)
{
    if (c->state == CONN_HTTP_SEND)
        http_on_written(c);
    else if (c->state == CONN_DRAINING && !c->lingering)
        start_linger(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    conn_t *c = arg;
    (void)bev;
    if (conn_output_pending(c) != 0)
        return;
    if (c->direct) /* the tail is out: back to direct writes */
        bufferevent_disable(c->bev, EV_WRITE);
    output_written(c);
}

/* ---- direct writes (conn.h) ---------------------------------------------- */

void conn_set_direct(conn_t *c)
{
    if (c->tls || c->direct)
        return;
    c->direct = true;
    /* anything still queued is the bufferevent's to finish (on_write) */
    if (conn_output_pending(c) == 0)
        bufferevent_disable(c->bev, EV_WRITE);
}

void conn_output_added(conn_t *c)
{
    if (!c->direct || c->corked || c->state == CONN_CLOSED ||
        (bufferevent_get_enabled(c->bev) & EV_WRITE))
        return; /* the bufferevent writes it, or the flush will */
    worker_t *w = c->w;
    if (TAILQ_EMPTY(&w->flushq)) /* after this iteration's other callbacks */
        event_active(w->flush_ev, EV_TIMEOUT, 0);
    c->corked = true;
    TAILQ_INSERT_TAIL(&w->flushq, c, flush_link);
}

static void flush_unlink(conn_t *c)
{
    TAILQ_REMOVE(&c->w->flushq, c, flush_link);
    c->corked = false;
}

/* One writev of everything c has queued; a tail the socket did not take
 * goes to the bufferevent, which asks for writability. */
static void flush_one(conn_t *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int n = 0;
    if (evbuffer_get_length(out) > 0) {
        STAT_ADD(c->w->stats, writes, 1);
        /* a bufferevent keeps the start of its output frozen: only its
         * own write callback drains it, thawing it meanwhile; so do we */
        evbuffer_unfreeze(out, 1);
        n = evbuffer_write(out, c->fd);
        int saved = errno;
        evbuffer_freeze(out, 1);
        errno = saved;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log_debug("conn_write_failed", "id=%" PRIu64 " error=\"%s\"", c->id,
                  strerror(errno));
        conn_close(c);
        return;
    }
    if (evbuffer_get_length(out) > 0) {
        STAT_ADD(c->w->stats, short_writes, 1);
        bufferevent_enable(c->bev, EV_WRITE);
        return;
    }
    output_written(c);
}

void conn_flush(worker_t *w)
{
    conn_t *c;
    for (int n = 0; n < CONN_FLUSH_BATCH && (c = TAILQ_FIRST(&w->flushq));
         n++) {
        flush_unlink(c);
        flush_one(c); /* closed connections leave the queue at once */
    }
    if (!TAILQ_EMPTY(&w->flushq)) { /* the rest after the next poll */
        static const struct timeval now = {0, 0};
        evtimer_add(w->flush_ev, &now);
    }
}

/* The peer half-closed an HTTP connection: what it sent before may still
 * deserve answers (a request followed by shutdown(SHUT_WR)). */
static void on_http_eof(conn_t *c)
{
    c->peer_eof = true;
    if (c->state != CONN_HTTP_SEND)
        http_on_read(c); /* serves a complete request, or closes */
    /* in CONN_HTTP_SEND, http_on_written() serves the rest, then closes */
}

/* Logs a failed handshake at info level at most once a second per worker
 * (the others at debug level), so a scan cannot flood the log. */
static void tls_failed(conn_t *c, const char *how)
{
    static uint64_t last_ms;
    static unsigned suppressed;
    char reason[160];
    STAT_ADD(c->w->stats, tls_handshake_failures, 1);
    tls_error_reason(c->bev, reason, sizeof reason);
    uint64_t now = util_mono_ms();
    if (now - last_ms >= 1000) {
        log_info("tls_handshake_failed",
                 "id=%" PRIu64 " peer=%s how=%s reason=\"%s\" suppressed=%u",
                 c->id, conn_peer(c), how, reason, suppressed);
        last_ms = now;
        suppressed = 0;
    } else {
        suppressed++;
        log_debug("tls_handshake_failed",
                  "id=%" PRIu64 " peer=%s how=%s reason=\"%s\"", c->id,
                  conn_peer(c), how, reason);
    }
}

static void on_tls_connected(conn_t *c)
{
    c->tls_done = true;
    STAT_ADD(c->w->stats, tls_handshakes, 1);
    log_debug("tls_established", "id=%" PRIu64 " version=%s", c->id,
              tls_version(c->bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    conn_t *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->tls && !c->tls_done)
            on_tls_connected(c);
        return;
    }
    if (c->tls && !c->tls_done) {
        tls_failed(c, (what & BEV_EVENT_ERROR) ? "error" : "eof");
        conn_close(c);
        return;
    }
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        is_http_state(c->state)) {
        on_http_eof(c);
        return;
    }
    log_debug("conn_event",
              "id=%" PRIu64 " state=%s eof=%d error=%d "
              "timeout=%d",
              c->id, state_names[c->state], !!(what & BEV_EVENT_EOF),
              !!(what & BEV_EVENT_ERROR), !!(what & BEV_EVENT_TIMEOUT));
    conn_close(c);
}

static void on_timer(conn_t *c)
{
    if (c->tls && !c->tls_done && c->state == CONN_HTTP_HEAD) {
        tls_failed(c, "timeout");
        conn_close(c);
    } else if (is_http_state(c->state))
        http_on_timeout(c);
    else if (is_ws_state(c->state))
        ws_session_on_timer(c);
    else if (c->state == CONN_DRAINING)
        conn_close(c);
}

/* Frees a connection that never made it to the worker's list. */
static void conn_discard(conn_t *c, int fd)
{
    if (c != NULL && c->bev != NULL)
        bufferevent_free(c->bev); /* closes fd (BEV_OPT_CLOSE_ON_FREE) */
    else
        close(fd);
    free(c);
}

/* A server-side TLS bufferevent on fd; NULL on failure (fd still ours). */
static struct bufferevent *tls_bev(worker_t *w, int fd)
{
    SSL *ssl = tls_ssl_new(w->gw->tls_ctx);
    if (ssl == NULL)
        return NULL;
    /* ssl belongs to the bufferevent from here (BEV_OPT_CLOSE_ON_FREE).
     * When creating it fails (out of memory), libevent frees ssl on some
     * of its error paths and not on others: it is not freed here, since a
     * rare leak beats a double free. */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev != NULL) /* a peer closing without close_notify is an EOF */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* The first bytes queued on a plain connection's output: writing is
 * enabled from then on (the bufferevent arms EV_WRITE whenever output is
 * pending).  Enabling it at accept time would arm EV_WRITE on an empty
 * buffer, costing two epoll_ctl calls and a wake-up per connection. */
static void on_first_output(struct evbuffer *buf,
                            const struct evbuffer_cb_info *info, void *arg)
{
    conn_t *c = arg;
    if (info->n_added == 0)
        return;
    /* gone for good: an idle connection keeps no callback entry (48 bytes;
     * libevent allows removing the running callback's own entry) */
    evbuffer_remove_cb_entry(buf, c->first_out);
    c->first_out = NULL;
    if (c->state != CONN_CLOSED && !c->direct) /* direct: conn_flush() */
        bufferevent_enable(c->bev, EV_WRITE);
}

/* Creates the bufferevent (which owns fd from then on) and timer of c. */
static int conn_setup(conn_t *c, worker_t *w, int fd, bool tls)
{
    if (tls)
        c->bev = w->gw->tls_ctx ? tls_bev(w, fd) : NULL;
    else
        c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL)
        return -1;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0,
                             (size_t)w->cfg->max_head + CONN_HEAD_MARGIN);
    if (tls) /* the TLS handshake writes on its own */
        return bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->first_out =
        evbuffer_add_cb(bufferevent_get_output(c->bev), on_first_output, c);
    if (c->first_out == NULL)
        return -1;
    return bufferevent_enable(c->bev, EV_READ);
}

/* Keeps ss as the client address of c. */
static void set_peer(conn_t *c, const struct sockaddr_storage *ss)
{
    if (guard_ip_key((const struct sockaddr *)ss, c->addr) != 0)
        return; /* family 0: unknown */
    c->family = (uint8_t)ss->ss_family;
    if (ss->ss_family == AF_INET)
        c->port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    else
        c->port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

const char *conn_peer(const conn_t *c)
{
    static char out[INET6_ADDRSTRLEN + 8];
    char ip[INET6_ADDRSTRLEN] = "?";
    if (c->family == AF_INET) {
        inet_ntop(AF_INET, c->addr + 12, ip, sizeof ip);
        snprintf(out, sizeof out, "%s:%u", ip, c->port);
    } else if (c->family == AF_INET6) {
        inet_ntop(AF_INET6, c->addr, ip, sizeof ip);
        snprintf(out, sizeof out, "[%s]:%u", ip, c->port);
    } else {
        snprintf(out, sizeof out, "unknown");
    }
    return out;
}

conn_t *conn_new(worker_t *w, int fd, const struct sockaddr_storage *ss,
                 bool tls)
{
    conn_t *c = NULL;
    if (timers_reserve(w, w->nconns + 1) == 0)
        c = calloc(1, sizeof *c);
    if (c == NULL || conn_setup(c, w, fd, tls) != 0) {
        log_warn("conn_new_failed", "fd=%d", fd);
        conn_discard(c, fd);
        return NULL;
    }
    c->w = w;
    c->fd = fd;
    c->id = ++w->next_conn_id;
    c->state = CONN_HTTP_HEAD;
    c->tls = tls;
    set_peer(c, ss);
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    STAT_ADD(w->stats, conns_total, 1);
    STAT_ADD(w->stats, conns_open, 1);
    conn_set_timeout(c, w->cfg->header_timeout_ms);
    log_debug("conn_open", "id=%" PRIu64 " fd=%d peer=%s", c->id, fd,
              conn_peer(c));
    return c;
}

void conn_close(conn_t *c)
{
    if (c->state == CONN_CLOSED)
        return;
    if (c->ws != NULL && !c->ws_notified) {
        c->ws_notified = true;
        ws_session_on_close(c);
        if (c->state == CONN_CLOSED)
            return; /* closed again from inside the callback */
    }
    if (c->api != NULL)
        api_conn_gone(c);
    conn_set_state(c, CONN_CLOSED);
    if (c->corked)
        flush_unlink(c);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    timer_remove(c);
    worker_t *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    /* c->next stays valid until the reap: loops over the list that close
     * connections as they go can still follow it. */
    w->nconns--;
    STAT_ADD(w->stats, conns_open, -1);
    if (c->ip_counted) {
        guard_ip_release(w->iptab, c->addr);
        c->ip_counted = false;
    }
    c->reap_next = w->reap;
    w->reap = c;
    event_active(w->reap_ev, EV_TIMEOUT, 0);
    log_debug("conn_close", "id=%" PRIu64 " peer=%s", c->id, conn_peer(c));
}

void conn_close_when_written(conn_t *c, int64_t timeout_ms)
{
    c->no_linger = true;
    conn_close_after_write(c, timeout_ms);
}

void conn_close_after_write(conn_t *c, int64_t timeout_ms)
{
    if (c->state == CONN_CLOSED || c->state == CONN_DRAINING)
        return;
    conn_set_state(c, CONN_DRAINING);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    conn_set_timeout(c, timeout_ms);
    if (conn_output_pending(c) == 0)
        start_linger(c);
    else if (c->direct && !(bufferevent_get_enabled(c->bev) & EV_WRITE))
        conn_output_added(c); /* the flush writes it, then lingers */
    else
        bufferevent_enable(c->bev, EV_WRITE);
}

void conn_reap_all(worker_t *w)
{
    while (w->reap != NULL) {
        conn_t *c = w->reap;
        w->reap = c->reap_next;
        ws_session_free(c->ws);
        c->ws = NULL;
        timer_remove(c);          /* not armed since conn_close(); kept safe */
        bufferevent_free(c->bev); /* closes c->fd */
        free(c);
    }
}
