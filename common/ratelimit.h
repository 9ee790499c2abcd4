/*
 * ratelimit.h - a token bucket in integer arithmetic, no I/O, no clock.
 *
 * Tokens are counted in milli-tokens, so a rate of r tokens per second
 * refills exactly r milli-tokens per millisecond: no floating point and no
 * rounding drift however often the bucket is queried.  The caller passes
 * the time (a monotonic clock in milliseconds), which keeps the module
 * testable with a fake clock.  UINT64_MAX marks a bucket not yet used: a
 * clock that reached it and then went backwards would restart the bucket
 * (a millisecond clock reaches it after 584 million years).
 *
 * The policy (rate and burst) is kept apart from the bucket: a server has
 * one policy and a bucket per connection, 16 bytes each.
 */
#ifndef PARLEY_RATELIMIT_H
#define PARLEY_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t cap_milli; /* burst * 1000 */
    uint32_t rate;      /* tokens per second = milli-tokens per ms */
} ratelimit_policy_t;

typedef struct {
    uint64_t milli;   /* milli-tokens in the bucket */
    uint64_t last_ms; /* time of the last refill; UINT64_MAX: not yet */
} ratelimit_t;

/*
 * A policy of rate_per_sec tokens per second on average and at most burst
 * at once (burst 0 is taken as 1).  A rate of 0 never refills: burst
 * tokens in all.
 */
void ratelimit_policy_init(ratelimit_policy_t *p, uint32_t rate_per_sec,
                           uint32_t burst);

/* Prepares rl under policy p (borrowed, here and below): the bucket starts
 * full at the first ratelimit_take(). */
void ratelimit_init(ratelimit_t *rl, const ratelimit_policy_t *p);

/*
 * Refills rl for the time elapsed up to now_ms, then takes one token.
 * Returns true when a token was taken, false when the bucket is empty
 * (the caller refuses or delays the action).  A clock that goes backwards
 * refills nothing.
 */
bool ratelimit_take(ratelimit_t *rl, const ratelimit_policy_t *p,
                    uint64_t now_ms);

/*
 * Milliseconds from now_ms until a token will be available (0 when one is
 * now); UINT64_MAX when the bucket never refills.  Does not take a token.
 */
uint64_t ratelimit_wait_ms(ratelimit_t *rl, const ratelimit_policy_t *p,
                           uint64_t now_ms);

#endif
