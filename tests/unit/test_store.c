/*
 * test_store.c - the broker's store: sequencing, rooms, members, presence
 * decisions, node expiry and every replay rule of docs/wire.md.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

static store_room_t *room(store_t *s, const char *name)
{
    store_room_t *r = store_room_open(s, name, strlen(name));
    assert_non_null(r);
    return r;
}

static store_node_t *node(store_t *s, const char *id)
{
    store_node_t *n = store_node_add(s, id, strlen(id), 1000);
    assert_non_null(n);
    return n;
}

static uint64_t say(store_room_t *r, const char *text)
{
    uint64_t seq = 0;
    assert_int_equal(store_say(r, 42, "bob", 3, text, strlen(text), &seq), 0);
    return seq;
}

static void say_n(store_room_t *r, int n)
{
    for (int i = 0; i < n; i++)
        say(r, "x");
}

static int join(store_t *s, store_room_t *r, store_node_t *n, uint64_t conn,
                const char *nick, char *old)
{
    return store_join(s, r, n, conn, nick, strlen(nick), old);
}

/* ---- sequencing and rooms ---------------------------------------------- */

static void test_sequence_no_gaps(void **state)
{
    (void)state;
    store_t *s = store_new(100, 0);
    store_room_t *r = room(s, "lobby");
    assert_int_equal(store_room_seq(r), 0);
    for (uint64_t i = 1; i <= 250; i++)
        assert_int_equal(say(r, "hi"), i);
    assert_int_equal(store_room_seq(r), 250);
    const history_t *h = store_room_history(r);
    assert_int_equal(history_count(h), 100);
    assert_int_equal(history_first_seq(h), 151);
    assert_int_equal(history_last_seq(h), 250);
    const history_entry_t *e = history_get(h, 250);
    assert_string_equal(e->text, "hi");
    assert_string_equal(e->nick, "bob");
    assert_int_equal(e->ts, 42);
    store_free(s);
    store_free(NULL);
}

static void test_rooms_independent(void **state)
{
    (void)state;
    store_t *s = store_new(10, 0);
    store_room_t *a = room(s, "a");
    store_room_t *b = room(s, "b");
    assert_ptr_equal(room(s, "a"), a);
    assert_ptr_not_equal(a, b);
    assert_int_equal(say(a, "1"), 1);
    assert_int_equal(say(a, "2"), 2);
    assert_int_equal(say(b, "1"), 1);
    assert_int_equal(say(a, "3"), 3);
    assert_int_equal(store_room_seq(b), 1);
    assert_int_equal(store_room_count(s), 2);
    size_t len;
    assert_string_equal(store_room_name(b, &len), "b");
    assert_int_equal(len, 1);
    store_free(s);
}

static void test_epochs(void **state)
{
    (void)state;
    store_t *s = store_new(10, 0);
    const char *ea = store_room_epoch(room(s, "a"));
    const char *eb = store_room_epoch(room(s, "b"));
    assert_int_equal(strlen(ea), STORE_EPOCH_LEN);
    assert_int_equal(strspn(ea, "0123456789abcdef"), STORE_EPOCH_LEN);
    assert_string_not_equal(ea, eb);
    /* an epoch stays with its room */
    assert_ptr_equal(store_room_epoch(room(s, "a")), ea);
    store_free(s);
}

static void test_room_find_and_bounds(void **state)
{
    (void)state;
    store_t *s = store_new(10, 3);
    assert_null(store_room_find(s, "x", 1));
    char long_name[STORE_MAX_ROOM + 2];
    memset(long_name, 'r', sizeof long_name);
    errno = 0;
    assert_null(store_room_open(s, long_name, STORE_MAX_ROOM + 1));
    assert_int_equal(errno, EINVAL);
    assert_null(store_room_open(s, "", 0));
    assert_non_null(store_room_open(s, long_name, STORE_MAX_ROOM));
    room(s, "x");
    room(s, "y");
    errno = 0;
    assert_null(store_room_open(s, "z", 1));
    assert_int_equal(errno, ENOSPC);
    assert_non_null(store_room_open(s, "x", 1)); /* existing: still fine */
    assert_int_equal(store_room_count(s), 3);
    store_free(s);
}

/* Many rooms force the tables to grow: every room stays reachable. */
static void test_many_rooms(void **state)
{
    (void)state;
    store_t *s = store_new(2, 0);
    char name[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "room%d", i);
        store_room_t *r = room(s, name);
        say_n(r, i % 5);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "room%d", i);
        store_room_t *r = store_room_find(s, name, strlen(name));
        assert_non_null(r);
        assert_string_equal(store_room_name(r, NULL), name);
        assert_int_equal(store_room_seq(r), (uint64_t)(i % 5));
    }
    assert_int_equal(store_room_count(s), 3000);
    store_free(s);
}

/* ---- members and presence decisions ------------------------------------ */

static void test_join_leave_rename(void **state)
{
    (void)state;
    store_t *s = store_new(10, 0);
    store_room_t *r = room(s, "lobby");
    store_node_t *n = node(s, "gw-1");
    char old[STORE_MAX_NICK + 1];
    assert_int_equal(join(s, r, n, 1, "alice", old), STORE_JOIN_NEW);
    assert_int_equal(join(s, r, n, 1, "alice", old), STORE_JOIN_SAME);
    assert_int_equal(store_room_members(r), 1);
    assert_int_equal(join(s, r, n, 1, "alicia", old), STORE_JOIN_RENAMED);
    assert_string_equal(old, "alice");
    assert_int_equal(store_room_members(r), 1);
    size_t len;
    assert_string_equal(store_room_member_nick(r, 0, &len), "alicia");
    assert_int_equal(len, 6);
    /* the same nick on another connection is another member */
    assert_int_equal(join(s, r, n, 2, "alicia", old), STORE_JOIN_NEW);
    assert_int_equal(store_room_members(r), 2);
    assert_int_equal(store_node_members(n), 2);
    char nick[STORE_MAX_NICK + 1];
    assert_int_equal(store_leave(s, r, n, 1, nick), 1);
    assert_string_equal(nick, "alicia");
    assert_int_equal(store_leave(s, r, n, 1, nick), 0);
    assert_int_equal(store_leave(s, r, n, 3, nick), 0);
    assert_int_equal(store_room_members(r), 1);
    assert_int_equal(store_node_members(n), 1);
    store_free(s);
}

static void test_join_bad_nick(void **state)
{
    (void)state;
    store_t *s = store_new(10, 0);
    store_room_t *r = room(s, "lobby");
    store_node_t *n = node(s, "gw-1");
    char old[STORE_MAX_NICK + 1];
    char nick[STORE_MAX_NICK + 2];
    memset(nick, 'n', sizeof nick);
    assert_int_equal(store_join(s, r, n, 1, nick, 0, old), -1);
    assert_int_equal(store_join(s, r, n, 1, nick, STORE_MAX_NICK + 1, old), -1);
    assert_int_equal(store_room_members(r), 0);
    assert_int_equal(store_join(s, r, n, 1, nick, STORE_MAX_NICK, old),
                     STORE_JOIN_NEW);
    store_free(s);
}

/* The same conn id on two nodes is two members. */
static void test_members_keyed_by_node_and_conn(void **state)
{
    (void)state;
    store_t *s = store_new(10, 0);
    store_room_t *r = room(s, "lobby");
    store_node_t *n1 = node(s, "gw-1");
    store_node_t *n2 = node(s, "gw-2");
    char old[STORE_MAX_NICK + 1];
    assert_int_equal(join(s, r, n1, 7, "a", old), STORE_JOIN_NEW);
    assert_int_equal(join(s, r, n2, 7, "b", old), STORE_JOIN_NEW);
    assert_int_equal(store_room_members(r), 2);
    char nick[STORE_MAX_NICK + 1];
    assert_int_equal(store_leave(s, r, n2, 7, nick), 1);
    assert_string_equal(nick, "b");
    assert_string_equal(store_room_member_nick(r, 0, &(size_t){0}), "a");
    store_free(s);
}

static void test_nodes(void **state)
{
    (void)state;
    store_t *s = store_new(10, 0);
    assert_null(store_node_find(s, "gw-1", 4));
    store_node_t *n = node(s, "gw-1");
    assert_null(store_node_add(s, "gw-1", 4, 5)); /* already there */
    assert_null(store_node_add(s, "", 0, 5));
    assert_ptr_equal(store_node_find(s, "gw-1", 4), n);
    size_t len;
    const uint8_t *id = store_node_id(n, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(id, "gw-1", 4);
    assert_int_equal(store_node_count(s), 1);
    assert_int_equal(store_node_remove(s, n, NULL, NULL), 0);
    assert_null(store_node_find(s, "gw-1", 4));
    assert_int_equal(store_node_count(s), 0);
    store_free(s);
}

/* ---- node removal and expiry ------------------------------------------- */

typedef struct {
    int calls;
    char log[512];
    const store_node_t *expired[4];
    int nexpired;
} leaves_t;

static void on_leave(void *arg, const store_room_t *r, const store_node_t *n,
                     uint64_t conn, const char *nick, size_t nick_len,
                     size_t members)
{
    leaves_t *l = arg;
    size_t used = strlen(l->log);
    snprintf(l->log + used, sizeof l->log - used, "%s/%llu/%.*s/%zu;",
             store_room_name(r, NULL), (unsigned long long)conn, (int)nick_len,
             nick, members);
    l->calls++;
    (void)n;
}

static void on_expire(void *arg, const store_node_t *n)
{
    leaves_t *l = arg;
    if (l->nexpired < 4)
        l->expired[l->nexpired++] = n;
}

static void test_node_expiry(void **state)
{
    (void)state;
    store_t *s = store_new(10, 0);
    store_room_t *a = room(s, "a");
    store_room_t *b = room(s, "b");
    store_node_t *old = store_node_add(s, "old", 3, 1000);
    store_node_t *live = store_node_add(s, "live", 4, 1000);
    char o[STORE_MAX_NICK + 1];
    join(s, a, old, 1, "o1", o);
    join(s, a, live, 1, "l1", o);
    join(s, a, old, 2, "o2", o);
    join(s, b, old, 1, "o1", o);
    join(s, b, live, 2, "l2", o);
    store_node_touch(live, 4000);
    assert_int_equal(store_member_count(s), 5);
    leaves_t l = {0};
    /* nothing is due yet */
    assert_int_equal(store_node_expire(s, 3999, 3000, on_expire, on_leave, &l),
                     0);
    assert_int_equal(l.calls, 0);
    assert_int_equal(store_node_expire(s, 4000, 3000, on_expire, on_leave, &l),
                     1);
    assert_int_equal(l.nexpired, 1);
    assert_ptr_equal(l.expired[0], old);
    assert_int_equal(l.calls, 3);
    assert_non_null(strstr(l.log, "a/1/o1/"));
    assert_non_null(strstr(l.log, "a/2/o2/"));
    assert_non_null(strstr(l.log, "b/1/o1/1;"));
    assert_null(store_node_find(s, "old", 3));
    assert_ptr_equal(store_node_find(s, "live", 4), live);
    assert_int_equal(store_room_members(a), 1);
    assert_string_equal(store_room_member_nick(a, 0, &(size_t){0}), "l1");
    assert_int_equal(store_room_members(b), 1);
    assert_string_equal(store_room_member_nick(b, 0, &(size_t){0}), "l2");
    assert_int_equal(store_node_members(live), 2);
    assert_int_equal(store_member_count(s), 2);
    store_free(s);
}

/* Removing a node that emptied rooms keeps the occupied-room list sound:
 * the rooms can be joined and emptied again. */
static void test_node_remove_empties_rooms(void **state)
{
    (void)state;
    store_t *s = store_new(10, 0);
    store_room_t *r[3] = {room(s, "r0"), room(s, "r1"), room(s, "r2")};
    store_node_t *n = node(s, "gw");
    char o[STORE_MAX_NICK + 1];
    for (int i = 0; i < 3; i++)
        for (uint64_t c = 1; c <= 5; c++)
            join(s, r[i], n, c, "n", o);
    leaves_t l = {0};
    assert_int_equal(store_node_remove(s, n, on_leave, &l), 15);
    assert_int_equal(l.calls, 15);
    for (int i = 0; i < 3; i++)
        assert_int_equal(store_room_members(r[i]), 0);
    n = node(s, "gw2");
    join(s, r[1], n, 1, "n", o);
    join(s, r[2], n, 1, "n", o);
    char nick[STORE_MAX_NICK + 1];
    assert_int_equal(store_leave(s, r[1], n, 1, nick), 1);
    memset(&l, 0, sizeof l);
    assert_int_equal(store_node_remove(s, n, on_leave, &l), 1);
    assert_string_equal(l.log, "r2/1/n/0;");
    /* history survives members leaving */
    say(r[0], "kept");
    assert_int_equal(store_room_seq(r[0]), 1);
    store_free(s);
}

/* ---- replay rules ------------------------------------------------------ */

static void plan(const store_room_t *r, bool has_since, uint64_t since,
                 const char *epoch, uint32_t limit, store_replay_t *out)
{
    store_replay_plan(r, has_since, since, epoch,
                      epoch == NULL ? 0 : strlen(epoch), limit, out);
}

static void assert_plan(const store_replay_t *p, uint64_t first, uint64_t last,
                        size_t count, bool recovered)
{
    assert_int_equal(p->first, first);
    assert_int_equal(p->last, last);
    assert_int_equal(p->count, count);
    assert_int_equal(p->recovered, recovered);
}

static void test_replay_without_since(void **state)
{
    (void)state;
    store_t *s = store_new(100, 0);
    store_room_t *r = room(s, "lobby");
    store_replay_t p;
    plan(r, false, 0, NULL, 50, &p);
    assert_plan(&p, 0, 0, 0, false); /* empty room */
    say_n(r, 30);
    plan(r, false, 0, NULL, 50, &p);
    assert_plan(&p, 1, 30, 30, false);
    plan(r, false, 0, NULL, 10, &p);
    assert_plan(&p, 21, 30, 10, false);
    say_n(r, 170);
    plan(r, false, 0, NULL, 0, &p); /* 0: the whole history */
    assert_plan(&p, 101, 200, 100, false);
    plan(r, false, 0, NULL, 500, &p);
    assert_plan(&p, 101, 200, 100, false);
    store_free(s);
}

static void test_replay_since_within_history(void **state)
{
    (void)state;
    store_t *s = store_new(100, 0);
    store_room_t *r = room(s, "lobby");
    const char *ep = store_room_epoch(r);
    say_n(r, 150); /* holds 51..150 */
    store_replay_t p;
    plan(r, true, 120, ep, 0, &p);
    assert_plan(&p, 121, 150, 30, true);
    plan(r, true, 50, ep, 0, &p); /* since + 1 is the oldest held */
    assert_plan(&p, 51, 150, 100, true);
    plan(r, true, 149, ep, 1000, &p);
    assert_plan(&p, 150, 150, 1, true);
    /* HIST carries no epoch: NULL is taken as matching */
    plan(r, true, 140, NULL, 0, &p);
    assert_plan(&p, 141, 150, 10, true);
    store_free(s);
}

static void test_replay_since_capped_by_limit(void **state)
{
    (void)state;
    store_t *s = store_new(100, 0);
    store_room_t *r = room(s, "lobby");
    const char *ep = store_room_epoch(r);
    say_n(r, 40);
    store_replay_t p;
    /* the first limit after since; not all of them, so not recovered */
    plan(r, true, 10, ep, 5, &p);
    assert_plan(&p, 11, 15, 5, false);
    plan(r, true, 35, ep, 5, &p);
    assert_plan(&p, 36, 40, 5, true);
    store_free(s);
}

static void test_replay_since_older_than_ring(void **state)
{
    (void)state;
    store_t *s = store_new(100, 0);
    store_room_t *r = room(s, "lobby");
    const char *ep = store_room_epoch(r);
    say_n(r, 150); /* holds 51..150 */
    store_replay_t p;
    plan(r, true, 49, ep, 0, &p);
    assert_plan(&p, 51, 150, 100, false);
    plan(r, true, 0, ep, 0, &p);
    assert_plan(&p, 51, 150, 100, false);
    plan(r, true, 10, ep, 20, &p);
    assert_plan(&p, 51, 70, 20, false);
    store_free(s);
}

static void test_replay_wrong_epoch(void **state)
{
    (void)state;
    store_t *s = store_new(100, 0);
    store_room_t *r = room(s, "lobby");
    say_n(r, 150);
    store_replay_t p;
    plan(r, true, 120, "0123456789abcdef", 0, &p);
    assert_plan(&p, 51, 150, 100, false);
    plan(r, true, 120, "", 0, &p);
    assert_plan(&p, 51, 150, 100, false);
    plan(r, true, 150, "0123456789abcdef", 0, &p);
    assert_plan(&p, 51, 150, 100, false);
    plan(r, true, 120, "0123456789abcdef", 10, &p);
    assert_plan(&p, 141, 150, 10, false);
    /* a prefix of the epoch is another epoch */
    char prefix[STORE_EPOCH_LEN];
    memcpy(prefix, store_room_epoch(r), STORE_EPOCH_LEN - 1);
    prefix[STORE_EPOCH_LEN - 1] = '\0';
    plan(r, true, 120, prefix, 0, &p);
    assert_false(p.recovered);
    store_free(s);
}

static void test_replay_since_at_or_beyond_seq(void **state)
{
    (void)state;
    store_t *s = store_new(100, 0);
    store_room_t *r = room(s, "lobby");
    const char *ep = store_room_epoch(r);
    store_replay_t p;
    plan(r, true, 0, ep, 0, &p); /* empty room, since 0 */
    assert_plan(&p, 0, 0, 0, true);
    say_n(r, 150);
    plan(r, true, 150, ep, 0, &p);
    assert_plan(&p, 0, 0, 0, true);
    plan(r, true, 999, ep, 0, &p);
    assert_plan(&p, 0, 0, 0, true);
    store_free(s);
}

/* ---- journal restore --------------------------------------------------- */

static int restore(store_t *s, const char *room, const char *epoch,
                   uint64_t seq)
{
    return store_restore(s, room, strlen(room), epoch, strlen(epoch), seq,
                         seq * 2, "n", 1, "t", 1);
}

static void test_restore(void **state)
{
    (void)state;
    store_t *s = store_new(3, 0);
    const char *ep = "00112233445566ff";
    /* a journal keeps the last messages only: it may start mid-stream */
    assert_int_equal(restore(s, "r", ep, 41), 0);
    assert_int_equal(restore(s, "r", ep, 42), 0);
    errno = 0;
    assert_int_equal(restore(s, "r", ep, 44), -1); /* a hole */
    assert_int_equal(errno, EINVAL);
    assert_int_equal(restore(s, "r", "ffffffffffffffff", 43), -1);
    assert_int_equal(restore(s, "r", "short", 43), -1);
    assert_int_equal(restore(s, "r", ep, 43), 0);
    assert_int_equal(restore(s, "r", ep, 44), 0);
    store_room_t *r = store_room_find(s, "r", 1);
    assert_non_null(r);
    assert_string_equal(store_room_epoch(r), ep);
    assert_int_equal(store_room_seq(r), 44);
    const history_t *h = store_room_history(r);
    assert_int_equal(history_first_seq(h), 42);
    assert_int_equal(history_get(h, 43)->ts, 86);
    /* sequencing goes on from the restored seq, in the restored epoch */
    assert_int_equal(say(r, "live"), 45);
    store_replay_t p;
    store_replay_plan(r, true, 43, ep, STORE_EPOCH_LEN, 0, &p);
    assert_int_equal(p.first, 44);
    assert_int_equal(p.last, 45);
    assert_true(p.recovered);
    store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence_no_gaps),
        cmocka_unit_test(test_rooms_independent),
        cmocka_unit_test(test_epochs),
        cmocka_unit_test(test_room_find_and_bounds),
        cmocka_unit_test(test_many_rooms),
        cmocka_unit_test(test_join_leave_rename),
        cmocka_unit_test(test_join_bad_nick),
        cmocka_unit_test(test_members_keyed_by_node_and_conn),
        cmocka_unit_test(test_nodes),
        cmocka_unit_test(test_node_expiry),
        cmocka_unit_test(test_node_remove_empties_rooms),
        cmocka_unit_test(test_replay_without_since),
        cmocka_unit_test(test_replay_since_within_history),
        cmocka_unit_test(test_replay_since_capped_by_limit),
        cmocka_unit_test(test_replay_since_older_than_ring),
        cmocka_unit_test(test_replay_wrong_epoch),
        cmocka_unit_test(test_replay_since_at_or_beyond_seq),
        cmocka_unit_test(test_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
