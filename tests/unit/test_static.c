/*
 * test_static.c - the static file helpers: path resolution (traversal,
 * encoded dots and slashes, NUL, empty and hidden segments), MIME types,
 * HTTP dates, entity tags and If-None-Match lists, and static_open()
 * against a temporary tree with symlinks pointing in and out of it.
 */
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

#include "../../gateway/static.h"

typedef struct {
    const char *in;
    int want;        /* length expected, or -400 / -404 */
    const char *out; /* expected relative path when want >= 0 */
} resolve_case_t;

static const resolve_case_t resolve_cases[] = {
    {"/", 10, "index.html"},
    {"/app.js", 6, "app.js"},
    {"/sub/style.css", 13, "sub/style.css"},
    {"/a%20b.txt", 7, "a b.txt"},
    {"/..", -400, NULL},
    {"/../etc/passwd", -400, NULL},
    {"/sub/../../etc/passwd", -400, NULL},
    {"/%2e%2e/etc/passwd", -400, NULL},
    {"/%2E%2e%2fetc/passwd", -400, NULL},
    {"/sub/%2e%2e", -400, NULL},
    {"/./index.html", -400, NULL},
    {"/sub/%2e/x", -400, NULL},
    {"/a%00b", -400, NULL},
    {"/%zz", -400, NULL},
    {"/%4", -400, NULL},
    {"relative", -400, NULL},
    {"", -400, NULL},
    {"//etc/passwd", -404, NULL},
    {"/sub/", -404, NULL},
    {"/sub//x", -404, NULL},
    {"/.hidden", -404, NULL},
    {"/sub/.git/config", -404, NULL},
    {"/%2ehidden", -404, NULL},
    {"/..hidden", -404, NULL},
    {"/a..b", 4, "a..b"},
};

static void test_resolve_table(void **state)
{
    char out[STATIC_MAX_PATH + 1];
    (void)state;
    for (size_t i = 0; i < sizeof resolve_cases / sizeof resolve_cases[0];
         i++) {
        const resolve_case_t *c = &resolve_cases[i];
        int n = static_path_resolve(c->in, strlen(c->in), out, sizeof out);
        if (n != c->want)
            fail_msg("%s: got %d, want %d", c->in, n, c->want);
        if (c->want >= 0)
            assert_string_equal(out, c->out);
    }
}

static void test_resolve_limits(void **state)
{
    char big[3 * STATIC_MAX_PATH];
    char out[16];
    (void)state;
    big[0] = '/';
    memset(big + 1, 'a', sizeof big - 1);
    assert_int_equal(static_path_resolve(big, sizeof big, out, sizeof out),
                     -404);
    /* fits exactly: "abcdefghijklmno" is 15 bytes + NUL */
    assert_int_equal(
        static_path_resolve("/abcdefghijklmno", 16, out, sizeof out), 15);
    assert_int_equal(
        static_path_resolve("/abcdefghijklmnop", 17, out, sizeof out), -404);
    /* only len bytes are read: a NUL after them is not part of the path */
    assert_int_equal(static_path_resolve("/app.js/../x", 7, out, sizeof out),
                     6);
    assert_string_equal(out, "app.js");
}

static void test_mime(void **state)
{
    (void)state;
    assert_string_equal(static_mime_type("index.html"),
                        "text/html; charset=utf-8");
    assert_string_equal(static_mime_type("a/app.JS"),
                        "text/javascript; charset=utf-8");
    assert_string_equal(static_mime_type("style.css"),
                        "text/css; charset=utf-8");
    assert_string_equal(static_mime_type("x.json"), "application/json");
    assert_string_equal(static_mime_type("i.svg"), "image/svg+xml");
    assert_string_equal(static_mime_type("i.png"), "image/png");
    assert_string_equal(static_mime_type("favicon.ico"), "image/x-icon");
    assert_string_equal(static_mime_type("r.txt"), "text/plain; charset=utf-8");
    assert_string_equal(static_mime_type("f.woff2"), "font/woff2");
    assert_string_equal(static_mime_type("m.webmanifest"),
                        "application/manifest+json");
    assert_string_equal(static_mime_type("noext"), "application/octet-stream");
    assert_string_equal(static_mime_type("dir.html/file"),
                        "application/octet-stream");
    assert_string_equal(static_mime_type("x.unknown"),
                        "application/octet-stream");
}

static void test_http_date(void **state)
{
    char buf[STATIC_DATE_LEN + 1];
    time_t t;
    (void)state;
    assert_int_equal(static_http_date(784111777, buf), 0);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(static_parse_http_date(buf, strlen(buf), &t), 0);
    assert_int_equal((long long)t, 784111777LL);
    assert_int_equal(
        static_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t), -1);
    assert_int_equal(static_parse_http_date("Sun Nov  6 08:49:37 1994", 24, &t),
                     -1);
    assert_int_equal(
        static_parse_http_date("Sun, 06 Nov 1994 08:49:37 XYZ", 29, &t), -1);
}

static void test_etag(void **state)
{
    char tag[STATIC_ETAG_MAX];
    (void)state;
    static_make_etag(0x120c, 0x18eb4f5c142c8913ull, tag);
    assert_string_equal(tag, "\"120c-18eb4f5c142c8913\"");
    static const char *yes[] = {
        "\"120c-18eb4f5c142c8913\"",
        "W/\"120c-18eb4f5c142c8913\"",
        "\"a\", \"120c-18eb4f5c142c8913\"",
        "\"a\",W/\"120c-18eb4f5c142c8913\" ,\"b\"",
        "*",
    };
    static const char *no[] = {
        "",
        "\"120c\"",
        "120c-18eb4f5c142c8913",
        "\"120c-18eb4f5c142c8913",
        "\"a\", bogus, \"120c-18eb4f5c142c8913\"",
        "\"120c-18eb4f5c142c8913x\"",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!static_etag_match(yes[i], strlen(yes[i]), tag))
            fail_msg("should match: %s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (static_etag_match(no[i], strlen(no[i]), tag))
            fail_msg("should not match: %s", no[i]);
}

/* A temporary www tree: index.html, sub/a.css, symlinks in and out. */
static char tree[64];
static char outside[96];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int tree_setup(void **state)
{
    char p[256];
    (void)state;
    snprintf(tree, sizeof tree, "/tmp/parley-static-XXXXXX");
    if (mkdtemp(tree) == NULL)
        return -1;
    snprintf(p, sizeof p, "%s/www", tree);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/www/sub", tree);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/www/index.html", tree);
    write_file(p, "<p>hi</p>\n");
    snprintf(p, sizeof p, "%s/www/sub/a.css", tree);
    write_file(p, "p{}\n");
    snprintf(outside, sizeof outside, "%s/secret.txt", tree);
    write_file(outside, "secret\n");
    snprintf(p, sizeof p, "%s/www/leak.txt", tree);
    if (symlink(outside, p) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/www/up", tree);
    if (symlink("..", p) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/www/inside.html", tree);
    if (symlink("index.html", p) != 0)
        return -1;
    return 0;
}

static int tree_teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tree);
    return system(cmd) == 0 ? 0 : -1;
}

static int open_rel(int root, const char *rel, static_file_t *f)
{
    int st = static_open(root, rel, f);
    if (st == 0)
        close(f->fd);
    return st;
}

static void test_open_confined(void **state)
{
    char p[128];
    static_file_t f;
    (void)state;
    snprintf(p, sizeof p, "%s/www", tree);
    int root = static_open_root(p);
    assert_true(root >= 0);
    assert_int_equal(open_rel(root, "index.html", &f), 0);
    assert_int_equal((int)f.size, 10);
    assert_true(f.is_html);
    assert_string_equal(f.mime, "text/html; charset=utf-8");
    assert_int_equal(f.etag[0], '"');
    assert_int_equal((int)strlen(f.last_modified), STATIC_DATE_LEN);
    assert_int_equal(open_rel(root, "sub/a.css", &f), 0);
    assert_false(f.is_html);
    assert_int_equal(open_rel(root, "missing", &f), 404);
    assert_int_equal(open_rel(root, "sub", &f), 404);      /* a dir */
    assert_int_equal(open_rel(root, "leak.txt", &f), 404); /* symlink */
    assert_int_equal(open_rel(root, "up/secret.txt", &f), 404);
    assert_int_equal(open_rel(root, "inside.html", &f), 404);  /* any link */
    assert_int_equal(open_rel(root, "index.html/x", &f), 404); /* not dir */
    assert_int_equal(f.fd, -1);
    assert_int_equal(static_open(-1, "index.html", &f), 404);
    close(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_table),
        cmocka_unit_test(test_resolve_limits),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_http_date),
        cmocka_unit_test(test_etag),
        cmocka_unit_test_setup_teardown(test_open_confined, tree_setup,
                                        tree_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
