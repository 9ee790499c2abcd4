/*
 * store.c - rooms, members, nodes and sequencing for the broker.
 *
 * Rooms and nodes sit in two chained hash tables (seeded FNV-1a; names are
 * short and validated by the gateways).  Each room holds its members in an
 * unordered array (swap-remove); rooms with at least one member are also
 * on a list, so removing a node visits only occupied rooms.  The hot path,
 * store_say(), is a hash lookup (done by the caller) plus a history append
 * that reuses the ring's memory.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* What rooms and nodes share to sit in a table. */
typedef struct entry {
    struct entry *next;
    uint64_t hash;
    const uint8_t *key;
    size_t key_len;
} entry_t;

typedef struct {
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
} table_t;

typedef struct {
    store_node_t *node;
    uint64_t conn;
    size_t nick_len;
    char nick[STORE_MAX_NICK + 1];
} member_t;

struct store_room {
    entry_t e; /* first: a room is its entry */
    char name[STORE_MAX_ROOM + 1];
    size_t name_len;
    char epoch[STORE_EPOCH_LEN + 1];
    uint64_t seq;
    history_t *history;
    member_t *members;
    size_t nmembers, members_cap;
    store_room_t *occ_prev, *occ_next; /* on s->occupied while nmembers > 0 */
};

struct store_node {
    entry_t e; /* first: a node is its entry */
    uint8_t id[STORE_MAX_NODE_ID];
    size_t id_len;
    uint64_t last_seen;
    size_t members;
};

struct store {
    table_t rooms, nodes;
    uint64_t seed;
    size_t history_size;
    size_t max_rooms;
    store_room_t *occupied;
    size_t members; /* memberships over all rooms */
};

/* ---- hash table -------------------------------------------------------- */

static uint64_t hash_key(uint64_t seed, const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 14695981039346656037ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int table_init(table_t *t)
{
    t->nbuckets = 64;
    t->count = 0;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    return t->buckets == NULL ? -1 : 0;
}

static entry_t *table_find(const table_t *t, const void *key, size_t len,
                           uint64_t hash)
{
    entry_t *e = t->buckets[hash & (t->nbuckets - 1)];
    for (; e != NULL; e = e->next)
        if (e->hash == hash && e->key_len == len &&
            memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

/* Doubles the bucket array; on allocation failure the table just stays
 * more loaded. */
static void table_grow(table_t *t)
{
    size_t n = t->nbuckets * 2;
    entry_t **b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        entry_t *e = t->buckets[i];
        while (e != NULL) {
            entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static void table_add(table_t *t, entry_t *e)
{
    if (t->count >= t->nbuckets)
        table_grow(t);
    entry_t **head = &t->buckets[e->hash & (t->nbuckets - 1)];
    e->next = *head;
    *head = e;
    t->count++;
}

static void table_del(table_t *t, entry_t *e)
{
    entry_t **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->next;
    if (*pp == e) {
        *pp = e->next;
        t->count--;
    }
}

/* ---- store ------------------------------------------------------------- */

store_t *store_new(size_t history_size, size_t max_rooms)
{
    if (history_size == 0)
        return NULL;
    store_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if (table_init(&s->rooms) < 0 || table_init(&s->nodes) < 0) {
        free(s->rooms.buckets);
        free(s);
        return NULL;
    }
    if (util_random(&s->seed, sizeof s->seed) < 0)
        s->seed = (uint64_t)(uintptr_t)s;
    s->history_size = history_size;
    s->max_rooms = max_rooms;
    return s;
}

static void room_free(store_room_t *r)
{
    history_free(r->history);
    free(r->members);
    free(r);
}

void store_free(store_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->rooms.nbuckets; i++) {
        entry_t *e = s->rooms.buckets[i];
        while (e != NULL) {
            entry_t *next = e->next;
            room_free((store_room_t *)e);
            e = next;
        }
    }
    for (size_t i = 0; i < s->nodes.nbuckets; i++) {
        entry_t *e = s->nodes.buckets[i];
        while (e != NULL) {
            entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(s->rooms.buckets);
    free(s->nodes.buckets);
    free(s);
}

size_t store_room_count(const store_t *s)
{
    return s->rooms.count;
}

size_t store_node_count(const store_t *s)
{
    return s->nodes.count;
}

/* ---- nodes ------------------------------------------------------------- */

store_node_t *store_node_find(store_t *s, const void *id, size_t len)
{
    if (len == 0 || len > STORE_MAX_NODE_ID)
        return NULL;
    uint64_t h = hash_key(s->seed, id, len);
    return (store_node_t *)table_find(&s->nodes, id, len, h);
}

store_node_t *store_node_add(store_t *s, const void *id, size_t len,
                             uint64_t now)
{
    if (len == 0 || len > STORE_MAX_NODE_ID ||
        store_node_find(s, id, len) != NULL)
        return NULL;
    store_node_t *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    memcpy(n->id, id, len);
    n->id_len = len;
    n->last_seen = now;
    n->e.key = n->id;
    n->e.key_len = len;
    n->e.hash = hash_key(s->seed, id, len);
    table_add(&s->nodes, &n->e);
    return n;
}

void store_node_touch(store_node_t *n, uint64_t now)
{
    n->last_seen = now;
}

const uint8_t *store_node_id(const store_node_t *n, size_t *len)
{
    *len = n->id_len;
    return n->id;
}

size_t store_member_count(const store_t *s)
{
    return s->members;
}

size_t store_node_members(const store_node_t *n)
{
    return n->members;
}

static void occupied_link(store_t *s, store_room_t *r)
{
    r->occ_prev = NULL;
    r->occ_next = s->occupied;
    if (s->occupied != NULL)
        s->occupied->occ_prev = r;
    s->occupied = r;
}

static void occupied_unlink(store_t *s, store_room_t *r)
{
    if (r->occ_prev != NULL)
        r->occ_prev->occ_next = r->occ_next;
    else
        s->occupied = r->occ_next;
    if (r->occ_next != NULL)
        r->occ_next->occ_prev = r->occ_prev;
    r->occ_prev = r->occ_next = NULL;
}

/* Removes member i of r (swap with the last one); copies its nick out. */
static void member_remove(store_t *s, store_room_t *r, size_t i, char *nick,
                          size_t *nick_len)
{
    member_t *m = &r->members[i];
    memcpy(nick, m->nick, m->nick_len + 1);
    *nick_len = m->nick_len;
    m->node->members--;
    s->members--;
    r->members[i] = r->members[r->nmembers - 1];
    r->nmembers--;
    if (r->nmembers == 0)
        occupied_unlink(s, r);
}

/* Removes n's members from r, last index first so swap-remove never skips
 * one. */
static size_t remove_from_room(store_t *s, store_room_t *r, store_node_t *n,
                               store_leave_fn fn, void *arg)
{
    size_t removed = 0;
    char nick[STORE_MAX_NICK + 1];
    size_t nick_len;
    for (size_t i = r->nmembers; i-- > 0;) {
        if (r->members[i].node != n)
            continue;
        uint64_t conn = r->members[i].conn;
        member_remove(s, r, i, nick, &nick_len);
        removed++;
        if (fn != NULL)
            fn(arg, r, n, conn, nick, nick_len, r->nmembers);
    }
    return removed;
}

size_t store_node_remove(store_t *s, store_node_t *n, store_leave_fn fn,
                         void *arg)
{
    size_t removed = 0;
    store_room_t *r = s->occupied;
    while (r != NULL && n->members > 0) {
        store_room_t *next = r->occ_next; /* r may leave the list */
        removed += remove_from_room(s, r, n, fn, arg);
        r = next;
    }
    table_del(&s->nodes, &n->e);
    free(n);
    return removed;
}

size_t store_node_expire(store_t *s, uint64_t now, uint64_t timeout,
                         void (*before_fn)(void *arg, const store_node_t *n),
                         store_leave_fn fn, void *arg)
{
    if (now < timeout)
        return 0;
    size_t expired = 0;
    for (size_t i = 0; i < s->nodes.nbuckets; i++) {
        entry_t *e = s->nodes.buckets[i];
        while (e != NULL) {
            entry_t *next = e->next;
            store_node_t *n = (store_node_t *)e;
            if (n->last_seen <= now - timeout) {
                if (before_fn != NULL)
                    before_fn(arg, n);
                store_node_remove(s, n, fn, arg);
                expired++;
            }
            e = next;
        }
    }
    return expired;
}

/* ---- rooms ------------------------------------------------------------- */

store_room_t *store_room_find(store_t *s, const char *name, size_t len)
{
    if (len == 0 || len > STORE_MAX_ROOM)
        return NULL;
    uint64_t h = hash_key(s->seed, name, len);
    return (store_room_t *)table_find(&s->rooms, name, len, h);
}

store_room_t *store_room_open(store_t *s, const char *name, size_t len)
{
    if (len == 0 || len > STORE_MAX_ROOM) {
        errno = EINVAL;
        return NULL;
    }
    store_room_t *r = store_room_find(s, name, len);
    if (r != NULL)
        return r;
    if (s->max_rooms > 0 && s->rooms.count >= s->max_rooms) {
        errno = ENOSPC;
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL || (r->history = history_new(s->history_size)) == NULL ||
        util_random_hex(r->epoch, STORE_EPOCH_LEN / 2) < 0) {
        if (r != NULL)
            room_free(r);
        errno = ENOMEM;
        return NULL;
    }
    memcpy(r->name, name, len);
    r->name_len = len;
    r->e.key = (const uint8_t *)r->name;
    r->e.key_len = len;
    r->e.hash = hash_key(s->seed, name, len);
    table_add(&s->rooms, &r->e);
    return r;
}

const char *store_room_name(const store_room_t *r, size_t *len)
{
    if (len != NULL)
        *len = r->name_len;
    return r->name;
}

const char *store_room_epoch(const store_room_t *r)
{
    return r->epoch;
}

uint64_t store_room_seq(const store_room_t *r)
{
    return r->seq;
}

size_t store_room_members(const store_room_t *r)
{
    return r->nmembers;
}

const char *store_room_member_nick(const store_room_t *r, size_t i, size_t *len)
{
    *len = r->members[i].nick_len;
    return r->members[i].nick;
}

const history_t *store_room_history(const store_room_t *r)
{
    return r->history;
}

int store_say(store_room_t *r, uint64_t ts, const char *nick, size_t nick_len,
              const char *text, size_t text_len, uint64_t *seq)
{
    if (history_append(r->history, r->seq + 1, ts, nick, nick_len, text,
                       text_len) < 0)
        return -1;
    *seq = ++r->seq;
    return 0;
}

int store_restore(store_t *s, const char *name, size_t len, const char *epoch,
                  size_t epoch_len, uint64_t seq, uint64_t ts, const char *nick,
                  size_t nick_len, const char *text, size_t text_len)
{
    if (epoch_len != STORE_EPOCH_LEN) {
        errno = EINVAL;
        return -1;
    }
    bool fresh = store_room_find(s, name, len) == NULL;
    store_room_t *r = store_room_open(s, name, len);
    if (r == NULL)
        return -1;
    if (fresh || r->seq == 0)
        memcpy(r->epoch, epoch, epoch_len);
    if (memcmp(r->epoch, epoch, epoch_len) != 0 ||
        (r->seq != 0 && seq != r->seq + 1)) {
        errno = EINVAL;
        return -1;
    }
    if (history_append(r->history, seq, ts, nick, nick_len, text, text_len) <
        0) {
        errno = seq == 0 ? EINVAL : ENOMEM;
        return -1;
    }
    r->seq = seq;
    return 0;
}

static member_t *member_find(store_room_t *r, const store_node_t *n,
                             uint64_t conn, size_t *index)
{
    for (size_t i = 0; i < r->nmembers; i++)
        if (r->members[i].node == n && r->members[i].conn == conn) {
            if (index != NULL)
                *index = i;
            return &r->members[i];
        }
    return NULL;
}

static int members_reserve(store_room_t *r)
{
    if (r->nmembers < r->members_cap)
        return 0;
    size_t cap = r->members_cap == 0 ? 4 : r->members_cap * 2;
    member_t *m = realloc(r->members, cap * sizeof *m);
    if (m == NULL)
        return -1;
    r->members = m;
    r->members_cap = cap;
    return 0;
}

static void set_nick(member_t *m, const char *nick, size_t len)
{
    memcpy(m->nick, nick, len);
    m->nick[len] = '\0';
    m->nick_len = len;
}

int store_join(store_t *s, store_room_t *r, store_node_t *n, uint64_t conn,
               const char *nick, size_t nick_len, char *old_nick)
{
    if (nick_len == 0 || nick_len > STORE_MAX_NICK)
        return -1;
    member_t *m = member_find(r, n, conn, NULL);
    if (m != NULL) {
        if (m->nick_len == nick_len && memcmp(m->nick, nick, nick_len) == 0)
            return STORE_JOIN_SAME;
        memcpy(old_nick, m->nick, m->nick_len + 1);
        set_nick(m, nick, nick_len);
        return STORE_JOIN_RENAMED;
    }
    if (members_reserve(r) < 0)
        return -1;
    m = &r->members[r->nmembers++];
    m->node = n;
    m->conn = conn;
    set_nick(m, nick, nick_len);
    n->members++;
    s->members++;
    if (r->nmembers == 1)
        occupied_link(s, r);
    return STORE_JOIN_NEW;
}

int store_leave(store_t *s, store_room_t *r, store_node_t *n, uint64_t conn,
                char *nick)
{
    size_t i, len;
    if (member_find(r, n, conn, &i) == NULL)
        return 0;
    member_remove(s, r, i, nick, &len);
    return 1;
}

/* ---- replay ------------------------------------------------------------ */

static void plan_last(const history_t *h, uint32_t limit, store_replay_t *out)
{
    size_t count = history_count(h);
    if (limit > 0 && count > limit)
        count = limit;
    out->count = count;
    out->last = history_last_seq(h);
    out->first = count == 0 ? 0 : out->last - count + 1;
}

void store_replay_plan(const store_room_t *r, bool has_since, uint64_t since,
                       const char *epoch, size_t epoch_len, uint32_t limit,
                       store_replay_t *out)
{
    const history_t *h = r->history;
    memset(out, 0, sizeof *out);
    bool same_epoch =
        epoch == NULL || (epoch_len == STORE_EPOCH_LEN &&
                          memcmp(epoch, r->epoch, epoch_len) == 0);
    if (!has_since || !same_epoch) {
        plan_last(h, limit, out);
        return;
    }
    if (since >= r->seq) {
        out->recovered = true;
        return;
    }
    uint64_t held_first = history_first_seq(h);
    uint64_t first = since + 1 > held_first ? since + 1 : held_first;
    uint64_t avail = history_count(h) == 0 ? 0 : r->seq - first + 1;
    uint64_t count = limit > 0 && avail > limit ? limit : avail;
    out->count = (size_t)count;
    out->first = count == 0 ? 0 : first;
    out->last = count == 0 ? 0 : first + count - 1;
    out->recovered =
        held_first != 0 && held_first <= since + 1 && count == avail;
}
