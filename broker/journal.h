/*
 * journal.h - the broker's history on disk: one append-only file per room
 * (<dir>/<room>.journal), replayed at start so sequence numbers, epochs and
 * history survive a broker restart.
 *
 * A record is: u32 body length, u32 CRC-32 of the body, then the body
 * {u64 seq, u64 ts, u8 epoch length, u8 nick length, u32 text length,
 * epoch, nick, text}, integers little-endian.  Loading stops at the first
 * torn or corrupt record (a crash in the middle of a write) and truncates
 * the file there.  A file is compacted (rewritten with its last `keep`
 * records) once it holds twice that many, so disk use stays bounded by the
 * history window.
 */
#ifndef PARLEY_JOURNAL_H
#define PARLEY_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    JOURNAL_FSYNC_ALWAYS,   /* fdatasync after every record */
    JOURNAL_FSYNC_INTERVAL, /* fdatasync dirty files on journal_tick() */
    JOURNAL_FSYNC_NEVER     /* leave it to the kernel */
} journal_fsync_t;

typedef struct journal journal_t;
typedef struct journal_room journal_room_t;

/* One record handed to the load callback; strings are borrowed for the
 * call only (not NUL-terminated). */
typedef struct {
    const char *room;
    size_t room_len;
    const char *epoch;
    size_t epoch_len;
    uint64_t seq;
    uint64_t ts;
    const char *nick;
    size_t nick_len;
    const char *text;
    size_t text_len;
} journal_record_t;

/* Returns 0 to go on, -1 to stop loading with an error. */
typedef int (*journal_load_fn)(void *arg, const journal_record_t *rec);

/*
 * Opens (creating it if needed, mode 0750) the journal directory dir,
 * keeping keep (>= 1) records per room after compaction.  Parses policy
 * ("always", "interval", "never").  NULL with a message in err.
 */
journal_t *journal_open(const char *dir, const char *policy, size_t keep,
                        char *err, size_t errlen);

/* Flushes (fdatasync) and closes every file; NULL is a no-op. */
void journal_close(journal_t *j);

/*
 * Reads every room file in the directory, calling fn for each record in
 * order (per room: consecutive sequence numbers, one epoch).  A torn or
 * corrupt tail is cut off (logged).  Returns the number of records read,
 * or -1 with err set (unreadable directory, fn failed).
 */
long journal_load(journal_t *j, journal_load_fn fn, void *arg, char *err,
                  size_t errlen);

/*
 * The handle of a room's file, opened (created) on first use and kept
 * until journal_close().  NULL with errno set on failure.
 */
journal_room_t *journal_room(journal_t *j, const char *room, size_t len);

/*
 * Appends one record with a single write(2), syncing as the policy says,
 * and compacts the file when it reached 2 * keep records.  Returns 0, or
 * -1 with errno set (the broker logs it and goes on: the message is still
 * sequenced and published, only its durability is lost).
 */
int journal_append(journal_t *j, journal_room_t *r, const char *epoch,
                   size_t epoch_len, uint64_t seq, uint64_t ts,
                   const char *nick, size_t nick_len, const char *text,
                   size_t text_len);

/* Interval policy: fdatasync the files written since the last tick.
 * Call about once a second. */
void journal_tick(journal_t *j);

/* Bytes in all room files (for the broker's metrics). */
uint64_t journal_bytes(const journal_t *j);

#endif
