/* Unit tests of common/config.c: defaults, every value type, bounds, the
 * INI file (sections, roles, errors with line numbers) and the command
 * line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char err[256];

static int setup(void **state)
{
    config_t *c = malloc(sizeof *c);
    assert_non_null(c);
    assert_int_equal(config_init(c), 0);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    config_free(*state);
    free(*state);
    return 0;
}

static char *write_file(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/parley-test-config.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    config_t *c = *state;
    assert_string_equal(c->listen, "127.0.0.1:8080");
    assert_int_equal(c->workers, -1);
    assert_int_equal(c->max_message, 65536);
    assert_int_equal(c->max_text, 4096);
    assert_int_equal(c->history_size, 1000);
    assert_int_equal(c->history_replay, 50);
    assert_int_equal(c->heartbeat_ms, 1000);
    assert_false(c->reuseport);
    assert_int_equal(config_validate(c, CONFIG_ROLE_GATEWAY, err, sizeof err),
                     0);
    assert_int_equal(config_validate(c, CONFIG_ROLE_BROKER, err, sizeof err),
                     0);
}

static void test_value_types(void **state)
{
    config_t *c = *state;
    const config_role_t g = CONFIG_ROLE_GATEWAY;
    assert_int_equal(config_set(c, g, "send_queue", "2m", err, sizeof err), 0);
    assert_int_equal(c->send_queue, 2 * 1024 * 1024);
    assert_int_equal(config_set(c, g, "send-queue", "4096", err, sizeof err),
                     0);
    assert_int_equal(c->send_queue, 4096);
    assert_int_equal(
        config_set(c, g, "ping_interval", "250ms", err, sizeof err), 0);
    assert_int_equal(c->ping_interval_ms, 250);
    assert_int_equal(config_set(c, g, "ping_interval", "2", err, sizeof err),
                     0);
    assert_int_equal(c->ping_interval_ms, 2000);
    assert_int_equal(config_set(c, g, "idle_timeout", "2m", err, sizeof err),
                     0);
    assert_int_equal(c->idle_timeout_ms, 120000);
    assert_int_equal(config_set(c, g, "reuseport", "on", err, sizeof err), 0);
    assert_true(c->reuseport);
    assert_int_equal(config_set(c, g, "reuseport", "false", err, sizeof err),
                     0);
    assert_false(c->reuseport);
    assert_int_equal(config_set(c, g, "workers", "0", err, sizeof err), 0);
    assert_int_equal(c->workers, 0);
    assert_int_equal(config_set(c, g, "listen", "[::1]:9000", err, sizeof err),
                     0);
    assert_string_equal(c->listen, "[::1]:9000");
}

static void test_bad_values(void **state)
{
    config_t *c = *state;
    const config_role_t g = CONFIG_ROLE_GATEWAY;
    assert_int_equal(config_set(c, g, "workers", "many", err, sizeof err), -1);
    assert_non_null(strstr(err, "workers"));
    assert_int_equal(config_set(c, g, "workers", "999", err, sizeof err), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(config_set(c, g, "send_queue", "12q", err, sizeof err),
                     -1);
    assert_int_equal(config_set(c, g, "send_queue", "", err, sizeof err), -1);
    assert_int_equal(config_set(c, g, "ping_interval", "5 s", err, sizeof err),
                     -1);
    assert_int_equal(config_set(c, g, "reuseport", "maybe", err, sizeof err),
                     -1);
    assert_int_equal(config_set(c, g, "no_such_key", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown key"));
    /* a broker key is refused by the gateway and the other way round */
    assert_int_equal(config_set(c, g, "history_size", "5", err, sizeof err),
                     -1);
    assert_int_equal(
        config_set(c, CONFIG_ROLE_BROKER, "workers", "5", err, sizeof err), -1);
    /* cross-key checks */
    assert_int_equal(config_set(c, g, "max_text", "128k", err, sizeof err), 0);
    assert_int_equal(config_validate(c, g, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_text"));
}

static void test_file(void **state)
{
    config_t *c = *state;
    char *path =
        write_file("# Parley\n[link]\nbroker_router = tcp://10.0.0.1:5555\n"
                   "[gateway]\nworkers = 3 ; inline comment\n"
                   "send_queue = 64k\n[broker]\nhistory_size = 20\n"
                   "[log]\nlog_level = debug\n");
    assert_int_equal(config_load(c, CONFIG_ROLE_GATEWAY, path, err, sizeof err),
                     0);
    assert_string_equal(c->broker_router, "tcp://10.0.0.1:5555");
    assert_int_equal(c->workers, 3);
    assert_int_equal(c->send_queue, 65536);
    assert_int_equal(c->history_size, 1000); /* the broker's key is skipped */
    assert_string_equal(c->log_level, "debug");
    assert_int_equal(config_load(c, CONFIG_ROLE_BROKER, path, err, sizeof err),
                     0);
    assert_int_equal(c->history_size, 20);
    unlink(path);
}

static void test_file_errors(void **state)
{
    config_t *c = *state;
    char *path = write_file("[gateway]\nworkers = 2\n\nbogus = 1\n");
    assert_int_equal(config_load(c, CONFIG_ROLE_GATEWAY, path, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, ":4: unknown key"));
    unlink(path);
    path = write_file("[gateway]\nworkers = x\n");
    assert_int_equal(config_load(c, CONFIG_ROLE_GATEWAY, path, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, ":2: workers"));
    unlink(path);
    path = write_file("[nope]\na = 1\n");
    assert_int_equal(config_load(c, CONFIG_ROLE_GATEWAY, path, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "unknown section"));
    unlink(path);
    /* a key in the wrong section is unknown there */
    path = write_file("[broker]\nworkers = 2\n");
    assert_int_equal(config_load(c, CONFIG_ROLE_BROKER, path, err, sizeof err),
                     -1);
    unlink(path);
    assert_int_equal(config_load(c, CONFIG_ROLE_BROKER,
                                 "/nonexistent/parley.conf", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "cannot open"));
}

static void test_args(void **state)
{
    config_t *c = *state;
    char *path = write_file("[gateway]\nworkers = 3\nbacklog = 100\n");
    char cfgopt[128];
    snprintf(cfgopt, sizeof cfgopt, "--config=%s", path);
    char *argv[] = {"parley-gateway",
                    "--workers",
                    "5",
                    cfgopt,
                    "--listen=0.0.0.0:9000",
                    "--reuseport",
                    "--check-config",
                    "--ping-interval",
                    "1s",
                    NULL};
    int flags = 0;
    assert_int_equal(config_parse_args(c, CONFIG_ROLE_GATEWAY, 9, argv, &flags,
                                       err, sizeof err),
                     0);
    assert_int_equal(c->workers, 5);   /* command line beats the file */
    assert_int_equal(c->backlog, 100); /* from the file */
    assert_string_equal(c->listen, "0.0.0.0:9000");
    assert_true(c->reuseport);
    assert_int_equal(c->ping_interval_ms, 1000);
    assert_int_equal(flags, CONFIG_FLAG_CHECK);
    unlink(path);
}

static void test_args_errors(void **state)
{
    config_t *c = *state;
    int flags;
    char *a1[] = {"p", "--workers", NULL};
    assert_int_equal(config_parse_args(c, CONFIG_ROLE_GATEWAY, 2, a1, &flags,
                                       err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "needs a value"));
    char *a2[] = {"p", "stray", NULL};
    assert_int_equal(config_parse_args(c, CONFIG_ROLE_GATEWAY, 2, a2, &flags,
                                       err, sizeof err),
                     -1);
    char *a3[] = {"p", "--help", "-V", NULL};
    assert_int_equal(config_parse_args(c, CONFIG_ROLE_GATEWAY, 3, a3, &flags,
                                       err, sizeof err),
                     0);
    assert_int_equal(flags, CONFIG_FLAG_HELP | CONFIG_FLAG_VERSION);
    char *a4[] = {"p", "--config", "/nonexistent", NULL};
    assert_int_equal(config_parse_args(c, CONFIG_ROLE_GATEWAY, 3, a4, &flags,
                                       err, sizeof err),
                     -1);
}

static void test_dump_round_trip(void **state)
{
    config_t *c = *state;
    assert_int_equal(
        config_set(c, CONFIG_ROLE_GATEWAY, "workers", "7", err, sizeof err), 0);
    char path[] = "/tmp/parley-test-dump.XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    config_dump(f, c, CONFIG_ROLE_GATEWAY);
    fclose(f);
    config_t d;
    assert_int_equal(config_init(&d), 0);
    assert_int_equal(
        config_load(&d, CONFIG_ROLE_GATEWAY, path, err, sizeof err), 0);
    assert_int_equal(d.workers, 7);
    assert_int_equal(d.header_timeout_ms, c->header_timeout_ms);
    assert_string_equal(d.listen, c->listen);
    config_free(&d);
    unlink(path);
}

/* docs/configuration.md documents every key the programs accept. */
static void check_documented(config_role_t role, const char *doc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_usage(f, role, "prog");
    fclose(f);
    int keys = 0;
    for (char *p = strstr(text, "\n  --"); p; p = strstr(p + 1, "\n  --")) {
        char name[64], want[80];
        assert_int_equal(sscanf(p + 5, "%63s", name), 1);
        for (char *q = name; *q; q++)
            *q = *q == '-' ? '_' : *q;
        snprintf(want, sizeof want, "| `%s` |", name);
        if (strstr(doc, want) == NULL)
            fail_msg("key %s is not in docs/configuration.md", name);
        keys++;
    }
    assert_true(keys > 5);
    free(text);
}

static void test_keys_documented(void **state)
{
    (void)state;
    const char *src = getenv("PARLEY_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/configuration.md", src ? src : ".");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot read %s (set PARLEY_SRCDIR)", path);
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    doc[n] = '\0';
    fclose(f);
    check_documented(CONFIG_ROLE_GATEWAY, doc);
    check_documented(CONFIG_ROLE_BROKER, doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_round_trip, setup, teardown),
        cmocka_unit_test(test_keys_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
