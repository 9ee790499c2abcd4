/*
 * chat.c - the chat side of a worker (chat.h): parley.v1 requests
 * (PROTOCOL.md section 3), the requests in flight to the broker with their
 * deadlines, the broker's replies and published messages, joins that meet
 * the live stream without a gap or a duplicate, and resync after a broker
 * restart.  One worker per process, so the chat state is file-static.
 */
#include "chat.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <zmq.h>

#include "api.h"
#include "broker_link.h"
#include "chat_proto.h"
#include "conn.h"
#include "frame_cache.h"
#include "log.h"
#include "names.h"
#include "rooms.h"
#include "util.h"
#include "ws_session.h"

#define CHAT_MAX_PENDING 100000 /* requests in flight, per worker */
#define SINCE_NONE UINT64_MAX   /* since beyond any seq: replay nothing */
#define PLAIN_NICK "anonymous"

typedef enum {
    REQ_JOIN,       /* a client's join */
    REQ_REJOIN,     /* join of a room the connection is in: nick change */
    REQ_REREG,      /* silent re-registration after a broker restart */
    REQ_EPOCH_JOIN, /* silent join again after an epoch change */
    REQ_SAY,
    REQ_WHO,
    REQ_HIST_ROOM,  /* fill a room's hole, or sync it (plain members) */
    REQ_HIST_MEMBER /* what a joining member needs beyond the ring */
} req_kind_t;

typedef struct req {
    struct req *next, *prev;
    req_kind_t kind;
    uint64_t id; /* conn id; the request id for HIST */
    conn_t *c;   /* NULL once the connection is gone */
    member_t *m; /* NULL once the member is gone */
    char room[NAME_MAX_ROOM + 1];
    size_t room_len;
    char ref[NAME_MAX_REF + 1]; /* the client's ref */
    size_t ref_len;
    bool has_ref;
    bool wire_ref; /* the ref was sent to the broker (SAY, WHO) */
    uint64_t deadline;
} req_t;

static struct {
    worker_t *w;
    req_t *head, *tail;
    size_t npending;
    struct event *timer;
    uint64_t next_hist_id;
} chat;

/* ---- JSON output ------------------------------------------------------- */

/* A small string builder for the replies (no jansson on output). */
typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
    char stack[1024];
} jb_t;

static void jb_init(jb_t *b)
{
    b->p = b->stack;
    b->len = 0;
    b->cap = sizeof b->stack;
    b->failed = false;
}

static bool jb_room(jb_t *b, size_t n)
{
    if (b->failed)
        return false;
    if (b->len + n <= b->cap)
        return true;
    size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
    char *p = b->p == b->stack ? malloc(cap) : realloc(b->p, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    if (b->p == b->stack)
        memcpy(p, b->stack, b->len);
    b->p = p;
    b->cap = cap;
    return true;
}

static void jb_raw(jb_t *b, const char *s, size_t n)
{
    if (jb_room(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void jb_lit(jb_t *b, const char *s)
{
    jb_raw(b, s, strlen(s));
}

/* A JSON string: quotes and escaping included. */
static void jb_str(jb_t *b, const char *s, size_t n)
{
    size_t e = json_escape_len(s, n);
    if (!jb_room(b, e + 2))
        return;
    b->p[b->len++] = '"';
    b->len += json_escape(b->p + b->len, s, n);
    b->p[b->len++] = '"';
}

static void jb_u64(jb_t *b, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);
    jb_raw(b, num, (size_t)n);
}

/* Sends the built message to c and releases the builder. */
static void jb_send(jb_t *b, conn_t *c)
{
    if (!b->failed && c != NULL)
        ws_session_send_text(c, b->p, b->len);
    if (b->p != b->stack)
        free(b->p);
}

static void send_error(conn_t *c, const char *code, const char *ref,
                       size_t ref_len, bool has_ref, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void send_error(conn_t *c, const char *code, const char *ref,
                       size_t ref_len, bool has_ref, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof msg)
        n = (int)sizeof msg - 1;
    jb_t b;
    jb_init(&b);
    jb_lit(&b, "{\"type\":\"error\",\"code\":");
    jb_str(&b, code, strlen(code));
    if (has_ref) {
        jb_lit(&b, ",\"ref\":");
        jb_str(&b, ref, ref_len);
    }
    jb_lit(&b, ",\"message\":");
    jb_str(&b, msg, (size_t)n);
    jb_lit(&b, "}");
    STAT_ADD(c->w->stats, errors_sent, 1);
    jb_send(&b, c);
}

static void req_error(const req_t *r, const char *code, const char *msg)
{
    if (r->c != NULL)
        send_error(r->c, code, r->ref, r->ref_len, r->has_ref, "%s", msg);
}

static void send_joined(member_t *m)
{
    room_t *r = m->room;
    jb_t b;
    jb_init(&b);
    jb_lit(&b, "{\"type\":\"joined\",\"room\":");
    jb_str(&b, r->name, r->name_len);
    jb_lit(&b, ",\"nick\":");
    jb_str(&b, m->nick, m->nick_len);
    jb_lit(&b, ",\"epoch\":");
    jb_str(&b, r->epoch, r->epoch_len);
    jb_lit(&b, ",\"seq\":");
    jb_u64(&b, m->last_seq);
    jb_lit(&b, m->recovered ? ",\"recovered\":true" : ",\"recovered\":false");
    jb_lit(&b, ",\"members\":");
    jb_u64(&b, m->members);
    jb_lit(&b, "}");
    jb_send(&b, m->c);
}

/* ---- requests in flight -------------------------------------------------- */

static void arm_timer(void)
{
    if (chat.head == NULL) {
        evtimer_del(chat.timer);
        return;
    }
    uint64_t now = util_mono_ms();
    uint64_t ms = chat.head->deadline > now ? chat.head->deadline - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(chat.timer, &tv);
}

static req_t *req_new(req_kind_t kind, uint64_t id, conn_t *c, member_t *m,
                      const char *room, size_t room_len)
{
    if (chat.npending >= CHAT_MAX_PENDING)
        return NULL;
    req_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->kind = kind;
    r->id = id;
    r->c = c;
    r->m = m;
    memcpy(r->room, room, room_len);
    r->room_len = room_len;
    return r;
}

static void req_set_ref(req_t *r, const char *ref, size_t len, bool has)
{
    r->has_ref = has;
    if (has) {
        memcpy(r->ref, ref, len);
        r->ref_len = len;
    }
}

/* Appends r to the FIFO (requests have the same timeout, so the head has
 * the earliest deadline). */
static void req_track(req_t *r)
{
    r->deadline = util_mono_ms() + (uint64_t)chat.w->cfg->request_timeout_ms;
    r->prev = chat.tail;
    if (chat.tail != NULL)
        chat.tail->next = r;
    else
        chat.head = r;
    chat.tail = r;
    chat.npending++;
    if (r->m != NULL)
        r->m->nreq++;
    if (chat.head == r)
        arm_timer();
}

static void req_unlink(req_t *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        chat.head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        chat.tail = r->prev;
    chat.npending--;
    if (r->m != NULL)
        r->m->nreq--;
    r->m = NULL;
}

static bool same(const char *a, size_t alen, const wire_buf_t *b)
{
    return alen == b->len && (alen == 0 || memcmp(a, b->p, alen) == 0);
}

/* The oldest request of one of kinds (bitmask) for id, in room when given,
 * with the wire ref when given. */
static req_t *req_find(unsigned kinds, uint64_t id, const wire_buf_t *room,
                       const wire_buf_t *ref)
{
    for (req_t *r = chat.head; r != NULL; r = r->next) {
        if (!(kinds & (1u << r->kind)) || r->id != id)
            continue;
        if (room != NULL && !same(r->room, r->room_len, room))
            continue;
        if (ref != NULL && !same(r->ref, r->wire_ref ? r->ref_len : 0, ref))
            continue;
        return r;
    }
    return NULL;
}

/* m is going away: requests naming it forget it. */
static void forget_member(member_t *m)
{
    for (req_t *r = chat.head; r != NULL && m->nreq > 0; r = r->next) {
        if (r->m == m) {
            r->m = NULL;
            m->nreq--;
        }
    }
}

static void forget_conn(conn_t *c)
{
    for (req_t *r = chat.head; r != NULL; r = r->next)
        if (r->c == c)
            r->c = NULL;
}

/* Sends a request; -1 when the broker is unreachable. */
static int send_wire(const wire_msg_t *m)
{
    if (chat.w->link == NULL)
        return -1;
    return broker_link_send(chat.w->link, m);
}

static wire_buf_t wbuf(const void *p, size_t len)
{
    wire_buf_t b = {.p = p, .len = len};
    return b;
}

/* ---- rooms and members --------------------------------------------------- */

static void handle_act(room_t *r, int act);

static void member_drop(member_t *m, bool tell_broker)
{
    if (tell_broker && m->json) {
        room_t *r = m->room;
        wire_msg_t w = {.type = WIRE_LEAVE,
                        .conn = m->c->id,
                        .room = wbuf(r->name, r->name_len)};
        if (send_wire(&w) != 0)
            log_warn("leave_not_sent", "room=%.*s conn=%" PRIu64,
                     (int)r->name_len, r->name, m->c->id);
    }
    forget_member(m);
    room_remove_member(m);
}

/* Asks the broker for room r's messages after since: for a member
 * (m != NULL) or for the room itself. */
static int send_hist(room_t *r, member_t *m, uint64_t since)
{
    req_t *q = req_new(m ? REQ_HIST_MEMBER : REQ_HIST_ROOM, ++chat.next_hist_id,
                       NULL, m, r->name, r->name_len);
    if (q == NULL)
        return -1;
    wire_msg_t w = {.type = WIRE_HIST,
                    .conn = q->id,
                    .since = since,
                    .flags = WIRE_F_HAS_SINCE,
                    .limit = 0,
                    .room = wbuf(r->name, r->name_len)};
    if (send_wire(&w) != 0) {
        free(q);
        return -1;
    }
    if (m == NULL)
        r->hist_req = q->id;
    req_track(q);
    return 0;
}

/* A room-level HIST unless one is in flight. */
static void room_fetch(room_t *r)
{
    if (r->hist_req != 0)
        return;
    uint64_t since = r->state == ROOM_SYNCING ? SINCE_NONE : r->last;
    if (send_hist(r, NULL, since) != 0)
        log_debug("hist_not_sent", "room=%.*s", (int)r->name_len, r->name);
}

/* m has its replay: from the ring what the room delivered since, then live
 * with `joined`.  When the ring is short, history is asked first (unless
 * force: then what is missing is skipped). */
static void member_seam(member_t *m, bool force)
{
    room_t *r = m->room;
    if (room_member_catch_up(r, m, force) != 0) {
        if (send_hist(r, m, m->last_seq) == 0)
            return;
        room_member_catch_up(r, m, true);
    }
    m->state = MEMBER_LIVE;
    m->rejoin = false;
    send_joined(m);
}

/* Sends the replay items of a JOINED/HISTORY reply that m has not seen. */
static void member_replay(member_t *m, const wire_msg_t *w)
{
    for (size_t i = 0; i < w->num_items; i++) {
        wire_item_t it;
        wire_item(w, i, &it);
        if (it.seq <= m->last_seq)
            continue;
        room_send_item(m->room, m, it.seq, it.ts, &it.nick, &it.text);
        m->last_seq = it.seq;
    }
}

static void join_done(member_t *m, const wire_msg_t *w, bool epoch_join)
{
    room_t *r = m->room;
    int act = 0;
    if (r->state == ROOM_SYNCING)
        act |= room_on_sync(r, &w->epoch, w->seq);
    else if (room_epoch_differs(r, &w->epoch))
        act |= room_epoch_reset(r, &w->epoch);
    if (w->num_items > 0)
        STAT_ADD(chat.w->stats, history_replays, 1);
    member_replay(m, w);
    if (w->seq > m->last_seq)
        m->last_seq = w->seq;
    m->recovered = !epoch_join && (w->flags & WIRE_F_RECOVERED);
    m->members = w->members;
    member_seam(m, false);
    handle_act(r, act);
}

/* Joins m again after an epoch change: silently, since 0, old epoch. */
static void member_epoch_join(room_t *r, member_t *m)
{
    req_t *q = req_new(REQ_EPOCH_JOIN, m->c->id, m->c, m, r->name, r->name_len);
    wire_msg_t w = {.type = WIRE_JOIN,
                    .conn = m->c->id,
                    .since = 0,
                    .flags = WIRE_F_HAS_SINCE | WIRE_F_SILENT,
                    .limit = 0,
                    .room = wbuf(r->name, r->name_len),
                    .nick = wbuf(m->nick, m->nick_len),
                    .epoch = wbuf(r->old_epoch, r->old_epoch_len)};
    if (q == NULL || send_wire(&w) != 0) {
        free(q);
        m->recovered = false;
        member_seam(m, true);
        return;
    }
    req_track(q);
}

/* Pending plain members of r, collected so that callbacks of the sessions
 * (which may remove members) run outside the members loop. */
static size_t collect_plain_pending(room_t *r, conn_t ***out)
{
    size_t n = 0;
    *out = NULL;
    for (size_t i = 0; i < r->nmembers; i++)
        if (r->members[i] != NULL && !r->members[i]->json &&
            r->members[i]->state == MEMBER_PENDING)
            n++;
    if (n == 0 || (*out = malloc(n * sizeof **out)) == NULL)
        return 0;
    n = 0;
    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = r->members[i];
        if (m != NULL && !m->json && m->state == MEMBER_PENDING)
            (*out)[n++] = m->c;
    }
    return n;
}

/* The highest seq this worker knows of in r (delivered or held). */
static uint64_t room_known(const room_t *r)
{
    return r->nheld > 0 ? r->held[r->nheld - 1]->seq : r->last;
}

/* r is in sync: its pending plain members go live and get their 101. */
static void activate_plain(room_t *r)
{
    conn_t **cs;
    size_t n = collect_plain_pending(r, &cs);
    for (size_t i = 0; i < n; i++) {
        member_t *m = room_member_of(cs[i], r->name, r->name_len);
        if (m == NULL)
            continue;
        m->last_seq = room_known(r);
        m->state = MEMBER_LIVE;
    }
    for (size_t i = 0; i < n; i++)
        ws_session_plain_ready(cs[i], true);
    free(cs);
}

/* r could not be synced: its pending plain upgrades get 503. */
static void fail_plain(room_t *r)
{
    conn_t **cs;
    size_t n = collect_plain_pending(r, &cs);
    for (size_t i = 0; i < n; i++)
        ws_session_plain_ready(cs[i], false); /* may free r */
    free(cs);
}

static void handle_act(room_t *r, int act)
{
    if (act & ROOM_ACT_EPOCH) {
        for (size_t i = 0; i < r->nmembers; i++) {
            member_t *m = r->members[i];
            if (m != NULL && m->rejoin && m->state == MEMBER_PENDING)
                member_epoch_join(r, m);
        }
    }
    if (act & ROOM_ACT_FETCH)
        room_fetch(r);
    if ((act & ROOM_ACT_SYNCED) && r->nplain > 0)
        activate_plain(r); /* last: it may free r */
}

/* ---- JSON requests ------------------------------------------------------- */

/* A request being answered: the connection and the parsed request (its
 * strings borrow from the parsed document until chat_proto_free()). */
typedef struct {
    conn_t *c;
    chat_req_t r;
} jreq_t;

static void jerror(const jreq_t *q, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void jerror(const jreq_t *q, const char *code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    send_error(q->c, code, q->r.ref, q->r.ref_len, q->r.has_ref, "%s", msg);
}

static bool link_or_error(const jreq_t *q)
{
    if (chat_link_up(q->c->w))
        return true;
    jerror(q, "unavailable", "broker unavailable: %s",
           chat_link_reason(q->c->w));
    return false;
}

static req_t *jreq_new(const jreq_t *q, req_kind_t kind, member_t *m,
                       const char *room, size_t room_len)
{
    req_t *r = req_new(kind, q->c->id, q->c, m, room, room_len);
    if (r != NULL)
        req_set_ref(r, q->r.ref, q->r.ref_len, q->r.has_ref);
    return r;
}

/* Sends w for request r, or answers `unavailable`. */
static bool jsend(const jreq_t *q, req_t *r, const wire_msg_t *w)
{
    if (r == NULL || send_wire(w) != 0) {
        free(r);
        jerror(q, "unavailable", "broker unavailable");
        return false;
    }
    req_track(r);
    return true;
}

/* join of a room the connection is already in: the nick may change. */
static void join_again(const jreq_t *q, member_t *m)
{
    room_t *r = m->room;
    memcpy(m->nick, q->r.nick, q->r.nick_len);
    m->nick_len = q->r.nick_len;
    wire_msg_t w = {.type = WIRE_JOIN,
                    .conn = q->c->id,
                    .since = SINCE_NONE,
                    .flags = WIRE_F_HAS_SINCE,
                    .limit = 1,
                    .room = wbuf(r->name, r->name_len),
                    .nick = wbuf(m->nick, m->nick_len),
                    .epoch = wbuf(r->epoch, r->epoch_len)};
    jsend(q, jreq_new(q, REQ_REJOIN, m, r->name, r->name_len), &w);
}

static void do_join(const jreq_t *q)
{
    const chat_req_t *p = &q->r;
    if (!link_or_error(q))
        return;
    member_t *m = room_member_of(q->c, p->room, p->room_len);
    if (m != NULL) {
        join_again(q, m);
        return;
    }
    room_t *r = rooms_get(chat.w->rooms, p->room, p->room_len);
    m = r != NULL ? room_add_member(r, q->c, true, p->nick, p->nick_len) : NULL;
    if (m == NULL) {
        jerror(q, "unavailable", "out of memory");
        return;
    }
    int64_t replay = chat.w->cfg->history_replay;
    wire_msg_t w = {.type = WIRE_JOIN,
                    .conn = q->c->id,
                    .room = wbuf(p->room, p->room_len),
                    .nick = wbuf(p->nick, p->nick_len),
                    .epoch = wbuf(p->epoch, p->epoch_len)};
    if (p->has_since) {
        w.flags = WIRE_F_HAS_SINCE;
        w.since = p->since;
        w.limit = 0;
    } else if (replay > 0) {
        w.limit = (uint32_t)replay;
    } else {
        w.flags = WIRE_F_HAS_SINCE;
        w.since = SINCE_NONE;
    }
    if (!jsend(q, jreq_new(q, REQ_JOIN, m, p->room, p->room_len), &w))
        member_drop(m, false);
}

/* The member of the request's room, or NULL with not_joined sent. */
static member_t *joined_member(const jreq_t *q)
{
    member_t *m = room_member_of(q->c, q->r.room, q->r.room_len);
    if (m == NULL)
        jerror(q, "not_joined", "join %.*s first", (int)q->r.room_len,
               q->r.room);
    return m;
}

static void do_say(const jreq_t *q)
{
    const chat_req_t *p = &q->r;
    member_t *m = joined_member(q);
    if (m == NULL || !link_or_error(q))
        return;
    wire_msg_t w = {.type = WIRE_SAY,
                    .conn = q->c->id,
                    .room = wbuf(p->room, p->room_len),
                    .nick = wbuf(m->nick, m->nick_len),
                    .text = wbuf(p->text, p->text_len),
                    .ref = wbuf(p->ref, p->has_ref ? p->ref_len : 0)};
    req_t *r = jreq_new(q, REQ_SAY, NULL, p->room, p->room_len);
    if (r != NULL)
        r->wire_ref = p->has_ref;
    jsend(q, r, &w);
}

static void do_leave(const jreq_t *q)
{
    member_t *m = joined_member(q);
    if (m == NULL)
        return;
    member_drop(m, true);
    jb_t b;
    jb_init(&b);
    jb_lit(&b, "{\"type\":\"left\",\"room\":");
    jb_str(&b, q->r.room, q->r.room_len);
    jb_lit(&b, "}");
    jb_send(&b, q->c);
}

static void do_who(const jreq_t *q)
{
    const chat_req_t *p = &q->r;
    if (joined_member(q) == NULL || !link_or_error(q))
        return;
    wire_msg_t w = {.type = WIRE_WHO,
                    .conn = q->c->id,
                    .room = wbuf(p->room, p->room_len),
                    .ref = wbuf(p->ref, p->has_ref ? p->ref_len : 0)};
    req_t *r = jreq_new(q, REQ_WHO, NULL, p->room, p->room_len);
    if (r != NULL)
        r->wire_ref = p->has_ref;
    jsend(q, r, &w);
}

void chat_on_json(conn_t *c, const char *text, size_t len)
{
    jreq_t q = {.c = c};
    if (chat_proto_parse(text, len, (size_t)chat.w->cfg->max_text, &q.r) != 0)
        jerror(&q, q.r.error, "%s", q.r.message);
    else if (q.r.type == CHAT_REQ_JOIN)
        do_join(&q);
    else if (q.r.type == CHAT_REQ_SAY)
        do_say(&q);
    else if (q.r.type == CHAT_REQ_LEAVE)
        do_leave(&q);
    else
        do_who(&q);
    chat_proto_free(&q.r);
    rooms_flush_slow(chat.w->rooms);
}

void chat_json_rate_limited(conn_t *c, const char *text, size_t len)
{
    jreq_t q = {.c = c};
    /* parsed only for its ref: the request itself is dropped */
    chat_proto_parse(text, len, (size_t)chat.w->cfg->max_text, &q.r);
    jerror(&q, "rate_limited",
           "more than %" PRId64 " messages per second: request dropped",
           chat.w->cfg->rate_limit);
    chat_proto_free(&q.r);
}

/* ---- plain mode ---------------------------------------------------------- */

int chat_plain_join(conn_t *c, const char *room, size_t len)
{
    if (!chat_link_up(c->w))
        return -1;
    room_t *r = rooms_get(chat.w->rooms, room, len);
    member_t *m = r != NULL ? room_add_member(r, c, false, NULL, 0) : NULL;
    if (m == NULL)
        return -1;
    if (r->state != ROOM_SYNCING) {
        m->last_seq = room_known(r);
        m->state = MEMBER_LIVE;
        return 1;
    }
    room_fetch(r);
    if (r->hist_req == 0 && r->njson == 0) {
        member_drop(m, false); /* nothing will sync the room */
        return -1;
    }
    return 0;
}

int chat_plain_say(conn_t *c, const char *text, size_t len)
{
    member_t *m = *ws_session_members(c);
    if (m == NULL || !chat_link_up(c->w))
        return -1;
    room_t *r = m->room;
    wire_msg_t w = {.type = WIRE_SAY,
                    .conn = c->id,
                    .flags = WIRE_F_NOACK,
                    .room = wbuf(r->name, r->name_len),
                    .nick = wbuf(PLAIN_NICK, strlen(PLAIN_NICK)),
                    .text = wbuf(text, len)};
    return send_wire(&w);
}

void chat_conn_gone(conn_t *c)
{
    if (c->ws == NULL)
        return;
    member_t **head = ws_session_members(c);
    while (*head != NULL)
        member_drop(*head, true);
    if (chat.head != NULL)
        forget_conn(c);
}

/* ---- broker replies ------------------------------------------------------ */

#define KIND(k) (1u << (k))

static void on_joined(const wire_msg_t *w)
{
    req_t *q = req_find(KIND(REQ_JOIN) | KIND(REQ_REJOIN) | KIND(REQ_REREG) |
                            KIND(REQ_EPOCH_JOIN),
                        w->conn, &w->room, NULL);
    if (q == NULL) {
        log_debug("reply_unmatched", "type=JOINED conn=%" PRIu64, w->conn);
        return;
    }
    member_t *m = q->m;
    req_kind_t kind = q->kind;
    req_unlink(q);
    free(q);
    if (m == NULL)
        return; /* gone meanwhile (its LEAVE follows the JOIN) */
    room_t *r = m->room;
    if (kind == REQ_JOIN || kind == REQ_EPOCH_JOIN) {
        if (m->state == MEMBER_PENDING)
            join_done(m, w, kind == REQ_EPOCH_JOIN);
        return;
    }
    if (r->state != ROOM_SYNCING && room_epoch_differs(r, &w->epoch)) {
        handle_act(r, room_epoch_reset(r, &w->epoch));
        return;
    }
    if (kind == REQ_REJOIN) {
        if (m->rejoin)
            return; /* its epoch join answers */
        m->members = w->members;
        m->recovered = true; /* it was in the room all along */
        if (m->state == MEMBER_LIVE)
            send_joined(m);
    }
}

static void on_ack(const wire_msg_t *w)
{
    req_t *q = req_find(KIND(REQ_SAY), w->conn, &w->room, &w->ref);
    if (q == NULL)
        return;
    if (q->c != NULL) {
        jb_t b;
        jb_init(&b);
        jb_lit(&b, "{\"type\":\"ack\"");
        if (q->has_ref) {
            jb_lit(&b, ",\"ref\":");
            jb_str(&b, q->ref, q->ref_len);
        }
        jb_lit(&b, ",\"room\":");
        jb_str(&b, q->room, q->room_len);
        jb_lit(&b, ",\"seq\":");
        jb_u64(&b, w->seq);
        jb_lit(&b, "}");
        jb_send(&b, q->c);
    }
    req_unlink(q);
    free(q);
}

static void on_who(const wire_msg_t *w)
{
    req_t *q = req_find(KIND(REQ_WHO), w->conn, &w->room, &w->ref);
    if (q == NULL)
        return;
    if (q->c != NULL) {
        jb_t b;
        jb_init(&b);
        jb_lit(&b, "{\"type\":\"who\",\"room\":");
        jb_str(&b, q->room, q->room_len);
        jb_lit(&b, ",\"members\":[");
        for (size_t i = 0; i < w->num_items; i++) {
            if (i > 0)
                jb_lit(&b, ",");
            jb_str(&b, (const char *)w->items[i].p, w->items[i].len);
        }
        jb_lit(&b, "]}");
        jb_send(&b, q->c);
    }
    req_unlink(q);
    free(q);
}

static void on_history(const wire_msg_t *w)
{
    req_t *q = req_find(KIND(REQ_HIST_ROOM) | KIND(REQ_HIST_MEMBER), w->conn,
                        NULL, NULL);
    if (q == NULL)
        return;
    member_t *m = q->m;
    req_kind_t kind = q->kind;
    uint64_t id = q->id;
    req_unlink(q);
    free(q);
    if (kind == REQ_HIST_MEMBER) {
        if (m != NULL && m->state == MEMBER_PENDING) {
            member_replay(m, w);
            member_seam(m, true);
        }
        return;
    }
    room_t *r = rooms_find(chat.w->rooms, (const char *)w->room.p, w->room.len);
    if (r == NULL)
        return;
    if (r->hist_req == id)
        r->hist_req = 0;
    handle_act(r, room_on_history(r, w));
}

static void on_error(const wire_msg_t *w)
{
    req_t *q = req_find(KIND(REQ_JOIN) | KIND(REQ_REJOIN) | KIND(REQ_SAY) |
                            KIND(REQ_WHO),
                        w->conn, NULL, &w->ref);
    char code[WIRE_MAX_NICK + 1], msg[256];
    snprintf(code, sizeof code, "%.*s", (int)w->nick.len,
             (const char *)w->nick.p);
    snprintf(msg, sizeof msg, "%.*s", (int)w->text.len,
             (const char *)w->text.p);
    if (q == NULL) {
        log_warn("broker_error_unmatched", "conn=%" PRIu64 " code=%s", w->conn,
                 code);
        return;
    }
    req_error(q, code[0] != '\0' ? code : "unavailable", msg);
    member_t *m = q->m;
    bool drop = q->kind == REQ_JOIN && m != NULL;
    req_unlink(q);
    free(q);
    if (drop)
        member_drop(m, false);
}

static void link_on_reply(void *arg, const wire_msg_t *w)
{
    (void)arg;
    if (w->conn & API_ID_BIT) {
        api_on_reply(chat.w, w);
        return;
    }
    switch (w->type) {
    case WIRE_JOINED:
        on_joined(w);
        break;
    case WIRE_ACK:
        on_ack(w);
        break;
    case WIRE_WHO_REPLY:
        on_who(w);
        break;
    case WIRE_HISTORY:
        on_history(w);
        break;
    case WIRE_ERROR:
        on_error(w);
        break;
    default:
        break;
    }
    rooms_flush_slow(chat.w->rooms);
}

/* ---- published messages -------------------------------------------------- */

static void on_presence(const wire_msg_t *w)
{
    room_t *r = rooms_find(chat.w->rooms, (const char *)w->room.p, w->room.len);
    if (r == NULL || r->njson == 0)
        return;
    const char *node = broker_link_node(chat.w->link);
    uint64_t skip = same(node, strlen(node), &w->node) ? w->conn : 0;
    jb_t b;
    jb_init(&b);
    jb_lit(&b, "{\"type\":\"presence\",\"room\":");
    jb_str(&b, r->name, r->name_len);
    jb_lit(&b, (w->flags & WIRE_F_LEAVE) ? ",\"event\":\"leave\""
                                         : ",\"event\":\"join\"");
    jb_lit(&b, ",\"nick\":");
    jb_str(&b, (const char *)w->nick.p, w->nick.len);
    jb_lit(&b, ",\"members\":");
    jb_u64(&b, w->members);
    jb_lit(&b, "}");
    frame_t *f = b.failed ? NULL : frame_new(WS_OP_TEXT, b.p, b.len);
    if (f != NULL)
        room_send_json(r, f, skip);
    frame_unref(f);
    jb_send(&b, NULL);
}

static void link_on_pub(void *arg, const wire_msg_t *w)
{
    (void)arg;
    if (w->type == WIRE_MSG) {
        STAT_ADD(chat.w->stats, broadcasts, 1);
        room_t *r =
            rooms_find(chat.w->rooms, (const char *)w->room.p, w->room.len);
        if (r != NULL)
            handle_act(r, room_on_msg(r, w));
    } else if (w->type == WIRE_PRESENCE) {
        on_presence(w);
    }
    rooms_flush_slow(chat.w->rooms);
}

/* Registers r's live JSON members again and resyncs r. */
static void resync_room(room_t *r, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = r->members[i];
        if (m == NULL || !m->json || m->state != MEMBER_LIVE)
            continue;
        req_t *q = req_new(REQ_REREG, m->c->id, m->c, m, r->name, r->name_len);
        wire_msg_t w = {.type = WIRE_JOIN,
                        .conn = m->c->id,
                        .since = SINCE_NONE,
                        .limit = 1,
                        .flags = WIRE_F_HAS_SINCE | WIRE_F_SILENT,
                        .room = wbuf(r->name, r->name_len),
                        .nick = wbuf(m->nick, m->nick_len),
                        .epoch = wbuf(r->epoch, r->epoch_len)};
        if (q == NULL || send_wire(&w) != 0) {
            free(q);
            continue;
        }
        req_track(q);
    }
    r->hist_req = 0; /* an older HIST may be lost with the old broker */
    if (r->state != ROOM_SYNCING || r->nplain > 0)
        room_fetch(r);
}

static void link_on_resync(void *arg)
{
    (void)arg;
    log_info("chat_resync", "rooms=%zu", rooms_count(chat.w->rooms));
    rooms_foreach(chat.w->rooms, resync_room, NULL);
}

static void gap_room(room_t *r, void *arg)
{
    (void)arg;
    if (r->state != ROOM_SYNCING)
        room_fetch(r);
}

static void link_on_gap(void *arg)
{
    (void)arg;
    rooms_foreach(chat.w->rooms, gap_room, NULL);
}

static void tick_room(room_t *r, void *arg)
{
    (void)arg;
    if (r->hist_req != 0)
        return;
    if (r->state == ROOM_REPAIRING ||
        (r->state == ROOM_SYNCING && r->nplain > 0))
        room_fetch(r);
}

static void link_on_tick(void *arg)
{
    (void)arg;
    rooms_expire_idle(chat.w->rooms, util_mono_ms());
    if (chat_link_up(chat.w))
        rooms_foreach(chat.w->rooms, tick_room, NULL);
}

/* ---- timeouts ------------------------------------------------------------ */

static void req_timed_out(req_t *q, member_t *m)
{
    log_info("broker_request_timeout", "kind=%d room=%.*s", (int)q->kind,
             (int)q->room_len, q->room);
    switch (q->kind) {
    case REQ_JOIN:
        req_error(q, "unavailable", "broker did not answer in time");
        if (m != NULL && m->state == MEMBER_PENDING) {
            forget_member(m);
            member_drop(m, true);
        }
        break;
    case REQ_EPOCH_JOIN:
    case REQ_HIST_MEMBER:
        if (m != NULL && m->state == MEMBER_PENDING) {
            m->recovered = false;
            member_seam(m, true);
        }
        break;
    case REQ_REJOIN:
    case REQ_SAY:
    case REQ_WHO:
        req_error(q, "unavailable", "broker did not answer in time");
        break;
    case REQ_HIST_ROOM: {
        room_t *r = rooms_find(chat.w->rooms, q->room, q->room_len);
        if (r != NULL && r->hist_req == q->id) {
            r->hist_req = 0;
            if (r->state == ROOM_SYNCING)
                fail_plain(r);
        }
        break;
    }
    case REQ_REREG:
        break;
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    uint64_t now = util_mono_ms();
    while (chat.head != NULL && chat.head->deadline <= now) {
        req_t *q = chat.head;
        member_t *m = q->m;
        req_unlink(q);
        req_timed_out(q, m);
        free(q);
    }
    arm_timer();
    rooms_flush_slow(chat.w->rooms);
}

/* ---- lifetime ------------------------------------------------------------ */

int chat_start(worker_t *w, char *err, size_t errlen)
{
    memset(&chat, 0, sizeof chat);
    chat.w = w;
    chat.next_hist_id = 1ull << 62;
    w->zmq_ctx = zmq_ctx_new();
    w->rooms = rooms_new(w);
    chat.timer = evtimer_new(w->base, on_timer, NULL);
    if (w->zmq_ctx == NULL || w->rooms == NULL || chat.timer == NULL) {
        snprintf(err, errlen, "chat: out of memory");
        chat_stop(w);
        return -1;
    }
    broker_link_cbs_t cbs = {
        .on_reply = link_on_reply,
        .on_pub = link_on_pub,
        .on_resync = link_on_resync,
        .on_gap = link_on_gap,
        .on_tick = link_on_tick,
        .arg = NULL,
    };
    w->link = broker_link_new(w->base, w->zmq_ctx, w->cfg, w->stats, &cbs, err,
                              errlen);
    if (w->link == NULL) {
        chat_stop(w);
        return -1;
    }
    return 0;
}

void chat_stop(worker_t *w)
{
    while (chat.head != NULL) {
        req_t *q = chat.head;
        req_unlink(q);
        free(q);
    }
    if (chat.timer != NULL)
        event_free(chat.timer);
    chat.timer = NULL;
    broker_link_free(w->link, true);
    w->link = NULL;
    rooms_free(w->rooms);
    w->rooms = NULL;
    ws_session_worker_free();
    if (w->zmq_ctx != NULL)
        zmq_ctx_term(w->zmq_ctx);
    w->zmq_ctx = NULL;
}

bool chat_link_up(const worker_t *w)
{
    return broker_link_up(w->link);
}

const char *chat_link_reason(const worker_t *w)
{
    return broker_link_reason(w->link);
}
