/*
 * hist.c - logarithmic-bucket latency histogram (see hist.h).
 */
#include "hist.h"

#include <string.h>

void hist_init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
}

/* Bucket of v: exact below 2*HIST_SUB, else octave and 7-bit mantissa. */
static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 7u; /* >= 1: v >> shift is in [128, 256) */
    return 2 * HIST_SUB + (shift - 1) * HIST_SUB +
           (unsigned)((v >> shift) - HIST_SUB);
}

/* Highest value that falls in bucket i. */
static uint64_t bucket_top(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned shift = (i - 2 * HIST_SUB) / HIST_SUB + 1;
    uint64_t m = (i - 2 * HIST_SUB) % HIST_SUB + HIST_SUB;
    return (m << shift) + ((uint64_t)1 << shift) - 1;
}

void hist_record(hist_t *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    h->total++;
    if (v > h->max)
        h->max = v;
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    for (unsigned i = 0; i < HIST_N; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_percentile(const hist_t *h, double pct)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)((double)h->total * pct / 100.0 + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_N; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
