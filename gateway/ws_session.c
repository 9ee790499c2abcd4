/*
 * ws_session.c - the WebSocket session of an upgraded connection
 * (ws_session.h): the 101, frames in and out, ping/pong, the closing
 * handshake, and the send-queue bound.  Chat semantics are in chat.c.
 */
#include "ws_session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "autoconfig.h"
#include "chat.h"
#include "frame_cache.h"
#include "http.h"
#include "log.h"
#include "names.h"
#include "pmd.h"
#include "ratelimit.h"
#include "rooms.h"
#include "utf8.h"
#include "util.h"
#include "ws_frame.h"

#define WS_READ_HIGH (64u * 1024) /* input read per callback, at most */
#define WS_CKPT 4                 /* frame boundaries remembered */
#define WS_PROTOCOL "parley.v1"

/* What the 101 answers besides the mode: needed only until it is written,
 * so it lives on the stack, or on the heap while a plain upgrade waits for
 * its room (CONN_WS_PENDING), never in the long-lived session. */
typedef struct {
    char accept[WS_ACCEPT_LEN + 1];
    char ext[PMD_RESPONSE_MAX]; /* Sec-WebSocket-Extensions answer, or "" */
} ws_answer_t;

/* permessage-deflate state (docs/deflate.md), allocated only when it was
 * negotiated. */
typedef struct {
    pmd_params_t pmd;        /* what was agreed */
    pmd_inflater_t inflater; /* used with client context takeover */
} ws_deflate_t;

/* Every idle connection holds one of these: keep it small (bench/findings.md
 * F4); state needed only at the upgrade or with an option goes behind a
 * pointer. */
struct ws_session {
    ws_parser_t *parser; /* NULL between messages (see parser_get()) */
    member_t *members;   /* rooms of this connection */
    ws_answer_t *answer; /* CONN_WS_PENDING only; NULL otherwise */
    ws_deflate_t *dfl;   /* NULL unless permessage-deflate was agreed */
    /* rate limit of data messages (docs/security.md, "Rate limits") */
    ratelimit_t rl;
    uint64_t last_rx_ms;
    uint64_t ping_sent_ms;
    /* output accounting, to cut a slow consumer's queue at a frame
     * boundary: q_total bytes queued so far, ckpt[] some frame starts */
    uint64_t q_total;
    uint64_t ckpt[WS_CKPT];
    uint64_t ckpt_last;
    unsigned ckpt_i;
    uint32_t over; /* messages over the limit in a row (<= rate_burst + 1) */
    bool json;
    bool opened; /* the 101 was sent (gauges counted) */
    bool close_sent;
    bool parse_failed;
    bool ping_out;
};

/* The rate limit of every session of this worker (rate_limit, rate_burst:
 * one configuration per process); each session has its bucket. */
static ratelimit_policy_t rate_policy;

/* Inflation state shared by the worker's sessions (one worker per
 * process): the inflater of clients that reset their context per message,
 * and the output buffer of every inflated message (consumed before the
 * next message is read). */
static struct {
    pmd_inflater_t shared;
    pmd_buf_t out;
    bool ready;
} wsz;

/* The frame parser of the worker's sessions that are between messages
 * (nearly all of them, at any time): a session owns a parser only while a
 * frame or fragmented message of its own is partly read, so an idle
 * connection holds no parser state (bench/findings.md F4).  busy while a
 * read callback uses it: a nested read (another connection's, from inside
 * a message handler) gets a parser of its own. */
static struct {
    ws_parser_t p;
    bool busy;
} wsp;

/* ---- output -------------------------------------------------------------- */

/* Notes n more bytes queued, remembering a frame start now and then. */
static void account(conn_t *c, size_t n)
{
    struct ws_session *s = c->ws;
    uint64_t step = (uint64_t)c->w->cfg->send_queue / 4;
    if (step < 4096)
        step = 4096;
    if (s->q_total - s->ckpt_last >= step) {
        s->ckpt[s->ckpt_i++ % WS_CKPT] = s->q_total;
        s->ckpt_last = s->q_total;
    }
    s->q_total += n;
}

/* Queues a frame of op with payload p[0..len), even while closing. */
static int queue_frame(conn_t *c, ws_opcode_t op, const void *p, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hlen = ws_frame_write_header(hdr, op, true, 0, len, NULL);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_add(out, hdr, hlen) != 0 ||
        (len > 0 && evbuffer_add(out, p, len) != 0))
        return -1;
    account(c, hlen + len);
    STAT_ADD(c->w->stats, bytes_out, (int64_t)(hlen + len));
    conn_output_added(c);
    return 0;
}

static bool can_send(const conn_t *c)
{
    return c->ws != NULL && c->state == CONN_WS_OPEN && !c->ws->close_sent;
}

int ws_session_send_text(conn_t *c, const char *p, size_t len)
{
    if (!can_send(c) || queue_frame(c, WS_OP_TEXT, p, len) != 0)
        return -1;
    STAT_ADD(c->w->stats, messages_out, 1);
    return 0;
}

int ws_session_queue_frame(conn_t *c, struct frame *f)
{
    if (!can_send(c) || frame_queue(bufferevent_get_output(c->bev), f) != 0)
        return -1;
    account(c, f->len);
    conn_output_added(c);
    return 0;
}

int ws_session_send_frame(conn_t *c, struct frame *f)
{
    if (ws_session_queue_frame(c, f) != 0)
        return -1;
    STAT_ADD(c->w->stats, messages_out, 1);
    STAT_ADD(c->w->stats, bytes_out, (int64_t)f->len);
    return 0;
}

static void queue_close(conn_t *c, uint16_t code, const char *reason)
{
    uint8_t payload[WS_MAX_CONTROL];
    size_t n = code == WS_CLOSE_NO_STATUS
                   ? 0
                   : ws_close_payload(payload, code, reason);
    queue_frame(c, WS_OP_CLOSE, payload, n);
    c->ws->close_sent = true;
}

/* ---- opening ------------------------------------------------------------- */

/* Appends s[0..n) at *at, returning the new end (the 101 is built by
 * hand: its parts are bounded and known, no printf per handshake). */
static char *put(char *at, const char *s, size_t n)
{
    memcpy(at, s, n);
    return at + n;
}

#define PUT_LIT(at, lit) put(at, lit, sizeof lit - 1)

static void write_101(conn_t *c, const ws_answer_t *a)
{
    struct ws_session *s = c->ws;
    char buf[256 + WS_ACCEPT_LEN + sizeof a->ext];
    char *at = PUT_LIT(buf, "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: ");
    at = put(at, a->accept, WS_ACCEPT_LEN);
    at = PUT_LIT(at, "\r\n");
    if (s->json)
        at = PUT_LIT(at, "Sec-WebSocket-Protocol: " WS_PROTOCOL "\r\n");
    if (a->ext[0] != '\0') {
        at = PUT_LIT(at, "Sec-WebSocket-Extensions: ");
        at = put(at, a->ext, strnlen(a->ext, sizeof a->ext));
        at = PUT_LIT(at, "\r\n");
    }
    at = PUT_LIT(at, "\r\n");
    if (evbuffer_add(bufferevent_get_output(c->bev), buf, (size_t)(at - buf)) !=
        0)
        log_warn("ws_101_not_queued", "id=%" PRIu64, c->id);
}

static void send_welcome(conn_t *c)
{
    char session[17], buf[256];
    if (util_random_hex(session, 8) != 0)
        snprintf(session, sizeof session, "%016" PRIx64, c->id);
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"welcome\",\"server\":\"parley/%s\","
                     "\"session\":\"%s\",\"max_message\":%" PRId64 "}",
                     PACKAGE_VERSION, session, c->w->cfg->max_message);
    ws_session_send_text(c, buf, (size_t)n);
}

/* Writes the 101 with answer a: the connection is an open WebSocket. */
static void ws_open(conn_t *c, const ws_answer_t *a)
{
    struct ws_session *s = c->ws;
    gw_stats_t *st = c->w->stats;
    conn_set_direct(c);
    write_101(c, a);
    conn_output_added(c);
    conn_set_state(c, CONN_WS_OPEN);
    s->opened = true;
    s->last_rx_ms = util_mono_ms();
    conn_set_timeout(c, c->w->cfg->ping_interval_ms);
    if (s->json) {
        STAT_ADD(st, ws_json_open, 1);
        STAT_ADD(st, ws_json_total, 1);
        send_welcome(c);
    } else {
        STAT_ADD(st, ws_plain_open, 1);
        STAT_ADD(st, ws_plain_total, 1);
    }
    log_debug("ws_open", "id=%" PRIu64 " mode=%s peer=%s", c->id,
              s->json ? "json" : "plain", conn_peer(c));
}

/* Accepts the client's first acceptable permessage-deflate offer when the
 * gateway enables compression (RFC 7692; pmd.h), writing the answer to
 * ext[PMD_RESPONSE_MAX] ("" when declined).  Out of memory declines. */
static void negotiate_deflate(conn_t *c, struct ws_session *s,
                              const ws_handshake_t *hs, char *ext)
{
    const config_t *cfg = c->w->cfg;
    ext[0] = '\0';
    if (!cfg->deflate)
        return;
    pmd_config_t pc = {
        .client_max_window_bits = (int)cfg->deflate_client_max_window_bits,
        .server_max_window_bits = (int)cfg->deflate_server_max_window_bits,
        .client_no_context_takeover = cfg->deflate_client_no_context_takeover,
    };
    pmd_params_t agreed;
    int rc = pmd_negotiate(hs, &pc, &agreed, ext, PMD_RESPONSE_MAX);
    if (rc < 0)
        log_error("deflate_answer_too_long", "id=%" PRIu64, c->id);
    if (rc > 0)
        s->dfl = malloc(sizeof *s->dfl);
    if (s->dfl == NULL) {
        ext[0] = '\0';
        return;
    }
    s->dfl->pmd = agreed;
    pmd_inflater_init(&s->dfl->inflater, agreed.client_window_bits,
                      !agreed.client_no_context_takeover);
}

/* A session for the upgrade hs, and its 101 answer in *a. */
static void fail_pending(conn_t *c);

static struct ws_session *session_new(conn_t *c, const ws_handshake_t *hs,
                                      ws_answer_t *a)
{
    const config_t *cfg = c->w->cfg;
    struct ws_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->json = ws_offers_protocol(hs, WS_PROTOCOL);
    memcpy(a->accept, hs->accept, sizeof a->accept);
    negotiate_deflate(c, s, hs, a->ext);
    if (cfg->rate_limit > 0) {
        /* the worker's one policy (its configuration does not change) */
        ratelimit_policy_init(&rate_policy, (uint32_t)cfg->rate_limit,
                              (uint32_t)cfg->rate_burst);
        ratelimit_init(&s->rl, &rate_policy);
    }
    return s;
}

void ws_session_upgrade(conn_t *c, const http_request_t *req,
                        const ws_handshake_t *hs, const char *room,
                        size_t room_len)
{
    (void)req;
    ws_answer_t answer;
    struct ws_session *s = session_new(c, hs, &answer);
    if (s == NULL) {
        http_send_error(c, 500, "out of memory", NULL);
        return;
    }
    c->ws = s;
    bufferevent_setwatermark(c->bev, EV_READ, 0, WS_READ_HIGH);
    if (s->json) {
        ws_open(c, &answer);
        ws_session_on_read(c); /* bytes that came with the head */
        return;
    }
    int rc = chat_plain_join(c, room, room_len);
    if (rc > 0) {
        ws_open(c, &answer);
        ws_session_on_read(c);
    } else if (rc == 0) {
        conn_set_direct(c);
        conn_set_state(c, CONN_WS_PENDING);
        s->answer = malloc(sizeof *s->answer);
        if (s->answer == NULL) {
            fail_pending(c);
            return;
        }
        *s->answer = answer;
        conn_set_timeout(c, c->w->cfg->request_timeout_ms + 1000);
    } else {
        c->ws = NULL;
        ws_session_free(s);
        STAT_ADD(c->w->stats, handshake_failures[HS_FAIL_UNAVAILABLE], 1);
        http_send_error(c, 503, "broker unavailable", NULL);
    }
}

/* A pending plain upgrade fails: an HTTP 503 written by hand (the HTTP
 * side is done with this connection). */
static void fail_pending(conn_t *c)
{
    static const char body[] = "503 Service Unavailable: broker unavailable\n";
    chat_conn_gone(c);
    STAT_ADD(c->w->stats, handshake_failures[HS_FAIL_UNAVAILABLE], 1);
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 503 Service Unavailable\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%s",
                        sizeof body - 1, body);
    conn_close_after_write(c, c->w->cfg->close_timeout_ms);
}

void ws_session_plain_ready(conn_t *c, bool ok)
{
    if (c->ws == NULL || c->state != CONN_WS_PENDING)
        return;
    if (!ok) {
        fail_pending(c);
        return;
    }
    ws_answer_t *a = c->ws->answer;
    c->ws->answer = NULL;
    ws_open(c, a);
    free(a);
    ws_session_on_read(c);
}

/* ---- closing ------------------------------------------------------------- */

/* Sends a close frame and waits for the peer's (close_timeout). */
static void start_close(conn_t *c, uint16_t code, const char *reason)
{
    struct ws_session *s = c->ws;
    if (c->state == CONN_WS_PENDING) {
        conn_close(c);
        return;
    }
    if (c->state != CONN_WS_OPEN || s->close_sent)
        return;
    queue_close(c, code, reason);
    chat_conn_gone(c);
    conn_set_state(c, CONN_WS_CLOSING);
    conn_set_timeout(c, c->w->cfg->close_timeout_ms);
    log_debug("ws_close_sent", "id=%" PRIu64 " code=%u reason=\"%s\"", c->id,
              code, reason);
}

void ws_session_close(conn_t *c, uint16_t code, const char *reason)
{
    if (c->ws != NULL)
        start_close(c, code, reason);
}

/* Keeps only the queued bytes up to a frame boundary past what the socket
 * already took, so a close frame can follow soon and cleanly. */
static void trim_output(conn_t *c)
{
    struct ws_session *s = c->ws;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t pending = evbuffer_get_length(out);
    uint64_t written = s->q_total - pending, best = UINT64_MAX;
    for (unsigned i = 0; i < WS_CKPT; i++)
        if (s->ckpt[i] >= written && s->ckpt[i] < best)
            best = s->ckpt[i];
    if (best == UINT64_MAX || best - written >= pending)
        return;
    struct evbuffer *keep = evbuffer_new();
    if (keep == NULL)
        return;
    /* the bufferevent keeps the start of its output frozen (only its
     * write callback drains it): thaw it for the cut */
    evbuffer_unfreeze(out, 1);
    if (evbuffer_remove_buffer(out, keep, (size_t)(best - written)) ==
        (int)(best - written)) {
        evbuffer_drain(out, evbuffer_get_length(out));
        evbuffer_add_buffer(out, keep);
    } else { /* out of memory: put back what moved, cut nothing */
        evbuffer_prepend_buffer(out, keep);
    }
    evbuffer_freeze(out, 1);
    evbuffer_free(keep);
}

void ws_session_slow_consumer(conn_t *c)
{
    struct ws_session *s = c->ws;
    if (s == NULL || c->state != CONN_WS_OPEN || s->close_sent)
        return;
    STAT_ADD(c->w->stats, slow_consumer_closes, 1);
    log_info("slow_consumer", "id=%" PRIu64 " peer=%s pending=%zu", c->id,
             conn_peer(c), conn_output_pending(c));
    trim_output(c);
    queue_close(c, WS_CLOSE_TRY_AGAIN, "slow consumer");
    chat_conn_gone(c);
    conn_close_after_write(c, c->w->cfg->close_timeout_ms);
}

/* ---- input --------------------------------------------------------------- */

static void protocol_close(conn_t *c, uint16_t code, const char *reason)
{
    STAT_ADD(c->w->stats, protocol_closes, 1);
    log_info("ws_protocol_close",
             "id=%" PRIu64 " peer=%s code=%u "
             "reason=\"%s\"",
             c->id, conn_peer(c), code, reason);
    start_close(c, code, reason);
}

static void on_close_frame(conn_t *c, const ws_message_t *m)
{
    struct ws_session *s = c->ws;
    if (s->close_sent) {
        conn_close(c); /* the handshake is complete */
        return;
    }
    queue_close(c,
                m->close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NO_STATUS
                                                    : m->close_code,
                NULL);
    chat_conn_gone(c);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
        conn_close_when_written(c, c->w->cfg->close_timeout_ms);
    else /* bytes after a close frame: let them not turn into a reset */
        conn_close_after_write(c, c->w->cfg->close_timeout_ms);
}

static void on_plain_line(conn_t *c, const uint8_t *p, size_t len)
{
    if (len > (size_t)c->w->cfg->max_text) {
        protocol_close(c, WS_CLOSE_TOO_BIG, "line too long");
        return;
    }
    if (len == 0)
        return; /* an empty line is no chat line */
    if (chat_plain_say(c, (const char *)p, len) != 0) {
        log_warn("plain_line_refused",
                 "id=%" PRIu64 " reason=\"broker "
                 "unavailable\"",
                 c->id);
        start_close(c, WS_CLOSE_TRY_AGAIN, "broker unavailable, retry");
    }
}

/* A message c cannot continue after (its inflater's context is lost, or
 * the data is invalid): no more frames are read. */
static void fail_message(conn_t *c, uint16_t code, const char *reason)
{
    c->ws->parse_failed = true;
    protocol_close(c, code, reason);
}

static const char *inflate_error(int rc)
{
    switch (rc) {
    case PMD_ERR_TOO_BIG:
        return "message too big";
    case PMD_ERR_DATA:
        return "invalid compressed data";
    default:
        return "out of memory";
    }
}

/* Inflates compressed message m into the worker's buffer, bounded by
 * max_message.  Returns 0, or -1 after failing c. */
static int inflate_message(conn_t *c, const ws_message_t *m)
{
    struct ws_session *s = c->ws;
    size_t max = (size_t)c->w->cfg->max_message;
    if (!wsz.ready) {
        pmd_inflater_init(&wsz.shared, PMD_MAX_WINDOW_BITS, false);
        wsz.ready = true;
    }
    int rc =
        s->dfl->pmd.client_no_context_takeover
            ? pmd_inflate_oneshot(&wsz.shared, m->data, m->len, max, &wsz.out)
            : pmd_inflate(&s->dfl->inflater, m->data, m->len, max, &wsz.out);
    if (rc != 0) {
        fail_message(c, (uint16_t)pmd_close_code(rc), inflate_error(rc));
        return -1;
    }
    return 0;
}

/* The text of message m in *p, *len: inflated when compressed, then
 * checked as UTF-8 (the frame parser skips compressed text).  Returns 0,
 * or -1 after failing c. */
static int message_text(conn_t *c, const ws_message_t *m, const uint8_t **p,
                        size_t *len)
{
    if (!m->compressed) {
        *p = m->data;
        *len = m->len;
        return 0;
    }
    if (inflate_message(c, m) != 0)
        return -1;
    *p = wsz.out.len > 0 ? wsz.out.data : (const uint8_t *)"";
    *len = wsz.out.len;
    if (!utf8_valid(*p, *len)) {
        fail_message(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8");
        return -1;
    }
    return 0;
}

typedef enum { RATE_OK, RATE_OVER, RATE_FLOOD } rate_t;

/* Takes a token for a data message of c: RATE_OK, RATE_OVER (drop it),
 * or RATE_FLOOD once more than rate_burst messages in a row were over. */
static rate_t rate_check(conn_t *c)
{
    struct ws_session *s = c->ws;
    const config_t *cfg = c->w->cfg;
    if (cfg->rate_limit <= 0 ||
        ratelimit_take(&s->rl, &rate_policy, util_mono_ms())) {
        s->over = 0;
        return RATE_OK;
    }
    if (++s->over > (uint64_t)cfg->rate_burst)
        return RATE_FLOOD;
    log_debug("rate_limited", "id=%" PRIu64 " over=%" PRIu32, c->id, s->over);
    return RATE_OVER;
}

/* A text message: inflated, rate-limited, then a request or a line. */
static void on_text(conn_t *c, const ws_message_t *m)
{
    const uint8_t *p;
    size_t len;
    if (message_text(c, m, &p, &len) != 0)
        return;
    rate_t rate = rate_check(c);
    if (rate == RATE_FLOOD)
        protocol_close(c, WS_CLOSE_POLICY, "flooding");
    else if (c->ws->json && rate == RATE_OVER)
        chat_json_rate_limited(c, (const char *)p, len);
    else if (c->ws->json)
        chat_on_json(c, (const char *)p, len);
    else if (rate == RATE_OK)
        on_plain_line(c, p, len); /* over the limit: dropped, untold */
}

static void on_message(conn_t *c, const ws_message_t *m)
{
    struct ws_session *s = c->ws;
    switch (m->opcode) {
    case WS_OP_PING:
        if (!s->close_sent)
            queue_frame(c, WS_OP_PONG, m->data, m->len);
        break;
    case WS_OP_PONG:
        s->ping_out = false;
        break;
    case WS_OP_CLOSE:
        on_close_frame(c, m);
        break;
    case WS_OP_BINARY:
        if (!s->close_sent)
            protocol_close(c, WS_CLOSE_UNSUPPORTED,
                           "binary messages are not supported");
        break;
    case WS_OP_TEXT:
        if (s->close_sent)
            break;
        STAT_ADD(c->w->stats, messages_in, 1);
        on_text(c, m);
        break;
    default:
        break;
    }
}

/* Input from c made the gateway queue answers (pongs, replies): a client
 * that sends but does not read is a slow consumer too.  Never called in a
 * fan-out (this is c's read callback). */
static void check_backlog(conn_t *c)
{
    if (c->state == CONN_WS_OPEN &&
        conn_output_pending(c) > (size_t)c->w->cfg->send_queue)
        ws_session_slow_consumer(c);
}

/* The parser for c's input: its own when a frame is partly read, else
 * the worker's (or, nested, a new one).  NULL when out of memory. */
static ws_parser_t *parser_get(conn_t *c)
{
    struct ws_session *s = c->ws;
    if (s->parser != NULL)
        return s->parser;
    ws_parser_config_t pc = {
        .max_message = (size_t)c->w->cfg->max_message,
        .require_mask = true,
        .reject_mask = false,
        .allowed_rsv = s->dfl != NULL ? WS_RSV1 : 0,
    };
    if (!wsp.busy) {
        ws_parser_init(&wsp.p, &pc);
        wsp.busy = true;
        return &wsp.p;
    }
    s->parser = malloc(sizeof *s->parser);
    if (s->parser != NULL)
        ws_parser_init(s->parser, &pc);
    return s->parser;
}

/* The read is over: c keeps a parser only if a frame is partly read (the
 * worker's moves into a new one then; it holds no pointer into itself). */
static void parser_put(conn_t *c, ws_parser_t *p)
{
    struct ws_session *s = c->ws;
    if (p != &wsp.p) {
        if (ws_parser_idle(p)) {
            ws_parser_free(p);
            free(p);
            s->parser = NULL;
        }
        return;
    }
    wsp.busy = false;
    if (s->parse_failed || ws_parser_idle(p)) {
        ws_parser_free(p);
        return;
    }
    s->parser = malloc(sizeof *s->parser);
    if (s->parser == NULL) {
        ws_parser_free(p);
        fail_message(c, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    memcpy(s->parser, p, sizeof *p); /* the message buffer moves too */
}

void ws_session_on_read(conn_t *c)
{
    struct ws_session *s = c->ws;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (s == NULL || c->state == CONN_WS_PENDING)
        return; /* no frame may come before the 101 */
    if (evbuffer_get_length(in) == 0)
        return;
    s->last_rx_ms = util_mono_ms();
    ws_parser_t *p = NULL;
    if (!s->parse_failed && (p = parser_get(c)) == NULL)
        fail_message(c, WS_CLOSE_INTERNAL, "out of memory");
    while ((c->state == CONN_WS_OPEN || c->state == CONN_WS_CLOSING) &&
           p != NULL && !s->parse_failed && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ws_message_t m;
        ssize_t n = ws_parser_feed(p, v.iov_base, v.iov_len, &m);
        if (n < 0) {
            s->parse_failed = true;
            protocol_close(c, p->error_code, p->error);
            break;
        }
        evbuffer_drain(in, (size_t)n);
        STAT_ADD(c->w->stats, bytes_in, n);
        if (m.opcode != WS_OP_CONT) {
            on_message(c, &m);
            check_backlog(c);
        }
    }
    if (p != NULL)
        parser_put(c, p);
    if (s->parse_failed || c->state == CONN_DRAINING)
        evbuffer_drain(in, evbuffer_get_length(in));
}

/* ---- timers -------------------------------------------------------------- */

static void on_idle_timer(conn_t *c)
{
    struct ws_session *s = c->ws;
    const config_t *cfg = c->w->cfg;
    uint64_t now = util_mono_ms();
    if (s->ping_out && s->last_rx_ms > s->ping_sent_ms)
        s->ping_out = false; /* the peer spoke: it is alive */
    if (s->ping_out) {
        uint64_t waited = now - s->ping_sent_ms;
        if (waited >= (uint64_t)cfg->pong_timeout_ms) {
            log_info("ws_peer_dead",
                     "id=%" PRIu64 " peer=%s silent_ms=%" PRIu64, c->id,
                     conn_peer(c), now - s->last_rx_ms);
            conn_close(c);
            return;
        }
        conn_set_timeout(c, cfg->pong_timeout_ms - (int64_t)waited);
        return;
    }
    uint64_t idle = now - s->last_rx_ms;
    if (idle < (uint64_t)cfg->ping_interval_ms) {
        conn_set_timeout(c, cfg->ping_interval_ms - (int64_t)idle);
        return;
    }
    queue_frame(c, WS_OP_PING, NULL, 0);
    s->ping_out = true;
    s->ping_sent_ms = now;
    conn_set_timeout(c, cfg->pong_timeout_ms);
}

void ws_session_on_timer(conn_t *c)
{
    if (c->ws == NULL) {
        conn_close(c);
        return;
    }
    switch (c->state) {
    case CONN_WS_PENDING:
        ws_session_plain_ready(c, false);
        break;
    case CONN_WS_OPEN:
        on_idle_timer(c);
        break;
    default:
        conn_close(c); /* the peer's close frame did not come in time */
        break;
    }
}

/* ---- lifetime ------------------------------------------------------------ */

void ws_session_on_close(conn_t *c)
{
    struct ws_session *s = c->ws;
    if (s == NULL)
        return;
    chat_conn_gone(c);
    if (s->opened) {
        s->opened = false;
        STAT_ADD(c->w->stats, ws_json_open, s->json ? -1 : 0);
        STAT_ADD(c->w->stats, ws_plain_open, s->json ? 0 : -1);
    }
}

void ws_session_free(struct ws_session *s)
{
    if (s == NULL)
        return;
    if (s->parser != NULL)
        ws_parser_free(s->parser);
    free(s->parser);
    if (s->dfl != NULL)
        pmd_inflater_free(&s->dfl->inflater);
    free(s->dfl);
    free(s->answer);
    free(s);
}

void ws_session_worker_free(void)
{
    if (wsz.ready)
        pmd_inflater_free(&wsz.shared);
    pmd_buf_free(&wsz.out);
    wsz.ready = false;
}

const pmd_params_t *ws_session_deflate(const conn_t *c)
{
    return c->ws != NULL && c->ws->dfl != NULL ? &c->ws->dfl->pmd : NULL;
}

bool ws_session_is_json(const conn_t *c)
{
    return c->ws != NULL && c->ws->json;
}

struct member **ws_session_members(conn_t *c)
{
    return &c->ws->members;
}
