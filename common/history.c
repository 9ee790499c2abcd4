/*
 * history.c - a fixed-capacity ring of a room's last messages.
 *
 * Slots are allocated once (capacity of them); each slot keeps its nick and
 * text buffers between uses, so a steady stream of messages of similar size
 * allocates nothing once the ring has wrapped.  A buffer much larger than
 * what it now holds is shrunk, so one huge message does not pin its memory
 * for the life of the room.  The slot array itself grows by doubling up to
 * the capacity, so a quiet room does not pay for a full ring.
 */
#include "history.h"

#include <stdlib.h>
#include <string.h>

/* A slot keeps its buffers' sizes so the next message can reuse them. */
typedef struct {
    history_entry_t e;
    size_t nick_cap;
    size_t text_cap;
} slot_t;

struct history {
    slot_t *slots;
    size_t alloc; /* slots allocated: grows up to capacity */
    size_t capacity;
    size_t head; /* index of the oldest entry */
    size_t count;
};

/* Buffers at least this big are shrunk when they hold 4x less than their
 * size: small ones are kept, whatever their use. */
#define SHRINK_MIN 4096
#define INITIAL_SLOTS 16

history_t *history_new(size_t capacity)
{
    if (capacity == 0 || capacity > SIZE_MAX / sizeof(slot_t))
        return NULL;
    history_t *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->alloc = capacity < INITIAL_SLOTS ? capacity : INITIAL_SLOTS;
    h->slots = calloc(h->alloc, sizeof *h->slots);
    if (h->slots == NULL) {
        free(h);
        return NULL;
    }
    h->capacity = capacity;
    return h;
}

void history_free(history_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->alloc; i++) {
        free(h->slots[i].e.nick);
        free(h->slots[i].e.text);
    }
    free(h->slots);
    free(h);
}

/*
 * Makes sure a buffer of *cap bytes (at *buf) can hold need bytes.  On
 * success *fresh is a newly allocated buffer to install (or NULL when the
 * old one is kept) with its size in *fresh_cap.  Nothing is changed on
 * failure, so the caller can undo an earlier step.
 */
static int prepare(char *buf, size_t cap, size_t need, char **fresh,
                   size_t *fresh_cap)
{
    *fresh = NULL;
    *fresh_cap = cap;
    int fits = buf != NULL && need <= cap;
    int too_big = cap >= SHRINK_MIN && need < cap / 4;
    if (fits && !too_big)
        return 0;
    *fresh = malloc(need);
    if (*fresh == NULL)
        return -1;
    *fresh_cap = need;
    return 0;
}

/*
 * Makes room for one more entry before the ring is full.  Until then no
 * entry was evicted, so head is 0 and entries sit at 0..count-1: growing
 * the array keeps every index valid.
 */
static int grow(history_t *h)
{
    if (h->count < h->alloc || h->alloc == h->capacity)
        return 0;
    size_t n = h->alloc * 2 < h->capacity ? h->alloc * 2 : h->capacity;
    slot_t *p = realloc(h->slots, n * sizeof *p);
    if (p == NULL)
        return -1;
    memset(p + h->alloc, 0, (n - h->alloc) * sizeof *p);
    h->slots = p;
    h->alloc = n;
    return 0;
}

static void install(char **buf, size_t *cap, char *fresh, size_t fresh_cap,
                    const char *src, size_t len)
{
    if (fresh != NULL) {
        free(*buf);
        *buf = fresh;
        *cap = fresh_cap;
    }
    if (len > 0)
        memcpy(*buf, src, len);
    (*buf)[len] = '\0';
}

int history_append(history_t *h, uint64_t seq, uint64_t ts, const char *nick,
                   size_t nick_len, const char *text, size_t text_len)
{
    if (seq == 0 || (h->count > 0 && seq != history_last_seq(h) + 1))
        return -1;
    if (nick_len == SIZE_MAX || text_len == SIZE_MAX)
        return -1;
    if (grow(h) < 0)
        return -1;
    size_t idx =
        h->count < h->capacity ? (h->head + h->count) % h->capacity : h->head;
    slot_t *s = &h->slots[idx];
    char *nf, *tf;
    size_t ncap, tcap;
    if (prepare(s->e.nick, s->nick_cap, nick_len + 1, &nf, &ncap) < 0)
        return -1;
    if (prepare(s->e.text, s->text_cap, text_len + 1, &tf, &tcap) < 0) {
        free(nf);
        return -1;
    }
    install(&s->e.nick, &s->nick_cap, nf, ncap, nick, nick_len);
    install(&s->e.text, &s->text_cap, tf, tcap, text, text_len);
    s->e.nick_len = nick_len;
    s->e.text_len = text_len;
    s->e.seq = seq;
    s->e.ts = ts;
    if (h->count < h->capacity)
        h->count++;
    else
        h->head = (h->head + 1) % h->capacity;
    return 0;
}

uint64_t history_first_seq(const history_t *h)
{
    return h->count == 0 ? 0 : h->slots[h->head].e.seq;
}

uint64_t history_last_seq(const history_t *h)
{
    if (h->count == 0)
        return 0;
    return h->slots[(h->head + h->count - 1) % h->capacity].e.seq;
}

size_t history_count(const history_t *h)
{
    return h->count;
}

size_t history_capacity(const history_t *h)
{
    return h->capacity;
}

const history_entry_t *history_get(const history_t *h, uint64_t seq)
{
    uint64_t first = history_first_seq(h);
    if (h->count == 0 || seq < first || seq > history_last_seq(h))
        return NULL;
    return &h->slots[(h->head + (size_t)(seq - first)) % h->capacity].e;
}
