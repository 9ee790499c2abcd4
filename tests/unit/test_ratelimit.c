/*
 * test_ratelimit.c - the token bucket with a fake clock: burst, steady
 * refill, exactness over many small steps (no drift), the cap, a clock
 * going backwards, overflow-safe long idles, and the wait hint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"

/* The policy of the bucket under test (one at a time, as in a server). */
static ratelimit_policy_t pol;

static void init(ratelimit_t *rl, uint32_t rate, uint32_t burst)
{
    ratelimit_policy_init(&pol, rate, burst);
    ratelimit_init(rl, &pol);
}

static bool take(ratelimit_t *rl, uint64_t now_ms)
{
    return ratelimit_take(rl, &pol, now_ms);
}

static uint64_t wait_ms(ratelimit_t *rl, uint64_t now_ms)
{
    return ratelimit_wait_ms(rl, &pol, now_ms);
}

/* Takes tokens at now_ms until refused; returns how many were taken. */
static unsigned drain(ratelimit_t *rl, uint64_t now_ms)
{
    unsigned n = 0;
    while (take(rl, now_ms) && n < 1000000)
        n++;
    return n;
}

static void test_burst(void **state)
{
    ratelimit_t rl;
    init(&rl, 5, 10);
    assert_int_equal(drain(&rl, 1000), 10);
    assert_false(take(&rl, 1000));
    /* burst 0 behaves as 1 */
    init(&rl, 5, 0);
    assert_int_equal(drain(&rl, 0), 1);
}

static void test_refill(void **state)
{
    ratelimit_t rl;
    init(&rl, 5, 10); /* one token per 200 ms */
    assert_int_equal(drain(&rl, 5000), 10);
    assert_false(take(&rl, 5199));
    assert_true(take(&rl, 5200));
    assert_false(take(&rl, 5200));
    assert_int_equal(drain(&rl, 6200), 5);
    /* Never more than the burst, however long the pause. */
    assert_int_equal(drain(&rl, 60000), 10);
}

static void test_no_drift(void **state)
{
    /* 3 tokens per second is 3 milli-tokens per ms: querying every ms for
     * 100 s must allow exactly 300 tokens after the burst, as floating
     * point accumulation of 1/3 would not guarantee.  (Burst 2, so the
     * cap never clips a partial token.) */
    ratelimit_t rl;
    init(&rl, 3, 2);
    unsigned taken = 0;
    for (uint64_t t = 0; t <= 100000; t++)
        taken += take(&rl, t);
    assert_int_equal(taken, 2 + 300);
    /* Odd rates over odd steps. */
    init(&rl, 7, 2);
    taken = 0;
    for (uint64_t t = 0; t <= 70000; t += 13)
        taken += take(&rl, t);
    /* t reaches 69992: 2 + floor(69992 * 7 / 1000) = 2 + 489 */
    assert_int_equal(taken, 491);
}

static void test_clock_backwards(void **state)
{
    ratelimit_t rl;
    init(&rl, 1, 1);
    assert_true(take(&rl, 10000));
    assert_false(take(&rl, 5000)); /* backwards: no refill */
    assert_false(take(&rl, 10999));
    assert_true(take(&rl, 11000));
}

static void test_extremes(void **state)
{
    ratelimit_t rl;
    /* Huge rate and burst over a huge idle time: no overflow. */
    init(&rl, UINT32_MAX, UINT32_MAX);
    assert_true(take(&rl, 0));
    assert_true(take(&rl, UINT64_MAX));
    assert_int_equal(rl.milli, (uint64_t)UINT32_MAX * 1000 - 1000);
    /* Rate 0: the burst and nothing more. */
    init(&rl, 0, 2);
    assert_int_equal(drain(&rl, 0), 2);
    assert_false(take(&rl, UINT64_MAX));
    assert_int_equal(wait_ms(&rl, UINT64_MAX), UINT64_MAX);
}

static void test_wait_ms(void **state)
{
    ratelimit_t rl;
    init(&rl, 3, 1);
    assert_int_equal(wait_ms(&rl, 0), 0);
    assert_true(take(&rl, 0));
    assert_int_equal(wait_ms(&rl, 0), 334); /* ceil(1000 / 3) */
    assert_int_equal(wait_ms(&rl, 300), 34);
    assert_false(take(&rl, 333));
    assert_true(take(&rl, 334));
}

static void test_shared_policy(void **state)
{
    /* One policy, two buckets: each keeps its own tokens and clock. */
    ratelimit_t a, b;
    init(&a, 2, 2);
    ratelimit_init(&b, &pol);
    assert_int_equal(drain(&a, 1000), 2);
    assert_int_equal(drain(&b, 1500), 2);
    assert_true(take(&a, 1500));  /* 500 ms at 2/s: one token */
    assert_false(take(&b, 1500)); /* its clock started at 1500 */
    assert_true(take(&b, 2000));
}

static void test_time_max(void **state)
{
    /* Takes at the last representable ms (the "not started" mark is that
     * same value): the burst, then nothing, since no time can follow. */
    ratelimit_t rl;
    init(&rl, 1000, 3);
    assert_true(take(&rl, UINT64_MAX));
    assert_true(take(&rl, UINT64_MAX));
    assert_true(take(&rl, UINT64_MAX));
    assert_false(take(&rl, UINT64_MAX));
    assert_int_equal(wait_ms(&rl, UINT64_MAX), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_refill),
        cmocka_unit_test(test_no_drift),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_wait_ms),
        cmocka_unit_test(test_shared_policy),
        cmocka_unit_test(test_time_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
