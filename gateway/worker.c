/*
 * worker.c - one worker process: its event loop, the accept path on the
 * inherited listening sockets, and the graceful stop.
 *
 * Close codes on stop: SIGTERM and SIGQUIT (and the master replacing the
 * worker on SIGHUP, which sends SIGTERM) close WebSockets with 1012
 * "gateway restarting": clients reconnect and resume.  SIGINT closes them
 * with 1001 "gateway shutting down".  SIGHUP is ignored in a worker: the
 * master handles reloads (with workers = 0 there is no reload; restart).
 */
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "chat.h"
#include "conn.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "static.h"
#include "util.h"
#include "ws_handshake.h"
#include "ws_session.h"

#define ACCEPT_BATCH 16     /* connections accepted per wake-up */
#define ACCEPT_RETRY_MS 100 /* pause after EMFILE/ENFILE */

/* Over max_connections a connection is still accepted and answered 503;
 * beyond this many more, accepting pauses until connections close. */
static size_t hard_cap(const worker_t *w)
{
    size_t max = (size_t)w->cfg->max_connections;
    return max + max / 8 + 16;
}

static void accept_enable(worker_t *w, bool on)
{
    if (on && (w->stopping || w->accept_paused || w->accept_gate_until))
        return;
    for (size_t i = 0; i < w->gw->num_listeners; i++) {
        if (w->accept_ev[i] == NULL)
            continue;
        if (on)
            event_add(w->accept_ev[i], NULL);
        else
            event_del(w->accept_ev[i]);
    }
    w->accepting = on;
}

#define ACCEPT_GATE_POLL_MS 20

/* A starting worker accepts once its broker link is up (or the gate times
 * out): during a reload or a respawn, connections wait in the shared
 * backlog, or go to the other workers, instead of meeting a 503. */
static void accept_gate(worker_t *w)
{
    struct timeval tv = {0, ACCEPT_GATE_POLL_MS * 1000};
    if (chat_link_up(w) || util_mono_ms() >= w->accept_gate_until) {
        w->accept_gate_until = 0;
        accept_enable(w, true);
        log_info("worker_accepting", "broker_link=%s",
                 chat_link_up(w) ? "up" : "down");
        return;
    }
    event_add(w->accept_retry, &tv);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    (void)fd;
    (void)what;
    if (w->accept_gate_until != 0)
        accept_gate(w);
    else
        accept_enable(w, true);
}

/* Handles an accept4() failure; true when accepting may go on at once. */
static bool accept_failed(worker_t *w, int err)
{
    static uint64_t last_log;
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    switch (err) {
    case EAGAIN:
#if EAGAIN != EWOULDBLOCK
    case EWOULDBLOCK:
#endif
        return false;
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
        return true;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        if (util_mono_ms() - last_log >= 1000) { /* once per second */
            last_log = util_mono_ms();
            log_warn("accept_paused",
                     "error=\"%s\" retry_ms=%d "
                     "connections=%zu",
                     strerror(err), ACCEPT_RETRY_MS, w->nconns);
        }
        accept_enable(w, false);
        event_add(w->accept_retry, &tv);
        return false;
    default:
        log_warn("accept_failed", "error=\"%s\"", strerror(err));
        return false;
    }
}

/* Counts the connection in the per-address table.  Returns 1 (counted,
 * key set), 0 when the address is over max_connections_per_ip, or -1
 * when not counted (no limit, another family, out of memory). */
static int count_address(worker_t *w, const struct sockaddr_storage *ss,
                         uint8_t key[GUARD_IP_KEY_LEN])
{
    if (w->iptab == NULL || guard_ip_key((const struct sockaddr *)ss, key) != 0)
        return -1;
    return guard_ip_acquire(w->iptab, key,
                            (uint32_t)w->cfg->max_connections_per_ip);
}

/* TCP_NODELAY on the socket fd accepted on listener li: Linux copies it
 * from the listening socket (worker_setup() sets it there), which the
 * first connection verifies; otherwise it is set on every socket. */
static void set_nodelay(worker_t *w, size_t li, int fd)
{
    int on = 1;
    socklen_t len = sizeof on;
    signed char *known = &w->nodelay_inherited[li];
    if (*known == 0) {
        on = 0;
        *known =
            getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on != 0
                ? 1
                : -1;
        on = 1;
    }
    if (*known < 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* Over a limit a connection is still accepted and answered 503 (through
 * TLS on a TLS listener), so the client learns why. */
static void accept_one(worker_t *w, size_t li, int fd,
                       const struct sockaddr_storage *ss)
{
    uint8_t key[GUARD_IP_KEY_LEN];
    bool tls = w->gw->listen_tls[li];
    if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6)
        set_nodelay(w, li, fd);
    bool over = w->nconns >= (size_t)w->cfg->max_connections;
    int counted = over ? -1 : count_address(w, ss, key);
    conn_t *c = conn_new(w, fd, ss, tls);
    if (c == NULL) {
        if (counted == 1)
            guard_ip_release(w->iptab, key);
        return;
    }
    if (counted == 1)
        c->ip_counted = true; /* c->addr == key: both are guard_ip_key() */
    if (!over && counted != 0)
        return;
    STAT_ADD(w->stats, handshake_failures[HS_FAIL_LIMIT], 1);
    c->keep_alive = false;
    if (over) {
        http_send_error(c, 503, "connection limit", NULL);
        return;
    }
    log_debug("conn_limit_per_ip", "peer=%s limit=%lld", conn_peer(c),
              (long long)w->cfg->max_connections_per_ip);
    http_send_error(c, 503, "too many connections from your address", NULL);
}

/* The index of listening socket lfd. */
static size_t listener_index(const worker_t *w, evutil_socket_t lfd)
{
    for (size_t i = 0; i < w->gw->num_listeners; i++)
        if (w->gw->listen_fds[i] == lfd)
            return i;
    return 0; /* not reached: every accept event has its listener */
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    worker_t *w = arg;
    size_t li = listener_index(w, lfd);
    (void)what;
    for (int i = 0; i < ACCEPT_BATCH && w->accepting; i++) {
        if (w->nconns >= hard_cap(w)) {
            log_warn("accept_paused",
                     "reason=connection_limit "
                     "connections=%zu",
                     w->nconns);
            accept_enable(w, false);
            w->accept_paused = true;
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            accept_one(w, li, fd, &ss);
        else if (!accept_failed(w, errno))
            return;
    }
}

/* Ends the loop: connections left are closed at once. */
static void finish_stop(worker_t *w)
{
    conn_t *next;
    for (conn_t *c = w->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
    conn_reap_all(w);
    event_base_loopexit(w->base, NULL);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_flush(arg);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    (void)fd;
    (void)what;
    conn_reap_all(w);
    if (w->stopping) {
        if (w->nconns == 0)
            finish_stop(w);
        return;
    }
    if (w->accept_paused && w->nconns < (size_t)w->cfg->max_connections) {
        w->accept_paused = false;
        accept_enable(w, true);
    }
}

static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    (void)fd;
    (void)what;
    log_warn("worker_drain_timeout", "connections=%zu", w->nconns);
    finish_stop(w);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("worker_signal", "signal=%d", (int)sig);
    worker_stop(arg, sig == SIGINT ? 1001 : 1012);
}

/* Winds down one connection at the start of a graceful stop. */
static void stop_conn(conn_t *c, uint16_t code, const char *reason)
{
    size_t pending = evbuffer_get_length(bufferevent_get_input(c->bev));
    switch (c->state) {
    case CONN_WS_OPEN:
        ws_session_close(c, code, reason);
        break;
    case CONN_WS_PENDING:
        conn_close(c);
        break;
    case CONN_HTTP_HEAD:
        if (c->head_seen == 0 && pending == 0)
            conn_close(c); /* idle keep-alive */
        else
            c->keep_alive = false; /* finish it, then close */
        break;
    case CONN_HTTP_BODY:
    case CONN_HTTP_SEND:
        c->keep_alive = false;
        break;
    default:
        break; /* already closing */
    }
}

void worker_stop(worker_t *w, uint16_t close_code)
{
    if (w->stopping)
        return;
    const char *reason =
        close_code == 1001 ? "gateway shutting down" : "gateway restarting";
    struct timeval tv = {(time_t)(w->cfg->drain_timeout_ms / 1000),
                         (suseconds_t)(w->cfg->drain_timeout_ms % 1000) * 1000};
    log_info("worker_stopping", "code=%u connections=%zu", close_code,
             w->nconns);
    accept_enable(w, false);
    w->stopping = true;
    w->stop_code = close_code;
    event_del(w->accept_retry);
    /* conn_close() leaves a closed connection's links intact until it is
     * reaped, so following next stays safe even if a callback closes
     * other connections. */
    conn_t *next;
    for (conn_t *c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state != CONN_CLOSED)
            stop_conn(c, close_code, reason);
    }
    evtimer_add(w->stop_timer, &tv);
    event_active(w->reap_ev, EV_TIMEOUT, 0);
}

static void stats_start(worker_t *w)
{
    STAT_SET(w->stats, pid, (int64_t)getpid());
    STAT_SET(w->stats, conns_open, 0);
    STAT_SET(w->stats, ws_plain_open, 0);
    STAT_SET(w->stats, ws_json_open, 0);
    STAT_SET(w->stats, broker_link_up, 0);
}

static struct event *add_signal(worker_t *w, int sig)
{
    struct event *ev = evsignal_new(w->base, sig, on_signal, w);
    if (ev != NULL && event_add(ev, NULL) != 0) {
        event_free(ev);
        return NULL;
    }
    return ev;
}

/* Creates the loop and every worker-level event.  0 or -1. */
static int worker_setup(worker_t *w)
{
    w->base = event_base_new();
    if (w->base == NULL)
        return -1;
    TAILQ_INIT(&w->flushq);
    w->reap_ev = event_new(w->base, -1, 0, on_reap, w);
    w->flush_ev = evtimer_new(w->base, on_flush, w);
    w->stop_timer = evtimer_new(w->base, on_stop_timer, w);
    w->accept_retry = evtimer_new(w->base, on_accept_retry, w);
    w->sig_term = add_signal(w, SIGTERM);
    w->sig_int = add_signal(w, SIGINT);
    w->sig_quit = add_signal(w, SIGQUIT);
    if (!w->reap_ev || !w->flush_ev || !w->stop_timer || !w->accept_retry ||
        !w->sig_term || !w->sig_int || !w->sig_quit || conn_timers_init(w) != 0)
        return -1;
    if (w->cfg->max_connections_per_ip > 0) {
        w->iptab = guard_iptab_new((size_t)w->cfg->max_connections);
        if (w->iptab == NULL)
            return -1;
    }
    for (size_t i = 0; i < w->gw->num_listeners; i++) {
        int on = 1; /* inherited by accepted sockets (set_nodelay()) */
        setsockopt(w->gw->listen_fds[i], IPPROTO_TCP, TCP_NODELAY, &on,
                   sizeof on); /* fails on a Unix socket: harmless */
        w->accept_ev[i] = event_new(w->base, w->gw->listen_fds[i],
                                    EV_READ | EV_PERSIST, on_accept, w);
        if (w->accept_ev[i] == NULL)
            return -1;
    }
    return 0;
}

static void free_event(struct event **ev)
{
    if (*ev != NULL)
        event_free(*ev);
    *ev = NULL;
}

static void worker_teardown(worker_t *w)
{
    for (size_t i = 0; i < GW_MAX_LISTENERS; i++)
        free_event(&w->accept_ev[i]);
    free_event(&w->accept_retry);
    free_event(&w->sig_term);
    free_event(&w->sig_int);
    free_event(&w->sig_quit);
    free_event(&w->stop_timer);
    free_event(&w->reap_ev);
    free_event(&w->flush_ev);
    conn_timers_free(w);
    if (w->base != NULL)
        event_base_free(w->base);
    w->base = NULL;
    if (w->www_fd >= 0)
        close(w->www_fd);
    w->www_fd = -1;
    guard_iptab_free(w->iptab);
    w->iptab = NULL;
}

/* Computes one Sec-WebSocket-Accept so OpenSSL's lazy setup of SHA-1
 * (about 2.5 MB of code and tables faulted in by the first digest, shared
 * with the other processes) happens at start rather than in the first
 * client's handshake, and a broken SHA-1 is reported at once. */
static void warm_up_sha1(void)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    char accept[WS_ACCEPT_LEN + 1];
    if (ws_accept_key(key, sizeof key - 1, accept) != 0)
        log_error("sha1_unavailable",
                  "reason=\"WebSocket upgrades will be answered 500\"");
}

/* Starts the chat side and runs the loop; returns the exit status. */
static int worker_serve(worker_t *w)
{
    char err[256];
    warm_up_sha1();
    if (chat_start(w, err, sizeof err) != 0) {
        log_error("worker_chat_failed", "error=\"%s\"", err);
        return 2;
    }
    log_info("worker_started", "slot=%d listeners=%zu", w->slot,
             w->gw->num_listeners);
    w->accept_gate_until = util_mono_ms() + (uint64_t)w->cfg->link_timeout_ms;
    accept_gate(w);
    int rc = event_base_dispatch(w->base);
    if (w->nconns > 0)
        finish_stop(w);
    conn_reap_all(w);
    chat_stop(w);
    log_info("worker_exit", "slot=%d status=%d", w->slot, rc < 0 ? 1 : 0);
    return rc < 0 ? 1 : 0;
}

int worker_run(gateway_t *gw, int slot)
{
    worker_t w;
    memset(&w, 0, sizeof w);
    w.gw = gw;
    w.cfg = &gw->cfg;
    w.slot = slot;
    w.stats = &gw->stats[slot];
    log_set_role("worker");
    stats_start(&w);
    signal(SIGHUP, SIG_IGN);
    w.www_fd = static_open_root(gw->cfg.www);
    if (w.www_fd < 0)
        log_warn("www_unavailable", "path=\"%s\" error=\"%s\"", gw->cfg.www,
                 strerror(errno));
    int rc = 2;
    if (worker_setup(&w) != 0)
        log_error("worker_setup_failed", "slot=%d", slot);
    else
        rc = worker_serve(&w);
    worker_teardown(&w);
    STAT_SET(w.stats, conns_open, 0);
    STAT_SET(w.stats, broker_link_up, 0);
    return rc;
}
