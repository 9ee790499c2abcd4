/*
 * store.h - the broker's state: rooms (sequence number, epoch, history,
 * members) and nodes (gateway workers).  Pure: no ZeroMQ, no clock, no
 * logging; the caller passes the time in.  Not thread-safe.
 *
 * Rooms are created on first use and kept for the broker's lifetime (their
 * history must outlive their members), up to max_rooms.  A member is one
 * (node, conn) pair in one room, with a nick; the same nick may be used by
 * several members.
 */
#ifndef PARLEY_STORE_H
#define PARLEY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"

#define STORE_EPOCH_LEN 16    /* hex digits */
#define STORE_MAX_NICK 32     /* = WIRE_MAX_NICK */
#define STORE_MAX_ROOM 64     /* = WIRE_MAX_ROOM */
#define STORE_MAX_NODE_ID 255 /* a ZeroMQ routing id */

typedef struct store store_t;
typedef struct store_room store_room_t;
typedef struct store_node store_node_t;

/*
 * A store whose rooms keep history_size (>= 1) messages each, holding at
 * most max_rooms rooms (0: no bound).  NULL when out of memory or on a bad
 * argument.
 */
store_t *store_new(size_t history_size, size_t max_rooms);

/* Frees s, its rooms and nodes; NULL is a no-op. */
void store_free(store_t *s);

size_t store_room_count(const store_t *s);
size_t store_node_count(const store_t *s);

/* Memberships over all rooms (a connection in two rooms counts twice). */
size_t store_member_count(const store_t *s);

/* ---- nodes ------------------------------------------------------------- */

/* The node with this routing id, or NULL.  Borrowed until it is removed. */
store_node_t *store_node_find(store_t *s, const void *id, size_t len);

/*
 * Registers a node (id: 1..STORE_MAX_NODE_ID bytes, copied) seen at now.
 * Returns the new node, or NULL when out of memory, the id is invalid or
 * already registered (use store_node_find first).
 */
store_node_t *store_node_add(store_t *s, const void *id, size_t len,
                             uint64_t now);

/* Records a sign of life at now. */
void store_node_touch(store_node_t *n, uint64_t now);

/* The node's routing id (not NUL-terminated), its length in *len. */
const uint8_t *store_node_id(const store_node_t *n, size_t *len);

/* Number of memberships the node holds, over all rooms. */
size_t store_node_members(const store_node_t *n);

/*
 * Called once per member removed with its node (node, conn, nick): room,
 * node, conn and nick are borrowed for the call only; members is the
 * room's member count after the removal.  It must not modify the store.
 */
typedef void (*store_leave_fn)(void *arg, const store_room_t *room,
                               const store_node_t *node, uint64_t conn,
                               const char *nick, size_t nick_len,
                               size_t members);

/*
 * Removes every member of n (calling fn for each, if not NULL) and then n
 * itself; n is invalid afterwards.  Returns the number of members removed.
 */
size_t store_node_remove(store_t *s, store_node_t *n, store_leave_fn fn,
                         void *arg);

/*
 * Removes every node last seen at or before now - timeout, as
 * store_node_remove() does; before_fn (if not NULL) is called with each
 * such node before its members leave.  Returns the number of nodes removed.
 */
size_t store_node_expire(store_t *s, uint64_t now, uint64_t timeout,
                         void (*before_fn)(void *arg, const store_node_t *n),
                         store_leave_fn fn, void *arg);

/* ---- rooms ------------------------------------------------------------- */

/* The room with this name, or NULL.  Rooms live as long as the store. */
store_room_t *store_room_find(store_t *s, const char *name, size_t len);

/*
 * The room with this name (1..STORE_MAX_ROOM bytes), created with seq 0,
 * a fresh random epoch and an empty history if needed.  NULL with errno
 * EINVAL (bad name), ENOSPC (max_rooms reached) or ENOMEM.
 */
store_room_t *store_room_open(store_t *s, const char *name, size_t len);

/* The room's name (NUL-terminated), its length in *len if not NULL. */
const char *store_room_name(const store_room_t *r, size_t *len);

/* The room's epoch: STORE_EPOCH_LEN hex digits, NUL-terminated. */
const char *store_room_epoch(const store_room_t *r);

/* Last assigned sequence number (0 before the first message). */
uint64_t store_room_seq(const store_room_t *r);

size_t store_room_members(const store_room_t *r);

/* The nick of member i (< store_room_members(r)), in no particular order.
 * Borrowed until the room's members change. */
const char *store_room_member_nick(const store_room_t *r, size_t i,
                                   size_t *len);

const history_t *store_room_history(const store_room_t *r);

/*
 * Sequences a message: assigns seq + 1, appends it with ts, nick and text
 * (copied) to the history.  Membership is not checked: a message is never
 * lost because the broker forgot a member.  Returns 0 with the new
 * sequence number in *seq, or -1 when out of memory (nothing changed).
 */
int store_say(store_room_t *r, uint64_t ts, const char *nick, size_t nick_len,
              const char *text, size_t text_len, uint64_t *seq);

/*
 * Loads one message read back from a journal into the room name: the room
 * is created with this epoch (STORE_EPOCH_LEN bytes) if it does not exist
 * yet, or must have it and have seq == its seq + 1 (a fresh room accepts
 * any seq >= 1: the journal keeps only the last messages).  Returns 0, or
 * -1 with errno EINVAL (other epoch, out of order), ENOSPC or ENOMEM.
 */
int store_restore(store_t *s, const char *name, size_t len, const char *epoch,
                  size_t epoch_len, uint64_t seq, uint64_t ts, const char *nick,
                  size_t nick_len, const char *text, size_t text_len);

typedef enum {
    STORE_JOIN_NEW = 0,    /* a new member: presence join */
    STORE_JOIN_SAME = 1,   /* already a member with this nick: nothing */
    STORE_JOIN_RENAMED = 2 /* already a member: leave old nick, join new */
} store_join_t;

/*
 * Makes (n, conn) a member of r with nick (1..STORE_MAX_NICK bytes).  On
 * STORE_JOIN_RENAMED the previous nick is copied to old_nick (at least
 * STORE_MAX_NICK + 1 bytes), NUL-terminated.  Returns a store_join_t, or -1
 * on a bad nick or when out of memory (nothing changed).
 */
int store_join(store_t *s, store_room_t *r, store_node_t *n, uint64_t conn,
               const char *nick, size_t nick_len, char *old_nick);

/*
 * Removes (n, conn) from r.  Returns 1 with its nick copied to nick (at
 * least STORE_MAX_NICK + 1 bytes) when it was a member, else 0.
 */
int store_leave(store_t *s, store_room_t *r, store_node_t *n, uint64_t conn,
                char *nick);

/* ---- replay ------------------------------------------------------------ */

/* What a JOINED or HISTORY reply carries: the held messages first..last
 * (none when count is 0). */
typedef struct {
    uint64_t first;
    uint64_t last;
    size_t count;
    bool recovered;
} store_replay_t;

/*
 * Plans the replay of docs/wire.md ("The broker's side").  epoch (NUL-
 * terminated or with epoch_len) is the client's; NULL means "not given,
 * assume it matches" (HIST carries no epoch).  limit 0 means no cap beyond
 * the history.
 *  - has_since, same epoch: the held messages with seq > since, the first
 *    limit of them; recovered when they are all of the room's messages
 *    after since (since + 1 is held or since >= seq) and none was cut.
 *  - has_since, other epoch: the last limit held messages, not recovered.
 *  - no since: the last limit held messages, not recovered.
 */
void store_replay_plan(const store_room_t *r, bool has_since, uint64_t since,
                       const char *epoch, size_t epoch_len, uint32_t limit,
                       store_replay_t *out);

#endif
