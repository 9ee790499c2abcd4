/*
 * history.h - a room's message history: a fixed-capacity ring of the last
 * N messages, addressed by sequence number.  Pure: no I/O, no locking.
 * The broker keeps one per room; entries own copies of nick and text.
 */
#ifndef PARLEY_HISTORY_H
#define PARLEY_HISTORY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t seq;
    uint64_t ts; /* ms since the Unix epoch */
    char *nick;  /* owned by the ring, NUL-terminated */
    size_t nick_len;
    char *text; /* owned by the ring, NUL-terminated */
    size_t text_len;
} history_entry_t;

typedef struct history history_t;

/* A ring holding at most capacity (>= 1) entries; NULL when out of memory. */
history_t *history_new(size_t capacity);

/* Frees h and its entries; NULL is a no-op. */
void history_free(history_t *h);

/*
 * Appends a copy of a message.  seq must be history_last_seq(h) + 1, except
 * on an empty ring where any seq >= 1 starts it (a journal replay starts
 * mid-stream).  Evicts the oldest entry when full, reusing its memory where
 * it fits.  Returns 0, or -1 on a bad seq or when out of memory (the ring is
 * unchanged then).
 */
int history_append(history_t *h, uint64_t seq, uint64_t ts, const char *nick,
                   size_t nick_len, const char *text, size_t text_len);

/* Sequence number of the oldest held entry, or 0 when empty. */
uint64_t history_first_seq(const history_t *h);

/* Sequence number of the newest held entry, or 0 when empty. */
uint64_t history_last_seq(const history_t *h);

size_t history_count(const history_t *h);
size_t history_capacity(const history_t *h);

/* The entry with this seq, or NULL when not held.  Borrowed until the next
 * history_append() or history_free(). */
const history_entry_t *history_get(const history_t *h, uint64_t seq);

#endif
