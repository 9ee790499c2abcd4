/*
 * api.c - the HTTP API (api.h): authentication, routing of /api paths, the
 * JSON body of a POST, the broker request and its answer.
 *
 * The token check hashes both tokens with SHA-256 and compares the digests
 * with CRYPTO_memcmp, so the time taken tells neither where the tokens
 * differ nor how long the configured one is.
 *
 * Requests in flight live in a fixed table; an id carries its slot in its
 * low bits (API_SLOT_BITS) and a counter above them, so an answer finds
 * its entry at once and a stale answer (slot reused since) is recognized.
 */
#include "api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "broker_link.h"
#include "http.h"
#include "log.h"
#include "names.h"

#define API_SLOT_BITS 10
#define API_SLOT_MASK ((1ull << API_SLOT_BITS) - 1)
#define API_PREFIX "/api/rooms/"
#define API_JSON "application/json"
#define API_NO_STORE "Cache-Control: no-store\r\n"

_Static_assert((1u << API_SLOT_BITS) == API_MAX_PENDING,
               "an id's slot bits index the whole table");

typedef enum { API_SAY = 1, API_HIST } api_kind_t;

typedef struct api_req {
    bool used;
    bool sent; /* the broker request is out: waiting for its answer */
    api_kind_t kind;
    uint64_t id; /* the broker request's conn id (API_ID_BIT set) */
    conn_t *c;   /* the connection; c->api points back */
    char room[NAME_MAX_ROOM + 1];
    size_t room_len;
} api_req_t;

static api_req_t pool[API_MAX_PENDING];
static uint64_t id_counter;

/* ---- the table of requests ------------------------------------------------
 */

/* A free entry tied to c for room, or NULL when the table is full. */
static api_req_t *req_alloc(conn_t *c, api_kind_t kind, const char *room,
                            size_t room_len)
{
    static size_t hint;
    for (size_t i = 0; i < API_MAX_PENDING; i++) {
        size_t slot = (hint + i) % API_MAX_PENDING;
        api_req_t *r = &pool[slot];
        if (r->used)
            continue;
        memset(r, 0, sizeof *r);
        r->used = true;
        r->kind = kind;
        r->id = API_ID_BIT | (++id_counter << API_SLOT_BITS) | slot;
        r->c = c;
        memcpy(r->room, room, room_len);
        r->room_len = room_len;
        c->api = r;
        hint = slot + 1;
        return r;
    }
    return NULL;
}

static void req_free(api_req_t *r)
{
    if (r->c != NULL)
        r->c->api = NULL;
    memset(r, 0, sizeof *r);
}

void api_conn_gone(conn_t *c)
{
    if (c->api != NULL)
        req_free(c->api);
}

bool api_waiting(const conn_t *c)
{
    return c->api != NULL && c->api->sent;
}

/* ---- authentication -------------------------------------------------------
 */

static bool sha256(const void *p, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    return EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32;
}

/* 0 when req carries "Authorization: Bearer <token>", 401 otherwise (with
 * *why set), 400 for several Authorization headers. */
static int auth_check(const char *token, const http_request_t *req,
                      const char **why)
{
    const http_header_t *h = http_find_header(req, "Authorization");
    unsigned char want[32], got[32];
    *why = "missing bearer token";
    if (http_count_header(req, "Authorization") > 1)
        return 400;
    if (h == NULL || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7))
        return 401;
    const char *t = h->value + 7;
    size_t tlen = h->value_len - 7;
    while (tlen > 0 && *t == ' ') {
        t++;
        tlen--;
    }
    *why = "invalid token";
    if (!sha256(token, strlen(token), want) || !sha256(t, tlen, got))
        return 401;
    return CRYPTO_memcmp(want, got, sizeof want) == 0 ? 0 : 401;
}

/* ---- routing ----------------------------------------------------------------
 */

bool api_is_path(const char *path, size_t plen)
{
    return (plen == 4 && memcmp(path, "/api", 4) == 0) ||
           (plen >= 5 && memcmp(path, "/api/", 5) == 0);
}

/* Splits "/api/rooms/<room>/<what>"; 0, or -1 for any other path. */
static int parse_path(const char *path, size_t plen, const char **room,
                      size_t *room_len, api_kind_t *kind)
{
    size_t pre = strlen(API_PREFIX);
    if (plen <= pre || memcmp(path, API_PREFIX, pre) != 0)
        return -1;
    const char *r = path + pre;
    const char *slash = memchr(r, '/', plen - pre);
    if (slash == NULL)
        return -1;
    const char *what = slash + 1;
    size_t wlen = plen - (size_t)(what - path);
    if (wlen == 8 && memcmp(what, "messages", 8) == 0)
        *kind = API_SAY;
    else if (wlen == 7 && memcmp(what, "history", 7) == 0)
        *kind = API_HIST;
    else
        return -1;
    *room = r;
    *room_len = (size_t)(slash - r);
    return 0;
}

/* The checks every API request goes through, in order; true when c was
 * answered. */
static bool refuse_head(conn_t *c, const http_request_t *req, const char *path,
                        size_t plen, const char **room, size_t *room_len,
                        api_kind_t *kind)
{
    const char *why;
    int st;
    if (c->w->cfg->api_token[0] == '\0')
        http_send_error(c, 404, "HTTP API disabled", NULL);
    else if ((st = auth_check(c->w->cfg->api_token, req, &why)) != 0)
        http_send_error(c, st,
                        st == 400 ? "several Authorization headers" : why,
                        "WWW-Authenticate: Bearer realm=\"parley\"\r\n");
    else if (parse_path(path, plen, room, room_len, kind) != 0)
        http_send_error(c, 404, "no such API endpoint", NULL);
    else if (*kind == API_SAY && !http_method_is(req, "POST"))
        http_send_error(c, 405, "method not allowed", "Allow: POST\r\n");
    else if (*kind == API_HIST && !http_method_is(req, "GET"))
        http_send_error(c, 405, "method not allowed", "Allow: GET\r\n");
    else if (!name_room_valid(*room, *room_len))
        http_send_error(c, 404, "invalid room", NULL);
    else
        return false;
    return true;
}

/* ---- broker requests --------------------------------------------------------
 */

static wire_buf_t wbuf(const void *p, size_t len)
{
    wire_buf_t b = {.p = p, .len = len};
    return b;
}

/* Sends w for r and waits for the answer; on failure answers 503 and
 * frees r. */
static void send_and_wait(api_req_t *r, const wire_msg_t *w)
{
    conn_t *c = r->c;
    worker_t *wk = c->w;
    if (!broker_link_up(wk->link) || broker_link_send(wk->link, w) != 0) {
        req_free(r);
        http_send_error(c, 503, "broker unavailable", NULL);
        return;
    }
    r->sent = true;
    if (c->state == CONN_HTTP_HEAD)
        conn_set_state(c, CONN_HTTP_BODY);
    c->body_need = 0;
    conn_set_timeout(c, wk->cfg->request_timeout_ms);
}

void api_on_timeout(conn_t *c)
{
    api_req_t *r = c->api;
    log_info("api_request_timeout", "kind=%d room=%.*s", r ? (int)r->kind : 0,
             r ? (int)r->room_len : 0, r ? r->room : "");
    if (r != NULL)
        req_free(r);
    http_send_error(c, 503, "broker did not answer", NULL);
}

/* ---- POST /api/rooms/<room>/messages ----------------------------------------
 */

static void start_say(conn_t *c, const http_request_t *req, size_t clen,
                      bool keep, const char *room, size_t room_len)
{
    const http_header_t *e = http_find_header(req, "Expect");
    if (http_find_header(req, "Content-Length") == NULL)
        http_send_error(c, 411, "Content-Length required", NULL);
    else if (clen > (size_t)c->w->cfg->api_max_body)
        http_send_error(c, 413, "request body too large", NULL);
    else if (clen == 0)
        http_send_error(c, 400, "body is not JSON", NULL);
    else if (req_alloc(c, API_SAY, room, room_len) == NULL)
        http_send_error(c, 503, "too many API requests in flight", NULL);
    else {
        c->keep_alive = keep; /* the body is read */
        http_read_body(c, clen,
                       e != NULL && http_has_token(e->value, e->value_len,
                                                   "100-continue"));
    }
}

/* Checks a message body; returns 0 with nick and text (borrowed from
 * root), or an HTTP status with *why set. */
static int check_message(const json_t *root, size_t max_text, const char **why,
                         const json_t **nick, const json_t **text)
{
    *nick = json_object_get(root, "nick");
    *text = json_object_get(root, "text");
    *why = NULL;
    if (!json_is_object(root))
        *why = "body must be a JSON object";
    else if (!json_is_string(*nick))
        *why = "nick must be a string";
    else if (!name_nick_valid(json_string_value(*nick),
                              json_string_length(*nick)))
        *why = "nick must be 1 to 32 bytes of UTF-8 without control "
               "characters";
    else if (!json_is_string(*text))
        *why = "text must be a string";
    else if (json_string_length(*text) == 0)
        *why = "text is empty";
    else if (json_string_length(*text) > max_text) {
        *why = "text too long";
        return 413;
    }
    return *why != NULL ? 400 : 0;
}

void api_on_body(conn_t *c, const char *body, size_t len)
{
    api_req_t *r = c->api;
    json_error_t jerr;
    const json_t *nick, *text;
    const char *why = "body is not JSON";
    json_t *root = r != NULL ? json_loadb(body, len, 0, &jerr) : NULL;
    int st = root != NULL ? check_message(root, (size_t)c->w->cfg->max_text,
                                          &why, &nick, &text)
                          : 400;
    if (r == NULL || st != 0) {
        if (r != NULL)
            req_free(r);
        http_send_error(c, r != NULL ? st : 500, r ? why : "no API request",
                        NULL);
        json_decref(root);
        return;
    }
    wire_msg_t w = {
        .type = WIRE_SAY,
        .conn = r->id,
        .room = wbuf(r->room, r->room_len),
        .nick = wbuf(json_string_value(nick), json_string_length(nick)),
        .text = wbuf(json_string_value(text), json_string_length(text))};
    send_and_wait(r, &w);
    json_decref(root);
}

/* ---- GET /api/rooms/<room>/history ------------------------------------------
 */

/* A decimal uint64 (digits only, no overflow); -1 otherwise. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

typedef struct {
    bool has_since;
    uint64_t since;
    uint64_t limit;
} hist_args_t;

/* Reads since= and limit= from the query (other parameters are ignored);
 * NULL, or a reason for a 400. */
static const char *parse_query(const char *q, size_t qlen, hist_args_t *a)
{
    a->has_since = false;
    a->since = 0;
    a->limit = API_DEFAULT_LIMIT;
    while (q != NULL && qlen > 0) {
        const char *amp = memchr(q, '&', qlen);
        size_t n = amp ? (size_t)(amp - q) : qlen;
        if (n >= 5 && memcmp(q, "since", 5) == 0 && (n == 5 || q[5] == '=')) {
            if (n == 5 || parse_u64(q + 6, n - 6, &a->since) != 0)
                return "since must be a sequence number";
            a->has_since = true;
        } else if (n >= 5 && memcmp(q, "limit", 5) == 0 &&
                   (n == 5 || q[5] == '=')) {
            if (n == 5 || parse_u64(q + 6, n - 6, &a->limit) != 0 ||
                a->limit == 0)
                return "limit must be a positive integer";
        }
        q = amp ? amp + 1 : NULL;
        qlen = amp ? qlen - n - 1 : 0;
    }
    if (a->limit > API_MAX_LIMIT)
        a->limit = API_MAX_LIMIT;
    return NULL;
}

static void start_hist(conn_t *c, const char *query, size_t qlen, size_t clen,
                       const char *room, size_t room_len)
{
    hist_args_t a;
    const char *bad = parse_query(query, qlen, &a);
    api_req_t *r = NULL;
    if (clen > 0)
        http_send_error(c, 413, "request body not allowed", NULL);
    else if (bad != NULL)
        http_send_error(c, 400, bad, NULL);
    else if ((r = req_alloc(c, API_HIST, room, room_len)) == NULL)
        http_send_error(c, 503, "too many API requests in flight", NULL);
    if (r == NULL)
        return;
    wire_msg_t w = {.type = WIRE_HIST,
                    .conn = r->id,
                    .room = wbuf(r->room, r->room_len),
                    .flags = a.has_since ? WIRE_F_HAS_SINCE : 0,
                    .since = a.since,
                    .limit = (uint32_t)a.limit};
    send_and_wait(r, &w);
}

void api_on_head(conn_t *c, const http_request_t *req, const char *path,
                 size_t plen, const char *query, size_t qlen, size_t clen,
                 bool chunked)
{
    const char *room = NULL;
    size_t room_len = 0;
    api_kind_t kind = API_SAY;
    bool keep = c->keep_alive;
    if (chunked || clen > 0)
        c->keep_alive = false; /* unless the body is read */
    if (refuse_head(c, req, path, plen, &room, &room_len, &kind))
        return;
    if (chunked)
        http_send_error(c, 501, "Transfer-Encoding not supported", NULL);
    else if (kind == API_SAY)
        start_say(c, req, clen, keep, room, room_len);
    else
        start_hist(c, query, qlen, clen, room, room_len);
}

/* ---- broker answers ---------------------------------------------------------
 */

static void answer_ack(conn_t *c, const api_req_t *r, const wire_msg_t *m)
{
    char body[160];
    int n =
        snprintf(body, sizeof body, "{\"room\":\"%.*s\",\"seq\":%" PRIu64 "}\n",
                 (int)r->room_len, r->room, m->seq);
    http_send_response(c, 200, API_JSON, body, (size_t)n, API_NO_STORE);
}

/* The msg object of history item i (NULL when out of memory or when the
 * item is not valid UTF-8). */
static json_t *history_item(const api_req_t *r, const wire_msg_t *m, size_t i)
{
    wire_item_t it;
    wire_item(m, i, &it);
    return json_pack("{s:s, s:s%, s:I, s:I, s:s%, s:s%}", "type", "msg", "room",
                     r->room, r->room_len, "seq", (json_int_t)it.seq, "ts",
                     (json_int_t)it.ts, "nick", (const char *)it.nick.p,
                     it.nick.len, "text", (const char *)it.text.p, it.text.len);
}

/* The history document, or NULL when it cannot be built. */
static json_t *history_doc(const api_req_t *r, const wire_msg_t *m)
{
    json_t *msgs = json_array();
    json_t *root = json_pack("{s:s%, s:s%, s:I}", "room", r->room, r->room_len,
                             "epoch", (const char *)m->epoch.p, m->epoch.len,
                             "seq", (json_int_t)m->seq);
    bool ok = msgs != NULL && root != NULL;
    for (size_t i = 0; ok && i < m->num_items; i++)
        ok = json_array_append_new(msgs, history_item(r, m, i)) == 0;
    if (ok && json_object_set_new(root, "messages", msgs) == 0)
        return root;
    if (ok)
        msgs = NULL; /* json_object_set_new() released it */
    json_decref(msgs);
    json_decref(root);
    return NULL;
}

static void answer_history(conn_t *c, const api_req_t *r, const wire_msg_t *m)
{
    json_t *doc = history_doc(r, m);
    char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (s == NULL) {
        log_error("api_history_failed", "room=%.*s items=%zu", (int)r->room_len,
                  r->room, m->num_items);
        http_send_error(c, 500, "cannot encode history", NULL);
        return;
    }
    size_t n = strlen(s);
    s[n] = '\n'; /* replaces the NUL: the length is passed on */
    http_send_response(c, 200, API_JSON, s, n + 1, API_NO_STORE);
    free(s);
}

static void answer(conn_t *c, const api_req_t *r, const wire_msg_t *m)
{
    if (r->kind == API_SAY && m->type == WIRE_ACK) {
        answer_ack(c, r, m);
    } else if (r->kind == API_HIST && m->type == WIRE_HISTORY) {
        answer_history(c, r, m);
    } else {
        char why[200];
        snprintf(why, sizeof why, "broker refused the request: %.*s",
                 (int)(m->text.len < 120 ? m->text.len : 120),
                 m->text.p ? (const char *)m->text.p : "");
        http_send_error(c, 503, why, NULL);
    }
}

void api_on_reply(worker_t *w, const wire_msg_t *m)
{
    (void)w;
    api_req_t *r = &pool[m->conn & API_SLOT_MASK];
    if (!r->used || !r->sent || r->id != m->conn) {
        log_debug("api_reply_unmatched", "type=%s conn=%" PRIu64,
                  wire_type_name(m->type), m->conn);
        return;
    }
    api_req_t copy = *r;
    conn_t *c = r->c;
    req_free(r);
    answer(c, &copy, m);
}
