/*
 * ratelimit.c - token bucket in milli-tokens.  See ratelimit.h.
 */
#include "ratelimit.h"

#define MILLI 1000u

void ratelimit_init(ratelimit_t *rl, uint32_t rate_per_sec, uint32_t burst)
{
    rl->cap_milli = (uint64_t)(burst ? burst : 1) * MILLI;
    rl->milli = rl->cap_milli;
    rl->rate = rate_per_sec;
    rl->last_ms = 0;
    rl->started = false;
}

/* Adds the milli-tokens earned since the last refill, up to the cap. */
static void refill(ratelimit_t *rl, uint64_t now_ms)
{
    if (!rl->started) {
        rl->started = true;
        rl->last_ms = now_ms;
        return;
    }
    if (now_ms <= rl->last_ms)
        return; /* no time passed, or the clock went backwards */
    uint64_t elapsed = now_ms - rl->last_ms;
    rl->last_ms = now_ms;
    if (rl->rate == 0)
        return;
    uint64_t room = rl->cap_milli - rl->milli;
    /* Compare before multiplying, so a long idle time cannot overflow. */
    if (elapsed >= room / rl->rate + 1)
        rl->milli = rl->cap_milli;
    else
        rl->milli += elapsed * rl->rate;
}

bool ratelimit_take(ratelimit_t *rl, uint64_t now_ms)
{
    refill(rl, now_ms);
    if (rl->milli < MILLI)
        return false;
    rl->milli -= MILLI;
    return true;
}

uint64_t ratelimit_wait_ms(ratelimit_t *rl, uint64_t now_ms)
{
    refill(rl, now_ms);
    if (rl->milli >= MILLI)
        return 0;
    if (rl->rate == 0)
        return UINT64_MAX;
    uint64_t missing = MILLI - rl->milli;
    return (missing + rl->rate - 1) / rl->rate;
}
