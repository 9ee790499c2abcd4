/*
 * ratelimit.c - token bucket in milli-tokens.  See ratelimit.h.
 */
#include "ratelimit.h"

#define MILLI 1000u
#define NOT_STARTED UINT64_MAX

void ratelimit_policy_init(ratelimit_policy_t *p, uint32_t rate_per_sec,
                           uint32_t burst)
{
    p->cap_milli = (uint64_t)(burst ? burst : 1) * MILLI;
    p->rate = rate_per_sec;
}

void ratelimit_init(ratelimit_t *rl, const ratelimit_policy_t *p)
{
    rl->milli = p->cap_milli;
    rl->last_ms = NOT_STARTED;
}

/* Adds the milli-tokens earned since the last refill, up to the cap.  A
 * bucket last refilled at UINT64_MAX reads as not started; no time comes
 * after it, so it would not have refilled either (ratelimit.h). */
static void refill(ratelimit_t *rl, const ratelimit_policy_t *p,
                   uint64_t now_ms)
{
    if (rl->last_ms == NOT_STARTED) {
        rl->last_ms = now_ms;
        return;
    }
    if (now_ms <= rl->last_ms)
        return; /* no time passed, or the clock went backwards */
    uint64_t elapsed = now_ms - rl->last_ms;
    rl->last_ms = now_ms;
    if (p->rate == 0 || rl->milli >= p->cap_milli)
        return;
    uint64_t room = p->cap_milli - rl->milli;
    /* Compare before multiplying, so a long idle time cannot overflow. */
    if (elapsed >= room / p->rate + 1)
        rl->milli = p->cap_milli;
    else
        rl->milli += elapsed * p->rate;
}

bool ratelimit_take(ratelimit_t *rl, const ratelimit_policy_t *p,
                    uint64_t now_ms)
{
    refill(rl, p, now_ms);
    if (rl->milli < MILLI)
        return false;
    rl->milli -= MILLI;
    return true;
}

uint64_t ratelimit_wait_ms(ratelimit_t *rl, const ratelimit_policy_t *p,
                           uint64_t now_ms)
{
    refill(rl, p, now_ms);
    if (rl->milli >= MILLI)
        return 0;
    if (p->rate == 0)
        return UINT64_MAX;
    uint64_t missing = MILLI - rl->milli;
    return (missing + p->rate - 1) / p->rate;
}
