/*
 * rooms.c - a worker's rooms: membership, in-order delivery with gap
 * repair, the ring of recent messages, and the fan-out (rooms.h).
 */
#include "rooms.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "ws_session.h"

#define ROOMS_MIN_BUCKETS 256

struct rooms {
    worker_t *w;
    pmd_compressor_t z; /* broadcasts' compressor, set up on first need */
    bool z_ready;
    bool z_failed;
    room_t **buckets;
    size_t nbuckets;
    size_t count;
    TAILQ_HEAD(, room) idle; /* rooms without members, oldest first */
    size_t nidle;
    conn_t **slow; /* slow consumers found by fan-outs, closed later */
    size_t nslow, slow_cap;
};

/* ---- messages ------------------------------------------------------------ */

static rmsg_t *rmsg_new(uint64_t seq, uint64_t ts, const wire_buf_t *nick,
                        const wire_buf_t *text)
{
    rmsg_t *m = malloc(sizeof *m + nick->len + text->len + 2);
    if (m == NULL)
        return NULL;
    m->refs = 1;
    m->seq = seq;
    m->ts = ts;
    m->plain = m->json = NULL;
    m->plain_z = m->json_z = NULL;
    m->nick = (char *)(m + 1);
    m->nick_len = nick->len;
    if (nick->len > 0)
        memcpy(m->nick, nick->p, nick->len);
    m->nick[nick->len] = '\0';
    m->text = m->nick + nick->len + 1;
    m->text_len = text->len;
    if (text->len > 0)
        memcpy(m->text, text->p, text->len);
    m->text[text->len] = '\0';
    return m;
}

static void rmsg_unref(rmsg_t *m)
{
    if (m == NULL || --m->refs > 0)
        return;
    frame_unref(m->plain);
    frame_unref(m->json);
    frame_unref(m->plain_z);
    frame_unref(m->json_z);
    free(m);
}

static frame_t *rmsg_frame(room_t *r, rmsg_t *m, bool json)
{
    if (json && m->json == NULL)
        m->json =
            frame_new_msg_json(r->name, r->name_len, m->seq, m->ts, m->nick,
                               m->nick_len, m->text, m->text_len);
    if (!json && m->plain == NULL)
        m->plain = frame_new(WS_OP_TEXT, m->text, m->text_len);
    return json ? m->json : m->plain;
}

/* The worker's compressor, set up on first need; NULL when it cannot be
 * (compressing members then get uncompressed frames). */
static pmd_compressor_t *rooms_compressor(rooms_t *rs)
{
    const config_t *cfg = rs->w->cfg;
    if (!rs->z_ready && !rs->z_failed) {
        if (pmd_compressor_init(&rs->z,
                                (int)cfg->deflate_server_max_window_bits,
                                (int)cfg->deflate_level) == 0) {
            rs->z_ready = true;
        } else {
            rs->z_failed = true;
            log_error("deflate_init_failed", "broadcasts go uncompressed");
        }
    }
    return rs->z_ready ? &rs->z : NULL;
}

/* The compressed variant of text frame f, or f itself (one more
 * reference) when compressing does not make it smaller; NULL when out of
 * memory. */
static frame_t *deflate_variant(rooms_t *rs, frame_t *f)
{
    pmd_compressor_t *z = rooms_compressor(rs);
    if (z == NULL)
        return NULL;
    size_t n;
    const uint8_t *p = frame_payload(f, &n);
    frame_t *d = frame_new_deflated(z, WS_OP_TEXT, p, n);
    if (d != NULL && d->len >= f->len) {
        frame_unref(d);
        return frame_ref(f);
    }
    return d;
}

/*
 * The frame of msg for member m: the shared compressed variant when m's
 * connection negotiated permessage-deflate, the payload has at least
 * deflate_min_size bytes and fits m's agreed window (pmd_shareable);
 * otherwise the uncompressed frame.  Each is built once per message, on
 * first need, and the same bytes go to every member that takes it.
 */
static frame_t *member_frame(room_t *r, rmsg_t *msg, const member_t *m)
{
    const config_t *cfg = r->rooms->w->cfg;
    frame_t *f = rmsg_frame(r, msg, m->json);
    const pmd_params_t *agreed = ws_session_deflate(m->c);
    if (f == NULL || agreed == NULL)
        return f;
    size_t n;
    frame_payload(f, &n);
    if (n < (size_t)cfg->deflate_min_size ||
        !pmd_shareable(agreed, (int)cfg->deflate_server_max_window_bits, n))
        return f;
    frame_t **z = m->json ? &msg->json_z : &msg->plain_z;
    if (*z == NULL)
        *z = deflate_variant(r->rooms, f);
    return *z != NULL ? *z : f;
}

/* ---- table --------------------------------------------------------------- */

static uint64_t hash_name(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

rooms_t *rooms_new(worker_t *w)
{
    rooms_t *rs = calloc(1, sizeof *rs);
    if (rs == NULL)
        return NULL;
    rs->w = w;
    TAILQ_INIT(&rs->idle);
    rs->nbuckets = ROOMS_MIN_BUCKETS;
    rs->buckets = calloc(rs->nbuckets, sizeof *rs->buckets);
    if (rs->buckets == NULL) {
        free(rs);
        return NULL;
    }
    return rs;
}

static void room_free(room_t *r)
{
    for (size_t i = 0; i < r->nheld; i++)
        rmsg_unref(r->held[i]);
    for (size_t i = 0; i < ROOM_RING; i++)
        rmsg_unref(r->ring[i]);
    free(r->held);
    free(r->members);
    free(r);
}

void rooms_free(rooms_t *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->nbuckets; i++) {
        while (rs->buckets[i] != NULL) {
            room_t *r = rs->buckets[i];
            rs->buckets[i] = r->hnext;
            room_free(r);
        }
    }
    free(rs->buckets);
    free(rs->slow);
    pmd_compressor_free(&rs->z);
    free(rs);
}

room_t *rooms_find(rooms_t *rs, const char *name, size_t len)
{
    room_t *r = rs->buckets[hash_name(name, len) & (rs->nbuckets - 1)];
    for (; r != NULL; r = r->hnext)
        if (r->name_len == len && memcmp(r->name, name, len) == 0)
            return r;
    return NULL;
}

/* Doubles the bucket array when rooms outnumber buckets twice. */
static void rooms_grow(rooms_t *rs)
{
    size_t n = rs->nbuckets * 2;
    room_t **b = calloc(n, sizeof *b);
    if (b == NULL)
        return; /* chains just get longer */
    for (size_t i = 0; i < rs->nbuckets; i++) {
        while (rs->buckets[i] != NULL) {
            room_t *r = rs->buckets[i];
            rs->buckets[i] = r->hnext;
            size_t j = hash_name(r->name, r->name_len) & (n - 1);
            r->hnext = b[j];
            b[j] = r;
        }
    }
    free(rs->buckets);
    rs->buckets = b;
    rs->nbuckets = n;
}

room_t *rooms_get(rooms_t *rs, const char *name, size_t len)
{
    room_t *r = rooms_find(rs, name, len);
    if (r != NULL || len == 0 || len > NAME_MAX_ROOM)
        return r;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    memcpy(r->name, name, len);
    r->name_len = len;
    r->state = ROOM_SYNCING;
    r->rooms = rs;
    if (rs->count >= rs->nbuckets * 2)
        rooms_grow(rs);
    size_t i = hash_name(name, len) & (rs->nbuckets - 1);
    r->hnext = rs->buckets[i];
    rs->buckets[i] = r;
    rs->count++;
    log_debug("room_new", "room=%.*s", (int)len, name);
    return r;
}

static void idle_remove(rooms_t *rs, room_t *r)
{
    if (!r->idle)
        return;
    TAILQ_REMOVE(&rs->idle, r, idle_link);
    r->idle = false;
    rs->nidle--;
}

static void rooms_unlink(rooms_t *rs, room_t *r)
{
    idle_remove(rs, r);
    room_t **pp =
        &rs->buckets[hash_name(r->name, r->name_len) & (rs->nbuckets - 1)];
    while (*pp != NULL && *pp != r)
        pp = &(*pp)->hnext;
    if (*pp == r)
        *pp = r->hnext;
    rs->count--;
    log_debug("room_free", "room=%.*s", (int)r->name_len, r->name);
    room_free(r);
}

void rooms_foreach(rooms_t *rs, void (*fn)(room_t *r, void *arg), void *arg)
{
    for (size_t i = 0; i < rs->nbuckets; i++)
        for (room_t *r = rs->buckets[i]; r != NULL; r = r->hnext)
            fn(r, arg);
}

size_t rooms_count(const rooms_t *rs)
{
    return rs->count;
}

void rooms_expire_idle(rooms_t *rs, uint64_t now)
{
    room_t *r;
    while ((r = TAILQ_FIRST(&rs->idle)) != NULL &&
           now - r->idle_since >= ROOMS_IDLE_MS)
        rooms_unlink(rs, r);
}

/* r lost its last member while in sync: it stays, following the stream,
 * so that the next plain upgrade needs no broker round trip.  Its ring is
 * emptied (nobody can be served from it) and is not filled while idle. */
static void room_make_idle(room_t *r)
{
    rooms_t *rs = r->rooms;
    for (size_t i = 0; i < ROOM_RING; i++) {
        rmsg_unref(r->ring[i]);
        r->ring[i] = NULL;
    }
    r->idle = true;
    r->idle_since = util_mono_ms();
    TAILQ_INSERT_TAIL(&rs->idle, r, idle_link);
    rs->nidle++;
    if (rs->nidle > ROOMS_IDLE_MAX)
        rooms_unlink(rs, TAILQ_FIRST(&rs->idle));
}

/* ---- members ------------------------------------------------------------- */

member_t *room_add_member(room_t *r, conn_t *c, bool json, const char *nick,
                          size_t nick_len)
{
    if (r->nmembers == r->cap) {
        size_t ncap = r->cap == 0 ? 8 : r->cap * 2;
        member_t **a = realloc(r->members, ncap * sizeof *a);
        if (a == NULL)
            return NULL;
        r->members = a;
        r->cap = ncap;
    }
    member_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    idle_remove(r->rooms, r);
    m->c = c;
    m->room = r;
    m->json = json;
    m->state = MEMBER_PENDING;
    if (nick_len > NAME_MAX_NICK)
        nick_len = NAME_MAX_NICK;
    if (nick_len > 0)
        memcpy(m->nick, nick, nick_len);
    m->nick_len = nick_len;
    m->index = r->nmembers;
    r->members[r->nmembers++] = m;
    if (json)
        r->njson++;
    else
        r->nplain++;
    member_t **head = ws_session_members(c);
    m->conn_next = *head;
    *head = m;
    return m;
}

member_t *room_member_of(conn_t *c, const char *room, size_t len)
{
    for (member_t *m = *ws_session_members(c); m != NULL; m = m->conn_next)
        if (m->room->name_len == len && memcmp(m->room->name, room, len) == 0)
            return m;
    return NULL;
}

/* Removes the NULL slots a removal during a fan-out left behind. */
static void room_compact(room_t *r)
{
    size_t j = 0;
    for (size_t i = 0; i < r->nmembers; i++) {
        if (r->members[i] == NULL)
            continue;
        r->members[i]->index = j;
        r->members[j++] = r->members[i];
    }
    r->nmembers = j;
    r->holes = false;
}

/* After a fan-out: the members array may be tidied again. */
static void room_end_iteration(room_t *r)
{
    if (--r->iterating == 0 && r->holes)
        room_compact(r);
}

/* A room goes with its last member (never during a fan-out: an emptied
 * room is then freed by the next removal or at exit), or becomes idle when
 * it is in sync with nothing held or in flight. */
static void room_release_if_empty(room_t *r)
{
    if (r->iterating > 0)
        return;
    if (r->holes)
        room_compact(r);
    if (r->nmembers != 0 || r->idle)
        return;
    if (r->state == ROOM_IN_SYNC && r->nheld == 0 && !r->refetch &&
        r->hist_req == 0)
        room_make_idle(r);
    else
        rooms_unlink(r->rooms, r);
}

void room_remove_member(member_t *m)
{
    room_t *r = m->room;
    member_t **pp = ws_session_members(m->c);
    while (*pp != NULL && *pp != m)
        pp = &(*pp)->conn_next;
    if (*pp == m)
        *pp = m->conn_next;
    if (r->iterating > 0) {
        r->members[m->index] = NULL;
        r->holes = true;
    } else {
        member_t *last = r->members[--r->nmembers];
        r->members[m->index] = last;
        last->index = m->index;
    }
    if (m->json)
        r->njson--;
    else
        r->nplain--;
    free(m);
    room_release_if_empty(r);
}

/* ---- fan-out ------------------------------------------------------------- */

static void note_slow(rooms_t *rs, conn_t *c)
{
    if (rs->nslow == rs->slow_cap) {
        size_t n = rs->slow_cap == 0 ? 16 : rs->slow_cap * 2;
        conn_t **a = realloc(rs->slow, n * sizeof *a);
        if (a == NULL) {
            conn_close(c); /* cannot defer: closing now is still safe */
            return;
        }
        rs->slow = a;
        rs->slow_cap = n;
    }
    rs->slow[rs->nslow++] = c;
}

void rooms_flush_slow(rooms_t *rs)
{
    for (size_t i = 0; i < rs->nslow; i++)
        ws_session_slow_consumer(rs->slow[i]);
    rs->nslow = 0;
}

/* Fan-out figures, added to the shared counters once per fan-out. */
typedef struct {
    int64_t n;
    int64_t bytes;
} fan_count_t;

static void fan_count_flush(room_t *r, const fan_count_t *fc)
{
    gw_stats_t *st = r->rooms->w->stats;
    if (fc->n == 0)
        return;
    STAT_ADD(st, deliveries, fc->n);
    STAT_ADD(st, messages_out, fc->n);
    STAT_ADD(st, bytes_out, fc->bytes);
}

/* Queues f to m's connection, noting a slow consumer. */
static void deliver_to(room_t *r, member_t *m, frame_t *f, fan_count_t *fc)
{
    if (ws_session_queue_frame(m->c, f) != 0)
        return;
    fc->n++;
    fc->bytes += (int64_t)f->len;
    if (conn_output_pending(m->c) > (size_t)r->rooms->w->cfg->send_queue)
        note_slow(r->rooms, m->c);
}

/* Delivers msg to every live member that has not seen it: one frame per
 * representation, built only if some member needs it. */
static void room_fanout(room_t *r, rmsg_t *msg)
{
    fan_count_t fc = {0, 0};
    r->iterating++;
    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = r->members[i];
        if (m == NULL || m->state != MEMBER_LIVE || m->last_seq >= msg->seq)
            continue;
        m->last_seq = msg->seq;
        frame_t *f = member_frame(r, msg, m);
        if (f != NULL)
            deliver_to(r, m, f, &fc);
    }
    room_end_iteration(r);
    fan_count_flush(r, &fc);
}

void room_send_json(room_t *r, frame_t *f, uint64_t skip_conn)
{
    fan_count_t fc = {0, 0};
    r->iterating++;
    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = r->members[i];
        if (m == NULL || !m->json || m->state != MEMBER_LIVE ||
            m->c->id == skip_conn)
            continue;
        deliver_to(r, m, f, &fc);
    }
    room_end_iteration(r);
    fan_count_flush(r, &fc);
}

/* r->last becomes msg's seq: into the ring, out to the members. */
static void room_deliver(room_t *r, rmsg_t *msg)
{
    r->last = msg->seq;
    if (r->nmembers == 0)
        return; /* idle: only `last` is followed */
    rmsg_t **slot = &r->ring[msg->seq % ROOM_RING];
    rmsg_unref(*slot);
    msg->refs++;
    *slot = msg;
    room_fanout(r, msg);
}

int room_send_item(room_t *r, member_t *m, uint64_t seq, uint64_t ts,
                   const wire_buf_t *nick, const wire_buf_t *text)
{
    frame_t *f = m->json ? frame_new_msg_json(r->name, r->name_len, seq, ts,
                                              (const char *)nick->p, nick->len,
                                              (const char *)text->p, text->len)
                         : frame_new(WS_OP_TEXT, text->p, text->len);
    if (f == NULL)
        return -1;
    int rc = ws_session_send_frame(m->c, f);
    frame_unref(f);
    return rc;
}

/* ---- ordering ------------------------------------------------------------ */

/* Inserts msg (taking a reference) into r's held list in seq order;
 * false when it is full or the seq is already held. */
static bool room_hold(room_t *r, rmsg_t *msg)
{
    size_t lo = 0, hi = r->nheld;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->held[mid]->seq < msg->seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < r->nheld && r->held[lo]->seq == msg->seq)
        return true;
    if (r->nheld == ROOM_MAX_HELD)
        return false;
    if (r->nheld == r->held_cap) {
        size_t n = r->held_cap == 0 ? 16 : r->held_cap * 2;
        rmsg_t **a = realloc(r->held, n * sizeof *a);
        if (a == NULL)
            return false;
        r->held = a;
        r->held_cap = n;
    }
    memmove(r->held + lo + 1, r->held + lo, (r->nheld - lo) * sizeof *r->held);
    r->held[lo] = msg;
    msg->refs++;
    r->nheld++;
    return true;
}

/* Delivers the held messages that continue r->last; asks for a repair when
 * a hole remains. */
static int room_drain_held(room_t *r)
{
    size_t i = 0;
    for (; i < r->nheld; i++) {
        rmsg_t *h = r->held[i];
        if (h->seq > r->last + 1)
            break;
        if (h->seq == r->last + 1)
            room_deliver(r, h);
        rmsg_unref(h);
    }
    if (i > 0) {
        memmove(r->held, r->held + i, (r->nheld - i) * sizeof *r->held);
        r->nheld -= i;
    }
    if (r->nheld > 0 || r->refetch) {
        r->refetch = false;
        if (r->state != ROOM_REPAIRING)
            STAT_ADD(r->rooms->w->stats, gap_repairs, 1);
        r->state = ROOM_REPAIRING;
        return ROOM_ACT_FETCH;
    }
    r->state = ROOM_IN_SYNC;
    return 0;
}

static void hold_or_refetch(room_t *r, uint64_t seq, uint64_t ts,
                            const wire_buf_t *nick, const wire_buf_t *text)
{
    rmsg_t *msg = rmsg_new(seq, ts, nick, text);
    if (msg == NULL || !room_hold(r, msg))
        r->refetch = true;
    rmsg_unref(msg);
}

bool room_epoch_differs(const room_t *r, const wire_buf_t *epoch)
{
    return r->epoch_len != epoch->len ||
           (epoch->len > 0 && memcmp(r->epoch, epoch->p, epoch->len) != 0);
}

static void set_epoch(room_t *r, const wire_buf_t *epoch)
{
    size_t n = epoch->len > WIRE_MAX_EPOCH ? WIRE_MAX_EPOCH : epoch->len;
    if (n > 0)
        memcpy(r->epoch, epoch->p, n);
    r->epoch[n] = '\0';
    r->epoch_len = n;
}

int room_epoch_reset(room_t *r, const wire_buf_t *epoch)
{
    log_warn("room_epoch_changed", "room=%.*s old=%s new=%.*s last=%" PRIu64,
             (int)r->name_len, r->name, r->epoch, (int)epoch->len,
             (const char *)epoch->p, r->last);
    memcpy(r->old_epoch, r->epoch, r->epoch_len + 1);
    r->old_epoch_len = r->epoch_len;
    set_epoch(r, epoch);
    r->last = 0;
    for (size_t i = 0; i < ROOM_RING; i++) {
        rmsg_unref(r->ring[i]);
        r->ring[i] = NULL;
    }
    for (size_t i = 0; i < r->nheld; i++)
        rmsg_unref(r->held[i]);
    r->nheld = 0;
    for (size_t i = 0; i < r->nmembers; i++) {
        member_t *m = r->members[i];
        if (m == NULL)
            continue;
        if (m->json && m->state == MEMBER_LIVE) {
            m->state = MEMBER_PENDING;
            m->rejoin = true;
        }
        if (!m->json || m->rejoin)
            m->last_seq = 0;
    }
    r->state = ROOM_REPAIRING;
    return ROOM_ACT_EPOCH | ROOM_ACT_FETCH;
}

int room_on_msg(room_t *r, const wire_msg_t *m)
{
    int act = 0;
    if (r->state == ROOM_SYNCING) {
        hold_or_refetch(r, m->seq, m->ts, &m->nick, &m->text);
        return 0;
    }
    if (room_epoch_differs(r, &m->epoch))
        act |= room_epoch_reset(r, &m->epoch);
    if (m->seq <= r->last)
        return act;
    if (m->seq == r->last + 1 && r->nheld == 0) {
        rmsg_t *msg = rmsg_new(m->seq, m->ts, &m->nick, &m->text);
        if (msg == NULL) {
            r->refetch = true;
            return act | room_drain_held(r);
        }
        room_deliver(r, msg);
        rmsg_unref(msg);
        return act;
    }
    hold_or_refetch(r, m->seq, m->ts, &m->nick, &m->text);
    return act | room_drain_held(r);
}

int room_on_sync(room_t *r, const wire_buf_t *epoch, uint64_t seq)
{
    set_epoch(r, epoch);
    r->last = seq;
    r->state = ROOM_IN_SYNC;
    log_debug("room_synced", "room=%.*s epoch=%s seq=%" PRIu64,
              (int)r->name_len, r->name, r->epoch, seq);
    return ROOM_ACT_SYNCED | room_drain_held(r);
}

int room_on_history(room_t *r, const wire_msg_t *m)
{
    if (r->state == ROOM_SYNCING)
        return room_on_sync(r, &m->epoch, m->seq);
    int act = 0;
    if (room_epoch_differs(r, &m->epoch))
        act |= room_epoch_reset(r, &m->epoch);
    for (size_t i = 0; i < m->num_items; i++) {
        wire_item_t it;
        wire_item(m, i, &it);
        if (it.seq <= r->last)
            continue;
        rmsg_t *msg = rmsg_new(it.seq, it.ts, &it.nick, &it.text);
        if (msg == NULL)
            break;
        room_deliver(r, msg); /* a gap here was lost from history */
        rmsg_unref(msg);
    }
    if (m->seq > r->last)
        r->last = m->seq; /* no longer held by the broker either */
    return act | room_drain_held(r);
}

int room_member_catch_up(room_t *r, member_t *m, bool force)
{
    if (force && r->last > ROOM_RING && m->last_seq < r->last - ROOM_RING) {
        m->last_seq = r->last - ROOM_RING; /* beyond the ring: lost */
        m->recovered = false;
    }
    while (m->last_seq < r->last) {
        rmsg_t *msg = r->ring[(m->last_seq + 1) % ROOM_RING];
        if (msg == NULL || msg->seq != m->last_seq + 1) {
            if (!force)
                return -1;
            m->last_seq++; /* lost: neither ring nor history has it */
            m->recovered = false;
            continue;
        }
        frame_t *f = member_frame(r, msg, m);
        if (f != NULL)
            ws_session_send_frame(m->c, f);
        m->last_seq = msg->seq;
    }
    return 0;
}
