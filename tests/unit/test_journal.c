/* Unit tests of broker/journal.c: append and reload, torn and corrupt
 * tails, stream continuity, compaction bounds, fsync policies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"

static char err[256];

typedef struct {
    int count;
    uint64_t seqs[4096];
    char rooms[4096][16];
    char last_text[64];
    char last_epoch[32];
} seen_t;

static int on_record(void *arg, const journal_record_t *rec)
{
    seen_t *s = arg;
    if (s->count < 4096) {
        s->seqs[s->count] = rec->seq;
        snprintf(s->rooms[s->count], 16, "%.*s", (int)rec->room_len, rec->room);
    }
    snprintf(s->last_text, sizeof s->last_text, "%.*s", (int)rec->text_len,
             rec->text);
    snprintf(s->last_epoch, sizeof s->last_epoch, "%.*s", (int)rec->epoch_len,
             rec->epoch);
    s->count++;
    return 0;
}

static int setup(void **state)
{
    char *dir = strdup("/tmp/parley-journal.XXXXXX");
    assert_non_null(mkdtemp(dir));
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)*state);
    assert_int_equal(system(cmd), 0);
    free(*state);
    return 0;
}

static void append_n(journal_t *j, const char *room, uint64_t from, uint64_t to)
{
    journal_room_t *r = journal_room(j, room, strlen(room));
    assert_non_null(r);
    for (uint64_t s = from; s <= to; s++) {
        char text[32];
        snprintf(text, sizeof text, "line %llu", (unsigned long long)s);
        assert_int_equal(journal_append(j, r, "epoch1", 6, s, 1000 + s, "ann",
                                        3, text, strlen(text)),
                         0);
    }
}

static seen_t *reload(const char *dir, size_t keep, long expect)
{
    static seen_t seen;
    memset(&seen, 0, sizeof seen);
    journal_t *j = journal_open(dir, "never", keep, err, sizeof err);
    assert_non_null(j);
    assert_int_equal(journal_load(j, on_record, &seen, err, sizeof err),
                     expect);
    journal_close(j);
    return &seen;
}

static void test_append_and_reload(void **state)
{
    const char *dir = *state;
    journal_t *j = journal_open(dir, "always", 100, err, sizeof err);
    assert_non_null(j);
    append_n(j, "lobby", 1, 10);
    append_n(j, "dev", 5, 7); /* a stream may start mid-way */
    assert_true(journal_bytes(j) > 0);
    journal_close(j);
    seen_t *s = reload(dir, 100, 13);
    int lobby = 0, dev = 0;
    for (int i = 0; i < s->count; i++) {
        if (strcmp(s->rooms[i], "lobby") == 0)
            assert_int_equal(s->seqs[i], (uint64_t)++lobby);
        else
            assert_int_equal(s->seqs[i], (uint64_t)(5 + dev++));
    }
    assert_int_equal(lobby, 10);
    assert_int_equal(dev, 3);
    assert_string_equal(s->last_epoch, "epoch1");
}

static void test_reopen_continues(void **state)
{
    const char *dir = *state;
    journal_t *j = journal_open(dir, "interval", 100, err, sizeof err);
    append_n(j, "lobby", 1, 3);
    journal_tick(j);
    journal_close(j);
    seen_t seen = {0};
    j = journal_open(dir, "interval", 100, err, sizeof err);
    assert_int_equal(journal_load(j, on_record, &seen, err, sizeof err), 3);
    append_n(j, "lobby", 4, 6); /* the loaded file is appended to */
    journal_close(j);
    seen_t *s = reload(dir, 100, 6);
    assert_int_equal(s->seqs[5], 6);
    assert_string_equal(s->last_text, "line 6");
}

static void corrupt_tail(const char *dir, const char *room, long cut, int flip)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.journal", dir, room);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if (cut > 0)
        assert_int_equal(truncate(path, st.st_size - cut), 0);
    if (flip) {
        FILE *f = fopen(path, "r+b");
        assert_non_null(f);
        fseek(f, -3, SEEK_END);
        int ch = fgetc(f);
        fseek(f, -3, SEEK_END);
        fputc(ch ^ 0x55, f);
        fclose(f);
    }
}

static void test_torn_tail_is_cut(void **state)
{
    const char *dir = *state;
    journal_t *j = journal_open(dir, "never", 100, err, sizeof err);
    append_n(j, "lobby", 1, 5);
    journal_close(j);
    corrupt_tail(dir, "lobby", 4, 0); /* a crash in the middle of a write */
    seen_t *s = reload(dir, 100, 4);
    assert_int_equal(s->seqs[3], 4);
    /* the file was truncated to the good prefix: appending works again */
    j = journal_open(dir, "never", 100, err, sizeof err);
    seen_t seen = {0};
    assert_int_equal(journal_load(j, on_record, &seen, err, sizeof err), 4);
    append_n(j, "lobby", 5, 5);
    journal_close(j);
    assert_int_equal(reload(dir, 100, 5)->seqs[4], 5);
}

static void test_corrupt_record_is_cut(void **state)
{
    const char *dir = *state;
    journal_t *j = journal_open(dir, "never", 100, err, sizeof err);
    append_n(j, "lobby", 1, 5);
    journal_close(j);
    corrupt_tail(dir, "lobby", 0, 1); /* CRC mismatch in the last record */
    assert_int_equal(reload(dir, 100, 4)->count, 4);
}

static void test_gap_stops_stream(void **state)
{
    const char *dir = *state;
    journal_t *j = journal_open(dir, "never", 100, err, sizeof err);
    append_n(j, "lobby", 1, 3);
    append_n(j, "lobby", 7, 8); /* not a continuation: dropped at load */
    journal_close(j);
    assert_int_equal(reload(dir, 100, 3)->seqs[2], 3);
}

static void test_compaction_bounds_the_file(void **state)
{
    const char *dir = *state;
    journal_t *j = journal_open(dir, "never", 10, err, sizeof err);
    append_n(j, "lobby", 1, 95);
    uint64_t bytes = journal_bytes(j);
    journal_close(j);
    seen_t seen = {0};
    j = journal_open(dir, "never", 10, err, sizeof err);
    long n = journal_load(j, on_record, &seen, err, sizeof err);
    journal_close(j);
    /* compaction keeps between keep and 2 * keep records */
    assert_true(n >= 10 && n < 20);
    assert_int_equal(seen.seqs[n - 1], 95);
    assert_int_equal(seen.seqs[0], 95 - (uint64_t)n + 1);
    assert_true(bytes < 20 * 64);
}

static void test_bad_arguments(void **state)
{
    const char *dir = *state;
    assert_null(journal_open(dir, "sometimes", 10, err, sizeof err));
    assert_non_null(strstr(err, "fsync"));
    assert_null(
        journal_open("/proc/no/such/dir", "never", 10, err, sizeof err));
    journal_t *j = journal_open(dir, "never", 10, err, sizeof err);
    assert_null(journal_room(j, "", 0));
    journal_room_t *r = journal_room(j, "x", 1);
    assert_non_null(r);
    assert_ptr_equal(journal_room(j, "x", 1), r);
    char epoch[300];
    memset(epoch, 'e', sizeof epoch);
    assert_int_equal(
        journal_append(j, r, epoch, sizeof epoch, 1, 1, "a", 1, "t", 1), -1);
    journal_close(j);
    journal_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_and_reload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_record_is_cut, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_gap_stops_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_bounds_the_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
