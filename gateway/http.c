/*
 * http.c - HTTP/1.1 on a connection before any upgrade: request heads,
 * routing, and the responses (static files, /healthz, /metrics, errors).
 *
 * One request at a time: after a response is queued the connection is in
 * CONN_HTTP_SEND and pipelined bytes wait in the input buffer (bounded by
 * the read watermark) until the response is written; http_on_written()
 * then serves the next one.  Only the HTTP API (api.c) takes request
 * bodies: it asks for one with http_read_body() (CONN_HTTP_BODY: wait until
 * Content-Length bytes are buffered, within header_timeout).  Any other
 * request announcing a body is answered and the connection closed, so the
 * body is never mistaken for a request.
 */
#include "http.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "api.h"
#include "autoconfig.h"
#include "chat.h"
#include "guard.h"
#include "http_parser.h"
#include "log.h"
#include "names.h"
#include "static.h"
#include "ws_handshake.h"
#include "ws_session.h"

#define HTTP_WRITE_STALL_MS 30000  /* no write progress at all: give up */
#define HTTP_CLOSE_TIMEOUT_MS 5000 /* error response after an upgrade */
#define HTTP_LOG_PATH_MAX 200
#define HTTP_READ_MARGIN 4096 /* conn.c's read watermark beyond max_head */

#define CSP_HEADER                                                             \
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: "     \
    "wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; "        \
    "base-uri 'none'; frame-ancestors 'none'\r\n"

/* The request being routed, for the access log and HEAD handling; set
 * only during route() (a worker serves one request at a time). */
static const http_request_t *cur_req;
static bool cur_upgrade;

/* Holds a complete head once it is drained from the input buffer, so the
 * request's pointers stay valid while the bytes after it are left for the
 * WebSocket session.  Grows to max_head once per process. */
static char *scratch;
static size_t scratch_cap;

static bool cur_is_head(void)
{
    return cur_req != NULL && http_method_is(cur_req, "HEAD");
}

/* Today's IMF-fixdate, formatted at most once per second. */
static const char *date_now(void)
{
    static char buf[STATIC_DATE_LEN + 1];
    static time_t last = (time_t)-1;
    time_t now = time(NULL);
    if (now != last && static_http_date(now, buf) == 0)
        last = now;
    return buf;
}

static void access_log(conn_t *c, int status, size_t bytes)
{
    if (!c->w->cfg->access_log)
        return;
    const http_request_t *r = cur_req;
    int mlen = r ? (int)r->method_len : 1;
    int plen = r ? (int)(r->target_len < HTTP_LOG_PATH_MAX ? r->target_len
                                                           : HTTP_LOG_PATH_MAX)
                 : 1;
    log_info("http_access",
             "method=%.*s path=\"%.*s\" status=%d bytes=%zu "
             "peer=%s",
             mlen, r ? r->method : "-", plen, r ? r->target : "-", status,
             bytes, conn_peer(c));
}

/* Writes the status line and the common headers; extra is NULL or
 * CRLF-terminated lines.  length < 0: no Content-Length (304). */
static void write_head(conn_t *c, int status, const char *type, int64_t length,
                       const char *extra)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nServer: parley/%s\r\n"
                        "Date: %s\r\n",
                        status, http_reason(status), PACKAGE_VERSION,
                        date_now());
    if (type != NULL)
        evbuffer_add_printf(out, "Content-Type: %s\r\n", type);
    if (length >= 0)
        evbuffer_add_printf(out, "Content-Length: %" PRId64 "\r\n", length);
    evbuffer_add_printf(out, "Connection: %s\r\n%s\r\n",
                        c->keep_alive ? "keep-alive" : "close",
                        extra ? extra : "");
}

/* The response is queued: wait for it to be written (keep-alive or not,
 * http_on_written decides), or drain and close outside the HTTP states. */
static void finish(conn_t *c, int status, size_t bytes)
{
    access_log(c, status, bytes);
    if (c->state != CONN_HTTP_HEAD && c->state != CONN_HTTP_BODY) {
        conn_close_after_write(c, HTTP_CLOSE_TIMEOUT_MS);
        return;
    }
    struct timeval stall = {HTTP_WRITE_STALL_MS / 1000, 0};
    conn_set_state(c, CONN_HTTP_SEND);
    conn_set_timeout(c, -1);
    bufferevent_set_timeouts(c->bev, NULL, &stall);
}

/* A complete response with an in-memory body (omitted for HEAD). */
static void send_body(conn_t *c, int status, const char *type, const char *body,
                      size_t len, const char *extra)
{
    bool head = cur_is_head();
    write_head(c, status, type, (int64_t)len, extra);
    if (!head)
        evbuffer_add(bufferevent_get_output(c->bev), body, len);
    finish(c, status, head ? 0 : len);
}

void http_send_response(conn_t *c, int status, const char *type,
                        const char *body, size_t len, const char *extra_headers)
{
    if (c->state == CONN_CLOSED || c->state == CONN_DRAINING)
        return;
    send_body(c, status, type, body, len, extra_headers);
}

/* Statuses after which the connection can serve another request (the
 * request was read completely and understood). */
static bool error_keeps_alive(int status)
{
    return status == 404 || status == 405;
}

void http_send_error(conn_t *c, int status, const char *detail,
                     const char *extra_headers)
{
    char body[256];
    if (c->state == CONN_CLOSED || c->state == CONN_DRAINING)
        return;
    if (c->state != CONN_HTTP_HEAD || cur_upgrade || !error_keeps_alive(status))
        c->keep_alive = false;
    int n = snprintf(body, sizeof body, "%d %s: %s\n", status,
                     http_reason(status), detail ? detail : "error");
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    send_body(c, status, "text/plain; charset=utf-8", body, (size_t)n,
              extra_headers);
}

/* ---- /healthz and /metrics ------------------------------------------- */

/* Copies s into out as the inside of a JSON string (no quotes added). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s != '\0' && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

static void serve_healthz(conn_t *c)
{
    worker_t *w = c->w;
    char body[512], reason[256];
    int n;
    if (!w->stopping && chat_link_up(w)) {
        n = snprintf(body, sizeof body,
                     "{\"status\":\"ok\",\"worker\":%ld,"
                     "\"connections\":%zu,\"broker\":\"up\"}\n",
                     (long)getpid(), w->nconns);
        send_body(c, 200, "application/json", body, (size_t)n,
                  "Cache-Control: no-store\r\n");
        return;
    }
    const char *why = w->stopping ? "worker stopping" : chat_link_reason(w);
    json_escape(why ? why : "broker link down", reason, sizeof reason);
    n = snprintf(body, sizeof body,
                 "{\"status\":\"unavailable\",\"worker\":"
                 "%ld,\"reason\":\"%s\"}\n",
                 (long)getpid(), reason);
    send_body(c, 503, "application/json", body, (size_t)n,
              "Cache-Control: no-store\r\n");
}

typedef struct {
    const char *name;
    const char *type;
    const char *help;
    size_t off;
} metric_t;

#define METRIC(n, t, h, f)                                                     \
    {                                                                          \
        "parley_gateway_" n, t, h, offsetof(gw_stats_t, f)                     \
    }

static const metric_t plain_metrics[] = {
    METRIC("connections_total", "counter", "TCP connections accepted.",
           conns_total),
    METRIC("connections_open", "gauge", "TCP connections open.", conns_open),
    METRIC("http_requests_total", "counter", "HTTP requests answered.",
           http_requests),
    METRIC("messages_in_total", "counter",
           "WebSocket messages received from clients.", messages_in),
    METRIC("messages_out_total", "counter",
           "WebSocket messages sent to clients.", messages_out),
    METRIC("bytes_in_total", "counter", "WebSocket bytes received.", bytes_in),
    METRIC("bytes_out_total", "counter", "WebSocket bytes sent.", bytes_out),
    METRIC("broadcasts_total", "counter",
           "Room messages received from the broker.", broadcasts),
    METRIC("deliveries_total", "counter", "Broadcast frames queued to clients.",
           deliveries),
    METRIC("slow_consumer_closes_total", "counter",
           "Connections closed because their send queue overflowed.",
           slow_consumer_closes),
    METRIC("writes_total", "counter",
           "Direct socket writes of WebSocket output (one per connection and "
           "loop iteration, however many frames it carries).",
           writes),
    METRIC("short_writes_total", "counter",
           "Direct writes the socket took only in part (the rest waits for "
           "writability).",
           short_writes),
    METRIC("protocol_closes_total", "counter",
           "Connections closed for a protocol violation.", protocol_closes),
    METRIC("broker_reconnects_total", "counter", "Broker link reconnections.",
           broker_reconnects),
    METRIC("gap_repairs_total", "counter",
           "History fetches to fill a sequence gap.", gap_repairs),
    METRIC("history_replays_total", "counter",
           "Joins answered with a history replay.", history_replays),
    METRIC("errors_sent_total", "counter", "JSON error replies sent.",
           errors_sent),
    METRIC("tls_handshakes_total", "counter", "TLS handshakes completed.",
           tls_handshakes),
    METRIC("tls_handshake_failures_total", "counter",
           "TLS handshakes that failed or timed out (connection closed).",
           tls_handshake_failures),
};

static const char *const hs_reason_names[HS_FAIL_COUNT] = {
    [HS_FAIL_BAD_REQUEST] = "bad_request", [HS_FAIL_VERSION] = "version",
    [HS_FAIL_METHOD] = "method",           [HS_FAIL_ROOM] = "room",
    [HS_FAIL_UNAVAILABLE] = "unavailable", [HS_FAIL_LIMIT] = "limit",
    [HS_FAIL_ORIGIN] = "origin",
};

static int64_t slot_field(const gw_stats_t *st, size_t off)
{
    const _Atomic int64_t *p =
        (const _Atomic int64_t *)((const char *)st + off);
    return atomic_load_explicit(p, memory_order_relaxed);
}

static int64_t sum_field(const gateway_t *gw, size_t off)
{
    int64_t sum = 0;
    for (size_t i = 0; i < gw->nslots; i++)
        sum += slot_field(&gw->stats[i], off);
    return sum;
}

static void metric_head(struct evbuffer *b, const char *name, const char *type,
                        const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

static void metrics_labeled(struct evbuffer *b, const gateway_t *gw)
{
    metric_head(b, "parley_gateway_websocket_open", "gauge",
                "WebSocket connections open, by mode.");
    evbuffer_add_printf(b,
                        "parley_gateway_websocket_open{mode=\"plain\"} %" PRId64
                        "\nparley_gateway_websocket_open{mode=\"json\"}"
                        " %" PRId64 "\n",
                        sum_field(gw, offsetof(gw_stats_t, ws_plain_open)),
                        sum_field(gw, offsetof(gw_stats_t, ws_json_open)));
    metric_head(b, "parley_gateway_websocket_connections_total", "counter",
                "WebSocket connections opened, by mode.");
    evbuffer_add_printf(b,
                        "parley_gateway_websocket_connections_total{mode="
                        "\"plain\"} %" PRId64 "\nparley_gateway_websocket_"
                        "connections_total{mode=\"json\"} %" PRId64 "\n",
                        sum_field(gw, offsetof(gw_stats_t, ws_plain_total)),
                        sum_field(gw, offsetof(gw_stats_t, ws_json_total)));
    metric_head(b, "parley_gateway_handshake_failures_total", "counter",
                "Refused WebSocket handshakes and connections, by reason.");
    for (int r = 0; r < HS_FAIL_COUNT; r++)
        evbuffer_add_printf(
            b,
            "parley_gateway_handshake_failures_total{"
            "reason=\"%s\"} %" PRId64 "\n",
            hs_reason_names[r],
            sum_field(gw, offsetof(gw_stats_t, handshake_failures[r])));
}

static void metrics_workers(struct evbuffer *b, const gateway_t *gw)
{
    int64_t live = 0;
    metric_head(b, "parley_gateway_broker_link_up", "gauge",
                "1 while the worker's broker link is up.");
    for (size_t i = 0; i < gw->nslots; i++) {
        if (slot_field(&gw->stats[i], offsetof(gw_stats_t, pid)) == 0)
            continue;
        live++;
        evbuffer_add_printf(
            b,
            "parley_gateway_broker_link_up{worker=\"%zu\"}"
            " %" PRId64 "\n",
            i, slot_field(&gw->stats[i], offsetof(gw_stats_t, broker_link_up)));
    }
    metric_head(b, "parley_gateway_workers", "gauge",
                "Worker processes running.");
    evbuffer_add_printf(b, "parley_gateway_workers %" PRId64 "\n", live);
}

/* The broker's figures, as its last heartbeat told the workers (the
 * largest value over the workers: they all hear the same broker). */
static void metrics_broker(struct evbuffer *b, const gateway_t *gw)
{
    static const metric_t broker[] = {
        {"parley_broker_rooms", "gauge", "Rooms the broker holds.",
         offsetof(gw_stats_t, broker_rooms)},
        {"parley_broker_members", "gauge",
         "Room memberships of JSON clients, over all gateways.",
         offsetof(gw_stats_t, broker_members)},
        {"parley_broker_messages_total", "counter",
         "Messages the broker sequenced since it started.",
         offsetof(gw_stats_t, broker_messages)},
        {"parley_broker_journal_bytes", "gauge",
         "Bytes in the broker's journal files.",
         offsetof(gw_stats_t, broker_journal_bytes)},
    };
    for (size_t k = 0; k < sizeof broker / sizeof broker[0]; k++) {
        int64_t v = 0;
        for (size_t i = 0; i < gw->nslots; i++) {
            if (slot_field(&gw->stats[i], offsetof(gw_stats_t, pid)) == 0)
                continue;
            int64_t x = slot_field(&gw->stats[i], broker[k].off);
            v = x > v ? x : v;
        }
        metric_head(b, broker[k].name, broker[k].type, broker[k].help);
        evbuffer_add_printf(b, "%s %" PRId64 "\n", broker[k].name, v);
    }
}

static void serve_metrics(conn_t *c)
{
    const gateway_t *gw = c->w->gw;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        http_send_error(c, 500, "out of memory", NULL);
        return;
    }
    for (size_t i = 0; i < sizeof plain_metrics / sizeof plain_metrics[0];
         i++) {
        const metric_t *m = &plain_metrics[i];
        metric_head(b, m->name, m->type, m->help);
        evbuffer_add_printf(b, "%s %" PRId64 "\n", m->name,
                            sum_field(gw, m->off));
    }
    metrics_labeled(b, gw);
    metrics_workers(b, gw);
    metrics_broker(b, gw);
    size_t len = evbuffer_get_length(b);
    bool head = cur_is_head();
    write_head(c, 200, "text/plain; version=0.0.4; charset=utf-8", (int64_t)len,
               "Cache-Control: no-store\r\n");
    if (!head)
        evbuffer_add_buffer(bufferevent_get_output(c->bev), b);
    evbuffer_free(b);
    finish(c, 200, head ? 0 : len);
}

/* ---- static files ----------------------------------------------------- */

static bool not_modified(const http_request_t *req, const static_file_t *f)
{
    const http_header_t *h = http_find_header(req, "If-None-Match");
    if (h != NULL)
        return static_etag_match(h->value, h->value_len, f->etag);
    h = http_find_header(req, "If-Modified-Since");
    time_t since;
    if (h == NULL || f->last_modified[0] == '\0' ||
        static_parse_http_date(h->value, h->value_len, &since) != 0)
        return false;
    return f->mtime <= since;
}

/* Sends f (headers, then the body by sendfile unless HEAD or 304);
 * consumes f->fd. */
static void send_file(conn_t *c, const http_request_t *req, static_file_t *f)
{
    char extra[1024];
    bool nm = not_modified(req, f);
    bool head = cur_is_head();
    snprintf(extra, sizeof extra,
             "ETag: %s\r\nLast-Modified: %s\r\n"
             "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
             "%s",
             f->etag, f->last_modified, f->is_html ? CSP_HEADER : "");
    if (nm) {
        close(f->fd);
        write_head(c, 304, NULL, -1, extra);
        finish(c, 304, 0);
        return;
    }
    write_head(c, 200, f->mime, (int64_t)f->size, extra);
    if (head || f->size == 0) {
        close(f->fd);
    } else if (evbuffer_add_file(bufferevent_get_output(c->bev), f->fd, 0,
                                 f->size) != 0) {
        log_warn("http_sendfile_failed", "peer=%s", conn_peer(c));
        conn_close(c);
        return;
    }
    finish(c, 200, head ? 0 : (size_t)f->size);
}

static void serve_static(conn_t *c, const http_request_t *req, const char *path,
                         size_t plen)
{
    char rel[STATIC_MAX_PATH + 1];
    static_file_t f;
    int n = static_path_resolve(path, plen, rel, sizeof rel);
    if (n < 0) {
        http_send_error(c, -n, n == -400 ? "invalid path" : "no such file",
                        NULL);
        return;
    }
    int st = static_open(c->w->www_fd, rel, &f);
    if (st != 0) {
        http_send_error(c, st, st == 404 ? "no such file" : "cannot read file",
                        NULL);
        return;
    }
    send_file(c, req, &f);
}

/* ---- routing ------------------------------------------------------------ */

static bool path_is(const char *path, size_t plen, const char *s)
{
    return plen == strlen(s) && memcmp(path, s, plen) == 0;
}

static hs_fail_t hs_reason(int status)
{
    switch (status) {
    case 426:
        return HS_FAIL_VERSION;
    case 405:
        return HS_FAIL_METHOD;
    default:
        return HS_FAIL_BAD_REQUEST;
    }
}

/* The room of an upgrade path: "lobby" for "/" and "/ws", <room> for
 * "/ws/<room>" (room names have no escapes, so the path is not decoded). */
static bool upgrade_room(const char *path, size_t plen, const char **room,
                         size_t *room_len)
{
    if (path_is(path, plen, "/") || path_is(path, plen, "/ws")) {
        *room = "lobby";
        *room_len = 5;
        return true;
    }
    if (plen <= 4 || memcmp(path, "/ws/", 4) != 0 ||
        !name_room_valid(path + 4, plen - 4))
        return false;
    *room = path + 4;
    *room_len = plen - 4;
    return true;
}

/* The Origin policy (guard.h) for an upgrade request. */
static bool origin_ok(const conn_t *c, const http_request_t *req)
{
    const http_header_t *o = http_find_header(req, "Origin");
    const http_header_t *h = http_find_header(req, "Host");
    return guard_origin_allowed(c->w->cfg->allowed_origins, o ? o->value : NULL,
                                o ? o->value_len : 0, h ? h->value : NULL,
                                h ? h->value_len : 0);
}

static void route_upgrade(conn_t *c, const http_request_t *req,
                          const char *path, size_t plen)
{
    const char *room;
    size_t room_len;
    ws_handshake_t hs;
    if (!upgrade_room(path, plen, &room, &room_len)) {
        STAT_ADD(c->w->stats, handshake_failures[HS_FAIL_ROOM], 1);
        http_send_error(c, 404, "invalid room", NULL);
        return;
    }
    int st = ws_handshake_check(req, &hs);
    if (st != 0) {
        STAT_ADD(c->w->stats, handshake_failures[hs_reason(st)], 1);
        http_send_error(c, st, hs.error,
                        st == 426   ? "Sec-WebSocket-Version: 13\r\n"
                        : st == 405 ? "Allow: GET\r\n"
                                    : NULL);
        return;
    }
    if (!origin_ok(c, req)) {
        STAT_ADD(c->w->stats, handshake_failures[HS_FAIL_ORIGIN], 1);
        log_debug("origin_refused", "id=%" PRIu64 " peer=%s", c->id,
                  conn_peer(c));
        http_send_error(c, 403, "origin not allowed", NULL);
        return;
    }
    conn_set_timeout(c, -1);
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    ws_session_upgrade(c, req, &hs, room, room_len);
    if (c->state == CONN_WS_OPEN || c->state == CONN_WS_PENDING)
        access_log(c, 101, 0);
}

/* A request that is not an upgrade: bodies, methods, then the routes. */
static void route_plain(conn_t *c, const http_request_t *req, const char *path,
                        size_t plen)
{
    size_t clen;
    bool chunked = http_find_header(req, "Transfer-Encoding") != NULL;
    if (http_content_length(req, &clen) != 0) {
        c->keep_alive = false;
        http_send_error(c, 400, "invalid Content-Length", NULL);
        return;
    }
    if (api_is_path(path, plen)) {
        const char *query;
        size_t qlen;
        http_split_target(req, &plen, &query, &qlen);
        api_on_head(c, req, path, plen, query, qlen, clen, chunked);
        return;
    }
    if (chunked || clen > 0)
        c->keep_alive = false; /* the body is never read */
    if (!http_method_is(req, "GET") && !http_method_is(req, "HEAD"))
        http_send_error(c, 405, "method not allowed", "Allow: GET, HEAD\r\n");
    else if (chunked)
        http_send_error(c, 501, "Transfer-Encoding not supported", NULL);
    else if (clen > 0)
        http_send_error(c, 413, "request body not allowed", NULL);
    else if (path_is(path, plen, "/healthz"))
        serve_healthz(c);
    else if (path_is(path, plen, "/metrics"))
        serve_metrics(c);
    else
        serve_static(c, req, path, plen);
}

static void route(conn_t *c, const http_request_t *req)
{
    size_t plen, qlen;
    const char *query;
    STAT_ADD(c->w->stats, http_requests, 1);
    c->keep_alive = http_keep_alive(req) && !c->w->stopping;
    cur_req = req;
    cur_upgrade = false;
    size_t hosts = http_count_header(req, "Host");
    if (req->target_len == 0 || req->target[0] != '/') {
        c->keep_alive = false;
        http_send_error(c, 400, "request target must be a path", NULL);
    } else if (hosts > 1 || (hosts == 0 && req->minor_version == 1)) {
        /* RFC 9112 section 3.2: exactly one Host in HTTP/1.1. */
        c->keep_alive = false;
        http_send_error(c, 400, "exactly one Host header is required", NULL);
    } else {
        http_split_target(req, &plen, &query, &qlen);
        /* A WebSocket key without a valid Upgrade is a broken handshake
         * (400 from the handshake check), not a file request. */
        if (ws_is_upgrade(req) ||
            http_find_header(req, "Sec-WebSocket-Key") != NULL) {
            cur_upgrade = true;
            route_upgrade(c, req, req->target, plen);
        } else {
            route_plain(c, req, req->target, plen);
        }
    }
    cur_req = NULL;
    cur_upgrade = false;
}

/* ---- reading heads ------------------------------------------------------- */

static http_limits_t limits_of(const config_t *cfg)
{
    http_limits_t l = {
        .max_request_line = (size_t)cfg->max_request_line,
        .max_head = (size_t)cfg->max_head,
        .max_headers = cfg->max_headers > HTTP_MAX_HEADERS
                           ? HTTP_MAX_HEADERS
                           : (size_t)cfg->max_headers,
    };
    return l;
}

/* Moves the complete head (head_len bytes, parsed into req where it lies
 * at buf, the input buffer's first bytes) into the scratch buffer, points
 * req there and routes it.  The bytes after the head stay in the input
 * buffer (pipelined requests, early WebSocket frames). */
static void serve_head(conn_t *c, struct evbuffer *in, size_t head_len,
                       const char *buf, http_request_t *req)
{
    if (head_len > scratch_cap) {
        char *p = realloc(scratch, head_len);
        if (p == NULL) {
            conn_close(c);
            return;
        }
        scratch = p;
        scratch_cap = head_len;
    }
    if (evbuffer_copyout(in, scratch, head_len) != (ev_ssize_t)head_len) {
        log_error("http_head_copy_failed", "peer=%s", conn_peer(c));
        conn_close(c);
        return;
    }
    http_request_rebase(req, buf, scratch);
    evbuffer_drain(in, head_len);
    route(c, req);
}

/* ---- request bodies (HTTP API) ------------------------------------------ */

static void set_read_limit(conn_t *c, size_t extra)
{
    bufferevent_setwatermark(c->bev, EV_READ, 0,
                             (size_t)c->w->cfg->max_head + HTTP_READ_MARGIN +
                                 extra);
}

/* Serves the body of c once body_need bytes are buffered. */
static void body_read(conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t need = c->body_need;
    if (need == 0)
        return; /* answered already, or waiting for the broker */
    if (evbuffer_get_length(in) < need) {
        if (c->peer_eof)
            conn_close(c);
        return;
    }
    const char *body = (const char *)evbuffer_pullup(in, (ev_ssize_t)need);
    c->body_need = 0;
    set_read_limit(c, 0);
    if (body == NULL) {
        c->keep_alive = false;
        http_send_error(c, 500, "out of memory", NULL);
        return;
    }
    api_on_body(c, body, need);
    evbuffer_drain(in, need);
}

void http_read_body(conn_t *c, size_t len, bool expect_continue)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    conn_set_state(c, CONN_HTTP_BODY);
    c->body_need = (uint32_t)len; /* api.c checked it against api_max_body */
    set_read_limit(c, len);
    conn_set_timeout(c, c->w->cfg->header_timeout_ms);
    if (expect_continue && evbuffer_get_length(in) < len)
        evbuffer_add_printf(bufferevent_get_output(c->bev),
                            "HTTP/1.1 100 Continue\r\n\r\n");
    body_read(c);
}

/* Drops empty lines before a request (RFC 9112 section 2.2). */
static void skip_blank_lines(struct evbuffer *in)
{
    unsigned char b[2];
    for (int i = 0; i < 8; i++) {
        ev_ssize_t n = evbuffer_copyout(in, b, 2);
        if (n >= 1 && b[0] == '\n')
            evbuffer_drain(in, 1);
        else if (n == 2 && b[0] == '\r' && b[1] == '\n')
            evbuffer_drain(in, 2);
        else
            return;
    }
}

void http_on_read(conn_t *c)
{
    const config_t *cfg = c->w->cfg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->state == CONN_HTTP_BODY) {
        body_read(c);
        return;
    }
    if (c->state != CONN_HTTP_HEAD)
        return;
    if (c->head_seen == 0)
        skip_blank_lines(in);
    size_t len = evbuffer_get_length(in);
    if (len == 0) {
        if (c->peer_eof)
            conn_close(c);
        return;
    }
    if (c->http_idle) {
        c->http_idle = false;
        conn_set_timeout(c, cfg->header_timeout_ms);
    }
    size_t n =
        len < (size_t)cfg->max_head + 1 ? len : (size_t)cfg->max_head + 1;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    http_limits_t lim = limits_of(cfg);
    http_request_t req;
    int r = buf ? http_parse_request(buf, n, c->head_seen, &lim, &req)
                : HTTP_PARSE_ERROR;
    if (r == HTTP_PARSE_INCOMPLETE && n > (size_t)cfg->max_head) {
        r = HTTP_PARSE_ERROR;
        req.status = 431;
        req.error = "request head too large";
    }
    if (r == HTTP_PARSE_INCOMPLETE) {
        c->head_seen = (uint32_t)n; /* <= max_head (1 MiB at most) */
        if (c->peer_eof)
            conn_close(c);
        return;
    }
    c->head_seen = 0;
    if (r < 0) {
        c->keep_alive = false;
        STAT_ADD(c->w->stats, http_requests, 1);
        http_send_error(c, buf ? req.status : 500,
                        buf ? req.error : "out of memory", NULL);
        return;
    }
    serve_head(c, in, (size_t)r, buf, &req);
}

void http_on_timeout(conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->state == CONN_HTTP_BODY && api_waiting(c)) {
        api_on_timeout(c);
        return;
    }
    if (c->state == CONN_HTTP_BODY && c->body_need > 0) {
        c->body_need = 0;
        c->keep_alive = false;
        http_send_error(c, 408, "request body not received in time", NULL);
        return;
    }
    if (c->state == CONN_HTTP_HEAD && !c->http_idle &&
        (c->head_seen > 0 || evbuffer_get_length(in) > 0)) {
        c->keep_alive = false;
        http_send_error(c, 408, "request head not received in time", NULL);
        return;
    }
    conn_close(c);
}

void http_on_written(conn_t *c)
{
    const config_t *cfg = c->w->cfg;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    if (!c->keep_alive || c->w->stopping) {
        conn_close_after_write(c, HTTP_CLOSE_TIMEOUT_MS);
        return;
    }
    conn_set_state(c, CONN_HTTP_HEAD);
    c->head_seen = 0;
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        c->http_idle = false;
        conn_set_timeout(c, cfg->header_timeout_ms);
        http_on_read(c);
    } else if (c->peer_eof) {
        conn_close(c);
    } else {
        c->http_idle = true;
        conn_set_timeout(c, cfg->idle_timeout_ms);
    }
}
