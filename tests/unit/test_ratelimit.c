/*
 * test_ratelimit.c - the token bucket with a fake clock: burst, steady
 * refill, exactness over many small steps (no drift), the cap, a clock
 * going backwards, overflow-safe long idles, and the wait hint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"

/* Takes tokens at now_ms until refused; returns how many were taken. */
static unsigned drain(ratelimit_t *rl, uint64_t now_ms)
{
    unsigned n = 0;
    while (ratelimit_take(rl, now_ms) && n < 1000000)
        n++;
    return n;
}

static void test_burst(void **state)
{
    ratelimit_t rl;
    ratelimit_init(&rl, 5, 10);
    assert_int_equal(drain(&rl, 1000), 10);
    assert_false(ratelimit_take(&rl, 1000));
    /* burst 0 behaves as 1 */
    ratelimit_init(&rl, 5, 0);
    assert_int_equal(drain(&rl, 0), 1);
}

static void test_refill(void **state)
{
    ratelimit_t rl;
    ratelimit_init(&rl, 5, 10); /* one token per 200 ms */
    assert_int_equal(drain(&rl, 5000), 10);
    assert_false(ratelimit_take(&rl, 5199));
    assert_true(ratelimit_take(&rl, 5200));
    assert_false(ratelimit_take(&rl, 5200));
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
    ratelimit_init(&rl, 3, 2);
    unsigned taken = 0;
    for (uint64_t t = 0; t <= 100000; t++)
        taken += ratelimit_take(&rl, t);
    assert_int_equal(taken, 2 + 300);
    /* Odd rates over odd steps. */
    ratelimit_init(&rl, 7, 2);
    taken = 0;
    for (uint64_t t = 0; t <= 70000; t += 13)
        taken += ratelimit_take(&rl, t);
    /* t reaches 69992: 2 + floor(69992 * 7 / 1000) = 2 + 489 */
    assert_int_equal(taken, 491);
}

static void test_clock_backwards(void **state)
{
    ratelimit_t rl;
    ratelimit_init(&rl, 1, 1);
    assert_true(ratelimit_take(&rl, 10000));
    assert_false(ratelimit_take(&rl, 5000)); /* backwards: no refill */
    assert_false(ratelimit_take(&rl, 10999));
    assert_true(ratelimit_take(&rl, 11000));
}

static void test_extremes(void **state)
{
    ratelimit_t rl;
    /* Huge rate and burst over a huge idle time: no overflow. */
    ratelimit_init(&rl, UINT32_MAX, UINT32_MAX);
    assert_true(ratelimit_take(&rl, 0));
    assert_true(ratelimit_take(&rl, UINT64_MAX));
    assert_int_equal(rl.milli, (uint64_t)UINT32_MAX * 1000 - 1000);
    /* Rate 0: the burst and nothing more. */
    ratelimit_init(&rl, 0, 2);
    assert_int_equal(drain(&rl, 0), 2);
    assert_false(ratelimit_take(&rl, UINT64_MAX));
    assert_int_equal(ratelimit_wait_ms(&rl, UINT64_MAX), UINT64_MAX);
}

static void test_wait_ms(void **state)
{
    ratelimit_t rl;
    ratelimit_init(&rl, 3, 1);
    assert_int_equal(ratelimit_wait_ms(&rl, 0), 0);
    assert_true(ratelimit_take(&rl, 0));
    assert_int_equal(ratelimit_wait_ms(&rl, 0), 334); /* ceil(1000 / 3) */
    assert_int_equal(ratelimit_wait_ms(&rl, 300), 34);
    assert_false(ratelimit_take(&rl, 333));
    assert_true(ratelimit_take(&rl, 334));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst),    cmocka_unit_test(test_refill),
        cmocka_unit_test(test_no_drift), cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_extremes), cmocka_unit_test(test_wait_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
