/* Unit tests of common/log.c: the line format (time, level, role[pid],
 * event, fields), level filtering, one line per event even when too long,
 * and reopening the file. */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static char path[] = "/tmp/parley-test-log.XXXXXX";

static int setup(void **state)
{
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(log_open(path), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_open("-");
    unlink(path);
    strcpy(path, "/tmp/parley-test-log.XXXXXX");
    return 0;
}

static char *slurp(void)
{
    static char buf[16384];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_line_format(void **state)
{
    (void)state;
    log_init("gateway", LOG_INFO);
    log_info("conn_open", "fd=%d peer=%s", 7, "127.0.0.1:5000");
    char *text = slurp();
    char want[256];
    snprintf(
        want, sizeof want,
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
        "info gateway\\[%d\\] conn_open fd=7 peer=127\\.0\\.0\\.1:5000\n$",
        (int)getpid());
    regex_t re;
    assert_int_equal(regcomp(&re, want, REG_EXTENDED | REG_NEWLINE), 0);
    if (regexec(&re, text, 0, NULL, 0) != 0)
        fail_msg("unexpected log line: %s", text);
    regfree(&re);
}

static void test_levels(void **state)
{
    (void)state;
    log_init("broker", LOG_WARN);
    log_debug("d", NULL);
    log_info("i", NULL);
    log_warn("w", "k=v");
    log_error("e", NULL);
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_ERROR));
    char *text = slurp();
    assert_null(strstr(text, " d\n"));
    assert_null(strstr(text, " i\n"));
    assert_non_null(strstr(text, "warn broker["));
    assert_non_null(strstr(text, "] w k=v\n"));
    assert_non_null(strstr(text, "error broker["));
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("loud"), -1);
}

static void test_long_line_stays_one_line(void **state)
{
    (void)state;
    log_init("worker", LOG_DEBUG);
    static char big[8192];
    memset(big, 'x', sizeof big - 1);
    log_info("big", "v=%s", big);
    log_info("after", NULL);
    char *text = slurp();
    int lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    assert_non_null(strstr(text, "] after\n"));
}

static void test_role_change_and_reopen(void **state)
{
    (void)state;
    log_init("gateway", LOG_INFO);
    log_set_role("worker");
    log_info("one", NULL);
    assert_int_equal(log_open(path), 0); /* reopening appends */
    log_info("two", NULL);
    char *text = slurp();
    assert_non_null(strstr(text, "info worker["));
    assert_non_null(strstr(text, "] one\n"));
    assert_non_null(strstr(text, "] two\n"));
    assert_int_equal(log_open("/nonexistent-dir/x.log"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_stays_one_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_role_change_and_reopen, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
