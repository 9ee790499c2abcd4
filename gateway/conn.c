/*
 * conn.c - the connection state machine: one bufferevent, one timer, and
 * dispatchers that route every event by state to http.c (before the
 * upgrade) or ws_session.c (after it).
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

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
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

_Static_assert(sizeof(((conn_t *)0)->ip_key) == GUARD_IP_KEY_LEN,
               "conn_t.ip_key holds a guard_ip_key()");

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

void conn_set_timeout(conn_t *c, int64_t ms)
{
    if (ms < 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

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
    c->linger_bytes += n;
    if (c->linger_bytes > CONN_LINGER_MAX_BYTES)
        conn_close(c);
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
    if (w->flush_head == NULL) /* after this iteration's other callbacks */
        event_active(w->flush_ev, EV_TIMEOUT, 0);
    c->corked = true;
    c->flush_next = NULL;
    c->flush_prev = w->flush_tail;
    if (w->flush_tail != NULL)
        w->flush_tail->flush_next = c;
    else
        w->flush_head = c;
    w->flush_tail = c;
}

static void flush_unlink(conn_t *c)
{
    worker_t *w = c->w;
    if (c->flush_prev != NULL)
        c->flush_prev->flush_next = c->flush_next;
    else
        w->flush_head = c->flush_next;
    if (c->flush_next != NULL)
        c->flush_next->flush_prev = c->flush_prev;
    else
        w->flush_tail = c->flush_prev;
    c->flush_next = c->flush_prev = NULL;
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
    for (int n = 0; n < CONN_FLUSH_BATCH && w->flush_head != NULL; n++) {
        conn_t *c = w->flush_head;
        flush_unlink(c);
        flush_one(c); /* closed connections leave the queue at once */
    }
    if (w->flush_head != NULL) { /* the rest after the next poll */
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
                 c->id, c->peer, how, reason, suppressed);
        last_ms = now;
        suppressed = 0;
    } else {
        suppressed++;
        log_debug("tls_handshake_failed",
                  "id=%" PRIu64 " peer=%s how=%s reason=\"%s\"", c->id, c->peer,
                  how, reason);
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

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    (void)fd;
    (void)what;
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
    if (c != NULL && c->timer != NULL)
        event_free(c->timer);
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
    evbuffer_cb_clear_flags(buf, c->first_out, EVBUFFER_CB_ENABLED);
    if (c->state != CONN_CLOSED && !c->direct) /* direct: conn_flush_all */
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
    c->timer = evtimer_new(w->base, on_timer, c);
    if (c->timer == NULL)
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

conn_t *conn_new(worker_t *w, int fd, const char *peer, bool tls)
{
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL || conn_setup(c, w, fd, tls) != 0) {
        log_warn("conn_new_failed", "fd=%d peer=%s", fd, peer);
        conn_discard(c, fd);
        return NULL;
    }
    c->w = w;
    c->fd = fd;
    c->id = ++w->next_conn_id;
    c->state = CONN_HTTP_HEAD;
    c->tls = tls;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    STAT_ADD(w->stats, conns_total, 1);
    STAT_ADD(w->stats, conns_open, 1);
    conn_set_timeout(c, w->cfg->header_timeout_ms);
    log_debug("conn_open", "id=%" PRIu64 " fd=%d peer=%s", c->id, fd, peer);
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
    evtimer_del(c->timer);
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
        guard_ip_release(w->iptab, c->ip_key);
        c->ip_counted = false;
    }
    c->reap_next = w->reap;
    w->reap = c;
    event_active(w->reap_ev, EV_TIMEOUT, 0);
    log_debug("conn_close", "id=%" PRIu64 " peer=%s", c->id, c->peer);
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
        bufferevent_free(c->bev); /* closes c->fd */
        event_free(c->timer);
        free(c);
    }
}
