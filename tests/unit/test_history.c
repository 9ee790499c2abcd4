/*
 * test_history.c - the history ring: append, wrap, lookup by seq, bounds,
 * memory reuse and failure atomicity on bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "history.h"

static int append_str(history_t *h, uint64_t seq, const char *nick,
                      const char *text)
{
    return history_append(h, seq, seq * 10, nick, strlen(nick), text,
                          strlen(text));
}

/* Appends seq first..last with text "m<seq>". */
static void fill(history_t *h, uint64_t first, uint64_t last)
{
    char text[32];
    for (uint64_t s = first; s <= last; s++) {
        snprintf(text, sizeof text, "m%llu", (unsigned long long)s);
        assert_int_equal(append_str(h, s, "bob", text), 0);
    }
}

static void assert_entry(const history_t *h, uint64_t seq)
{
    char text[32];
    snprintf(text, sizeof text, "m%llu", (unsigned long long)seq);
    const history_entry_t *e = history_get(h, seq);
    assert_non_null(e);
    assert_int_equal(e->seq, seq);
    assert_int_equal(e->ts, seq * 10);
    assert_string_equal(e->text, text);
    assert_int_equal(e->text_len, strlen(text));
    assert_string_equal(e->nick, "bob");
    assert_int_equal(e->nick_len, 3);
}

static void test_empty(void **state)
{
    (void)state;
    history_t *h = history_new(4);
    assert_non_null(h);
    assert_int_equal(history_count(h), 0);
    assert_int_equal(history_capacity(h), 4);
    assert_int_equal(history_first_seq(h), 0);
    assert_int_equal(history_last_seq(h), 0);
    assert_null(history_get(h, 0));
    assert_null(history_get(h, 1));
    history_free(h);
    history_free(NULL);
}

static void test_zero_capacity_refused(void **state)
{
    (void)state;
    assert_null(history_new(0));
    assert_null(history_new(SIZE_MAX));
}

static void test_append_and_get(void **state)
{
    (void)state;
    history_t *h = history_new(8);
    fill(h, 1, 5);
    assert_int_equal(history_count(h), 5);
    assert_int_equal(history_first_seq(h), 1);
    assert_int_equal(history_last_seq(h), 5);
    for (uint64_t s = 1; s <= 5; s++)
        assert_entry(h, s);
    assert_null(history_get(h, 0));
    assert_null(history_get(h, 6));
    history_free(h);
}

static void test_wrap_evicts_oldest(void **state)
{
    (void)state;
    history_t *h = history_new(4);
    fill(h, 1, 11);
    assert_int_equal(history_count(h), 4);
    assert_int_equal(history_first_seq(h), 8);
    assert_int_equal(history_last_seq(h), 11);
    for (uint64_t s = 1; s <= 7; s++)
        assert_null(history_get(h, s));
    for (uint64_t s = 8; s <= 11; s++)
        assert_entry(h, s);
    assert_null(history_get(h, 12));
    history_free(h);
}

/* The slot array grows lazily: crossing every growth step keeps order. */
static void test_growth_then_wrap(void **state)
{
    (void)state;
    history_t *h = history_new(1000);
    fill(h, 1, 2500);
    assert_int_equal(history_count(h), 1000);
    assert_int_equal(history_first_seq(h), 1501);
    for (uint64_t s = 1501; s <= 2500; s++)
        assert_entry(h, s);
    assert_null(history_get(h, 1500));
    history_free(h);
}

static void test_bad_seq_refused(void **state)
{
    (void)state;
    history_t *h = history_new(4);
    assert_int_equal(append_str(h, 0, "a", "x"), -1);
    assert_int_equal(history_count(h), 0);
    fill(h, 1, 3);
    assert_int_equal(append_str(h, 3, "a", "dup"), -1);
    assert_int_equal(append_str(h, 5, "a", "gap"), -1);
    assert_int_equal(append_str(h, 1, "a", "old"), -1);
    assert_int_equal(history_count(h), 3);
    assert_int_equal(history_last_seq(h), 3);
    for (uint64_t s = 1; s <= 3; s++)
        assert_entry(h, s);
    fill(h, 4, 4);
    assert_entry(h, 4);
    history_free(h);
}

/* A journal replay starts mid-stream: an empty ring accepts any seq >= 1. */
static void test_starts_mid_stream(void **state)
{
    (void)state;
    history_t *h = history_new(4);
    fill(h, 41, 43);
    assert_int_equal(history_first_seq(h), 41);
    assert_int_equal(history_last_seq(h), 43);
    assert_null(history_get(h, 40));
    assert_entry(h, 42);
    history_free(h);
}

static void test_capacity_one(void **state)
{
    (void)state;
    history_t *h = history_new(1);
    fill(h, 1, 1);
    assert_entry(h, 1);
    fill(h, 2, 3);
    assert_int_equal(history_count(h), 1);
    assert_int_equal(history_first_seq(h), 3);
    assert_int_equal(history_last_seq(h), 3);
    assert_null(history_get(h, 2));
    assert_entry(h, 3);
    history_free(h);
}

/* Once wrapped, a message that fits reuses its slot's buffers. */
static void test_reuses_memory(void **state)
{
    (void)state;
    history_t *h = history_new(2);
    assert_int_equal(append_str(h, 1, "alice", "a fairly long text"), 0);
    assert_int_equal(append_str(h, 2, "bob", "another long text"), 0);
    const char *nick1 = history_get(h, 1)->nick;
    const char *text1 = history_get(h, 1)->text;
    assert_int_equal(append_str(h, 3, "carol", "short"), 0);
    const history_entry_t *e = history_get(h, 3);
    assert_ptr_equal(e->nick, nick1);
    assert_ptr_equal(e->text, text1);
    assert_string_equal(e->nick, "carol");
    assert_string_equal(e->text, "short");
    assert_int_equal(e->text_len, 5);
    history_free(h);
}

/* Long texts are copied whole; a huge buffer is shrunk on reuse. */
static void test_long_texts(void **state)
{
    (void)state;
    size_t big = 1u << 20;
    char *text = malloc(big);
    assert_non_null(text);
    for (size_t i = 0; i < big; i++)
        text[i] = (char)('a' + i % 26);
    history_t *h = history_new(2);
    assert_int_equal(history_append(h, 1, 1, "n", 1, text, big), 0);
    assert_int_equal(history_append(h, 2, 2, "n", 1, "x", 1), 0);
    const history_entry_t *e = history_get(h, 1);
    assert_int_equal(e->text_len, big);
    assert_memory_equal(e->text, text, big);
    assert_int_equal(e->text[big], '\0');
    assert_int_equal(history_append(h, 3, 3, "n", 1, "tiny", 4), 0);
    assert_null(history_get(h, 1));
    assert_string_equal(history_get(h, 3)->text, "tiny");
    assert_string_equal(history_get(h, 2)->text, "x");
    free(text);
    history_free(h);
}

/* Texts may hold NUL bytes: lengths, not strlen, define them. */
static void test_embedded_nul_and_empty(void **state)
{
    (void)state;
    history_t *h = history_new(3);
    assert_int_equal(history_append(h, 1, 5, "a", 1, "x\0y", 3), 0);
    assert_int_equal(history_append(h, 2, 6, "", 0, "", 0), 0);
    const history_entry_t *e = history_get(h, 1);
    assert_int_equal(e->text_len, 3);
    assert_memory_equal(e->text, "x\0y", 4);
    e = history_get(h, 2);
    assert_int_equal(e->nick_len, 0);
    assert_int_equal(e->text_len, 0);
    assert_string_equal(e->text, "");
    history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_zero_capacity_refused),
        cmocka_unit_test(test_append_and_get),
        cmocka_unit_test(test_wrap_evicts_oldest),
        cmocka_unit_test(test_growth_then_wrap),
        cmocka_unit_test(test_bad_seq_refused),
        cmocka_unit_test(test_starts_mid_stream),
        cmocka_unit_test(test_capacity_one),
        cmocka_unit_test(test_reuses_memory),
        cmocka_unit_test(test_long_texts),
        cmocka_unit_test(test_embedded_nul_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
