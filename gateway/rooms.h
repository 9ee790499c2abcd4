/*
 * rooms.h - the rooms of one worker: a hash table of the rooms that have
 * local members, each with its members (an array), the last sequence
 * number delivered in this worker, the epoch, the messages held back
 * (received out of order or while syncing) and a ring of the last
 * ROOM_RING delivered messages (to serve a join that meets the live
 * stream).  Delivery is in seq order; every message is framed once per
 * representation the room needs and the same bytes go to every member.
 *
 * A room that loses its last member while in sync stays in the table,
 * idle, for ROOMS_IDLE_MS (at most ROOMS_IDLE_MAX such rooms, oldest freed
 * first): it keeps following the published stream (its `last`, not its
 * ring), so a plain upgrade into it joins live at once instead of waiting
 * for a broker round trip (docs/gateway.md, "Rooms and ordering").
 *
 * No requests are sent from here: functions return ROOM_ACT_* bits telling
 * the caller (chat.c) what the broker must be asked.
 */
#ifndef PARLEY_ROOMS_H
#define PARLEY_ROOMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conn.h"
#include "frame_cache.h"
#include "names.h"
#include "wire.h"

#define ROOM_RING 256       /* delivered messages kept per room */
#define ROOM_MAX_HELD 4096  /* out-of-order messages held per room */
#define ROOMS_IDLE_MS 10000 /* an empty in-sync room is kept this long */
#define ROOMS_IDLE_MAX 1024 /* empty rooms kept, at most */

typedef enum { ROOM_SYNCING, ROOM_IN_SYNC, ROOM_REPAIRING } room_state_t;
typedef enum { MEMBER_PENDING, MEMBER_LIVE } member_state_t;

/* Actions for the caller, or-ed. */
enum {
    ROOM_ACT_FETCH = 1,  /* a hole: ask HIST since=room->last */
    ROOM_ACT_SYNCED = 2, /* the room just left SYNCING */
    ROOM_ACT_EPOCH = 4   /* the epoch changed: JSON members are pending
                            with rejoin set, to be joined again */
};

/* A message of a room, shared by the ring, the held list and its frames. */
typedef struct rmsg {
    uint32_t refs;
    uint64_t seq;
    uint64_t ts;
    frame_t *plain; /* built on first need */
    frame_t *json;
    /* permessage-deflate variants of plain and json (RSV1 set), built on
     * first need by a compressing member; the uncompressed frame itself
     * (referenced) when compressing did not make it smaller */
    frame_t *plain_z;
    frame_t *json_z;
    char *nick; /* point into the same allocation */
    size_t nick_len;
    char *text;
    size_t text_len;
} rmsg_t;

struct room;

/* One per connection and room: fields ordered so no padding is left
 * (112 -> 96 bytes; bench/findings.md F4). */
typedef struct member {
    conn_t *c;
    struct room *room;
    size_t nick_len;
    uint64_t last_seq;        /* last seq delivered to this member */
    size_t index;             /* in room->members */
    struct member *conn_next; /* the connection's other rooms */
    member_state_t state;
    /* join in progress (chat.c) */
    uint32_t members; /* from the JOINED reply */
    unsigned nreq;    /* requests in flight naming this member */
    char nick[NAME_MAX_NICK + 1];
    bool json;
    bool rejoin;    /* epoch changed: join again (silently) */
    bool recovered; /* from the JOINED reply */
} member_t;

typedef struct room {
    char name[NAME_MAX_ROOM + 1];
    size_t name_len;
    char epoch[WIRE_MAX_EPOCH + 1];
    size_t epoch_len;
    char old_epoch[WIRE_MAX_EPOCH + 1]; /* before the last epoch change */
    size_t old_epoch_len;
    uint64_t last; /* last seq delivered in this worker */
    room_state_t state;
    member_t **members; /* NULL slots only while iterating */
    size_t nmembers, cap;
    size_t nplain, njson; /* members by mode (pending included) */
    int iterating;
    bool holes;
    bool refetch;  /* a message was dropped: held list full */
    rmsg_t **held; /* sorted by seq, unique */
    size_t nheld, held_cap;
    rmsg_t *ring[ROOM_RING];     /* by seq % ROOM_RING */
    uint64_t hist_req;           /* room-level HIST in flight (request id), 0 */
    bool idle;                   /* no members: on the table's idle list */
    uint64_t idle_since;         /* util_mono_ms() when it became idle */
    TAILQ_ENTRY(room) idle_link; /* the idle list, oldest first */
    struct room *hnext;
    struct rooms *rooms;
} room_t;

typedef struct rooms rooms_t;

/* An empty table for worker w (borrowed).  NULL when out of memory. */
rooms_t *rooms_new(worker_t *w);

/* Frees every room (members must be gone); NULL is a no-op. */
void rooms_free(rooms_t *rs);

/* The room called name, or NULL. */
room_t *rooms_find(rooms_t *rs, const char *name, size_t len);

/* The room called name, created (SYNCING) when absent; NULL when out of
 * memory.  A room is freed with its last member, unless it is in sync:
 * then it stays idle (see above) until a member comes back or
 * rooms_expire_idle() frees it. */
room_t *rooms_get(rooms_t *rs, const char *name, size_t len);

/* Calls fn for every room; fn must not add or remove rooms or members. */
void rooms_foreach(rooms_t *rs, void (*fn)(room_t *r, void *arg), void *arg);

/*
 * Adds a pending member for c (its membership list is
 * ws_session_members(c)).  nick is copied (JSON members).  Returns the
 * member (owned by the room), or NULL when out of memory.
 */
member_t *room_add_member(room_t *r, conn_t *c, bool json, const char *nick,
                          size_t nick_len);

/* Removes m from its room and its connection's list and frees it; the
 * room goes (or becomes idle) with its last member.  Safe during a
 * fan-out. */
void room_remove_member(member_t *m);

/* m's member in room r of connection c (c's list), or NULL. */
member_t *room_member_of(conn_t *c, const char *room, size_t len);

/* A published MSG for r: deliver, drop, or hold and ask for repair. */
int room_on_msg(room_t *r, const wire_msg_t *m);

/* The first reply for a SYNCING room: sets epoch and last, delivers what
 * was held after it. */
int room_on_sync(room_t *r, const wire_buf_t *epoch, uint64_t seq);

/* A room-level HISTORY reply: delivers its items after last, then what was
 * held. */
int room_on_history(room_t *r, const wire_msg_t *m);

/* The broker lost r's history (a new epoch): resets r to epoch, last 0;
 * plain members start again at 0, live JSON members become pending with
 * rejoin set.  Returns ROOM_ACT_EPOCH | ROOM_ACT_FETCH. */
int room_epoch_reset(room_t *r, const wire_buf_t *epoch);

/* True when epoch differs from r's. */
bool room_epoch_differs(const room_t *r, const wire_buf_t *epoch);

/*
 * Sends m (pending) what the room delivered after m->last_seq, from the
 * ring.  Returns 0 when m is caught up, or -1 when the ring does not reach
 * back far enough; with force, what the ring lacks is skipped instead
 * (and 0 returned).
 */
int room_member_catch_up(room_t *r, member_t *m, bool force);

/* Sends f (borrowed) to every live JSON member of r except connection id
 * skip_conn (0: none). */
void room_send_json(room_t *r, frame_t *f, uint64_t skip_conn);

/* Sends one message item to a member directly (a replay): its JSON msg
 * frame for JSON members, its text for plain ones.  Returns 0 or -1. */
int room_send_item(room_t *r, member_t *m, uint64_t seq, uint64_t ts,
                   const wire_buf_t *nick, const wire_buf_t *text);

/* Closes the slow consumers found by fan-outs since the last call (after
 * every broker message; never in the middle of a fan-out). */
void rooms_flush_slow(rooms_t *rs);

/* Number of rooms (idle ones included). */
size_t rooms_count(const rooms_t *rs);

/* Frees the idle rooms that have had no member for ROOMS_IDLE_MS at now
 * (util_mono_ms()).  Call it periodically. */
void rooms_expire_idle(rooms_t *rs, uint64_t now);

#endif
