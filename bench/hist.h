/*
 * hist.h - a latency histogram with logarithmic buckets (HdrHistogram-like).
 *
 * Values below 256 have one bucket each; above, every power of two is cut
 * into 128 sub-buckets, so a recorded value is known to within 0.8%.  The
 * whole uint64_t range fits in a fixed array: recording is a few
 * instructions and never allocates, so it can sit on the benchmark's hot
 * path.  Units are the caller's (parley-bench records microseconds).
 */
#ifndef PARLEY_BENCH_HIST_H
#define PARLEY_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB 128                          /* sub-buckets per octave */
#define HIST_N (2 * HIST_SUB + 56 * HIST_SUB) /* covers 0 .. UINT64_MAX */

typedef struct {
    uint64_t counts[HIST_N];
    uint64_t total; /* values recorded */
    uint64_t max;   /* exact largest value */
} hist_t;

/* Empties h. */
void hist_init(hist_t *h);

/* Counts one value v. */
void hist_record(hist_t *h, uint64_t v);

/* Adds every count of src to dst (the merge of per-thread histograms). */
void hist_merge(hist_t *dst, const hist_t *src);

/*
 * The value at percentile pct (0 < pct <= 100): the highest value of the
 * bucket holding that rank, capped at the exact maximum.  0 when empty.
 */
uint64_t hist_percentile(const hist_t *h, double pct);

#endif
