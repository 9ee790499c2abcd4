/*
 * test_http_parser.c - the strict request-head parser: valid heads, every
 * strictness rule, every limit (also on incomplete input), identical
 * results for any chunking, and the helpers.  Every parse reads its input
 * from just before a PROT_NONE page, so an over-read crashes the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_parser.h"

#define GUARD_DATA (64 * 1024) /* readable bytes before the guard page */

static char *guard_area; /* GUARD_DATA readable bytes, then PROT_NONE */
static size_t guard_page;

static int setup_guard(void **state)
{
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, GUARD_DATA + guard_page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    if (mprotect(m + GUARD_DATA, guard_page, PROT_NONE) != 0)
        return -1;
    guard_area = m;
    return 0;
}

static int teardown_guard(void **state)
{
    return munmap(guard_area, GUARD_DATA + guard_page);
}

/* Copies s[0..n) so that its last byte is the last readable byte. */
static const char *guarded(const char *s, size_t n)
{
    assert_true(n <= GUARD_DATA);
    char *dst = guard_area + GUARD_DATA - n;
    memmove(dst, s, n);
    return dst;
}

static const http_limits_t limits = {256, 4096, 32};

/* A parse result with the pointers made relative to the input. */
typedef struct {
    int rc;
    int status;
    const char *error;
    size_t method, method_len, target, target_len;
    int minor;
    size_t num_headers;
    size_t name[HTTP_MAX_HEADERS], name_len[HTTP_MAX_HEADERS];
    size_t value[HTTP_MAX_HEADERS], value_len[HTTP_MAX_HEADERS];
} result_t;

static void snapshot(const char *base, int rc, const http_request_t *req,
                     result_t *r)
{
    memset(r, 0, sizeof *r);
    r->rc = rc;
    if (rc == HTTP_PARSE_ERROR) {
        r->status = req->status;
        r->error = req->error;
        return;
    }
    if (rc < 0)
        return;
    r->method = (size_t)(req->method - base);
    r->method_len = req->method_len;
    r->target = (size_t)(req->target - base);
    r->target_len = req->target_len;
    r->minor = req->minor_version;
    r->num_headers = req->num_headers;
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        r->name[i] = (size_t)(h->name - base);
        r->name_len[i] = h->name_len;
        r->value[i] = (size_t)(h->value - base);
        r->value_len[i] = h->value_len;
    }
}

/* Parses the prefix s[0..n) placed before the guard page. */
static int parse_guarded(const char *s, size_t n, size_t last_len,
                         const http_limits_t *lim, result_t *r)
{
    http_request_t req;
    const char *g = guarded(s, n);
    int rc = http_parse_request(g, n, last_len, lim, &req);
    snapshot(g, rc, &req, r);
    return rc;
}

static int parse_whole(const char *s, size_t n, const http_limits_t *lim,
                       result_t *r)
{
    return parse_guarded(s, n, 0, lim, r);
}

/* Feeds s in two calls split at split; the first final result counts. */
static void parse_split(const char *s, size_t n, size_t split,
                        const http_limits_t *lim, result_t *r)
{
    if (parse_guarded(s, split, 0, lim, r) != HTTP_PARSE_INCOMPLETE)
        return;
    parse_guarded(s, n, split, lim, r);
}

/* Feeds s one byte more per call. */
static void parse_bytewise(const char *s, size_t n, const http_limits_t *lim,
                           result_t *r)
{
    for (size_t k = 1; k <= n; k++)
        if (parse_guarded(s, k, k - 1, lim, r) != HTTP_PARSE_INCOMPLETE)
            return;
}

static void assert_same(const result_t *a, const result_t *b)
{
    assert_int_equal(a->rc, b->rc);
    assert_int_equal(a->status, b->status);
    assert_ptr_equal(a->error, b->error);
    assert_memory_equal(a, b, sizeof *a);
}

/* Whole, byte at a time and at every split point: all must agree. */
static void check_chunkings(const char *s, size_t n, const http_limits_t *lim)
{
    result_t whole, other;
    parse_whole(s, n, lim, &whole);
    parse_bytewise(s, n, lim, &other);
    assert_same(&whole, &other);
    for (size_t split = 0; split <= n; split++) {
        parse_split(s, n, split, lim, &other);
        assert_same(&whole, &other);
    }
}

static int expect_status(const char *s, size_t n, const http_limits_t *lim)
{
    result_t r;
    int rc = parse_whole(s, n, lim, &r);
    if (rc != HTTP_PARSE_ERROR) {
        print_error("expected an error for \"%.*s\", got %d\n", (int)n, s, rc);
        return -1;
    }
    assert_non_null(r.error);
    return r.status;
}

#define STATUS_OF(lit) expect_status(lit, sizeof(lit) - 1, &limits)

static const char chrome_ws[] =
    "GET /ws?room=lobby HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://localhost:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: parley.v1\r\n"
    "\r\n";

static void assert_header(const http_request_t *req, size_t i, const char *name,
                          const char *value)
{
    assert_true(i < req->num_headers);
    const http_header_t *h = &req->headers[i];
    assert_int_equal(h->name_len, strlen(name));
    assert_memory_equal(h->name, name, h->name_len);
    assert_int_equal(h->value_len, strlen(value));
    assert_memory_equal(h->value, value, h->value_len);
}

static void test_simple_get(void **state)
{
    static const char s[] = "GET /index.html HTTP/1.1\r\nHost: a.example\r\n"
                            "\r\nBODY";
    http_request_t req;
    const char *g = guarded(s, sizeof s - 1);
    int rc = http_parse_request(g, sizeof s - 1, 0, &limits, &req);
    assert_int_equal(rc, (int)(sizeof s - 1 - 4));
    assert_true(http_method_is(&req, "GET"));
    assert_false(http_method_is(&req, "get"));
    assert_false(http_method_is(&req, "GE"));
    assert_int_equal(req.target_len, 11);
    assert_memory_equal(req.target, "/index.html", 11);
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.num_headers, 1);
    assert_header(&req, 0, "Host", "a.example");
    assert_true(req.method >= g && req.target < g + rc);
}

static void test_chrome_request(void **state)
{
    http_request_t req;
    size_t n = sizeof chrome_ws - 1;
    int rc = http_parse_request(guarded(chrome_ws, n), n, 0, &limits, &req);
    assert_int_equal(rc, (int)n);
    assert_int_equal(req.num_headers, 13);
    assert_header(&req, 0, "Host", "localhost:8080");
    assert_header(&req, 4, "User-Agent",
                  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
                  "like Gecko) Chrome/131.0.0.0 Safari/537.36");
    assert_header(&req, 12, "Sec-WebSocket-Protocol", "parley.v1");
    const http_header_t *h = http_find_header(&req, "sec-websocket-key");
    assert_non_null(h);
    assert_memory_equal(h->value, "x3JJHMbDL1EzLkh9GBhXDw==", 24);
    assert_null(http_find_header(&req, "Sec-WebSocket-Key2"));
    assert_int_equal(http_count_header(&req, "HOST"), 1);
    assert_int_equal(http_count_header(&req, "Cookie"), 0);
}

static void test_rebase(void **state)
{
    size_t n = sizeof chrome_ws - 1;
    http_request_t req, want;
    const char *g = guarded(chrome_ws, n);
    assert_int_equal(http_parse_request(g, n, 0, &limits, &want), (int)n);
    req = want;
    char *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, g, n);
    http_request_rebase(&req, g, copy);
    assert_ptr_equal(req.method, copy);
    assert_ptr_equal(req.target, copy + (want.target - g));
    assert_int_equal(req.num_headers, want.num_headers);
    for (size_t i = 0; i < req.num_headers; i++) {
        assert_ptr_equal(req.headers[i].name,
                         copy + (want.headers[i].name - g));
        assert_ptr_equal(req.headers[i].value,
                         copy + (want.headers[i].value - g));
        assert_int_equal(req.headers[i].value_len, want.headers[i].value_len);
    }
    const http_header_t *h = http_find_header(&req, "sec-websocket-key");
    assert_non_null(h);
    assert_memory_equal(h->value, "x3JJHMbDL1EzLkh9GBhXDw==", 24);
    free(copy);
}

static void test_line_ends_and_ows(void **state)
{
    static const char s[] = "GET / HTTP/1.0\nA:  x y \t\r\nB:\nC:\t\t\n"
                            "D: \xff\xfe tab\there\r\n\n";
    http_request_t req;
    int rc = http_parse_request(guarded(s, sizeof s - 1), sizeof s - 1, 0,
                                &limits, &req);
    assert_int_equal(rc, (int)(sizeof s - 1));
    assert_int_equal(req.minor_version, 0);
    assert_int_equal(req.num_headers, 4);
    assert_header(&req, 0, "A", "x y");
    assert_header(&req, 1, "B", "");
    assert_header(&req, 2, "C", "");
    assert_header(&req, 3, "D", "\xff\xfe tab\there");
}

static void test_options_star(void **state)
{
    result_t r;
    static const char ok[] = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(parse_whole(ok, sizeof ok - 1, &limits, &r),
                     (int)(sizeof ok - 1));
    assert_int_equal(r.target_len, 1);
    assert_int_equal(STATUS_OF("GET * HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("OPTIONS *x HTTP/1.1\r\n\r\n"), 400);
}

static void test_incomplete(void **state)
{
    size_t n = sizeof chrome_ws - 1;
    result_t r;
    for (size_t k = 0; k < n; k++)
        assert_int_equal(parse_whole(chrome_ws, k, &limits, &r),
                         HTTP_PARSE_INCOMPLETE);
}

static void test_request_line_strictness(void **state)
{
    assert_int_equal(STATUS_OF("G(T / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF(" GET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET  / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET /  HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1 \r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET\t/ HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET /a b HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET http://h/ HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("CONNECT h:443 HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET /\x7f HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET /\x80 HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET /\x01 HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.10\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / http/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/a.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET /\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\rX: y\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("\r\nGET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("\nGET / HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/2.0\r\n\r\n"), 505);
    assert_int_equal(STATUS_OF("GET / HTTP/1.2\r\n\r\n"), 505);
    assert_int_equal(STATUS_OF("GET / HTTP/0.9\r\n\r\n"), 505);
    assert_int_equal(STATUS_OF("GET / HTTP/3.1\r\n\r\n"), 505);
}

static void test_header_strictness(void **state)
{
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nHost: a\r\n  b\r\n\r\n"),
                     400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n"),
                     400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\n: a\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nHost a\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nHost\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nX: a\r\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nX: a\rY: b\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\nX\x80: a\r\n\r\n"), 400);
    assert_int_equal(STATUS_OF("GET / HTTP/1.1\r\n\r\r\n\r\n"), 400);
    static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    assert_int_equal(expect_status(nul, sizeof nul - 1, &limits), 400);
}

/* A head whose request line has exactly line_len bytes before CRLF. */
static size_t make_long_line(char *buf, size_t line_len)
{
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', line_len - 14);
    memcpy(buf + line_len - 9, " HTTP/1.1\r\n\r\n", 13);
    return line_len + 4;
}

static void test_limit_request_line(void **state)
{
    char buf[512];
    result_t r;
    size_t n = make_long_line(buf, limits.max_request_line);
    assert_int_equal(parse_whole(buf, n, &limits, &r), (int)n);
    n = make_long_line(buf, limits.max_request_line + 1);
    assert_int_equal(parse_whole(buf, n, &limits, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 414);
    /* Incomplete: max_request_line bytes wait, one more fails. */
    size_t max = limits.max_request_line;
    assert_int_equal(parse_whole(buf, max, &limits, &r), HTTP_PARSE_INCOMPLETE);
    assert_int_equal(parse_whole(buf, max + 1, &limits, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 414);
    /* A CR right after the limit may still be the end of the line. */
    make_long_line(buf, max);
    assert_int_equal(parse_whole(buf, max + 1, &limits, &r),
                     HTTP_PARSE_INCOMPLETE);
    buf[max + 1] = 'x';
    assert_int_equal(parse_whole(buf, max + 2, &limits, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 414);
}

/* Request line, then headers "X: vvv" padding the head to head_len. */
static size_t make_big_head(char *buf, size_t head_len)
{
    size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nX: ");
    memset(buf + n, 'v', head_len - n - 4);
    memcpy(buf + head_len - 4, "\r\n\r\n", 4);
    return head_len;
}

static void test_limit_head_size(void **state)
{
    static char buf[8192];
    result_t r;
    size_t max = limits.max_head;
    size_t n = make_big_head(buf, max);
    assert_int_equal(parse_whole(buf, n, &limits, &r), (int)n);
    n = make_big_head(buf, max + 1);
    assert_int_equal(parse_whole(buf, n, &limits, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 431);
    assert_int_equal(parse_whole(buf, max - 1, &limits, &r),
                     HTTP_PARSE_INCOMPLETE);
    assert_int_equal(parse_whole(buf, max, &limits, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 431);
    check_chunkings(buf, n, &limits);
}

static size_t make_many_headers(char *buf, size_t count)
{
    size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < count; i++)
        n += (size_t)sprintf(buf + n, "H%zu: v\r\n", i);
    memcpy(buf + n, "\r\n", 2);
    return n + 2;
}

static void test_limit_header_count(void **state)
{
    static char buf[8192];
    result_t r;
    size_t n = make_many_headers(buf, limits.max_headers);
    assert_int_equal(parse_whole(buf, n, &limits, &r), (int)n);
    assert_int_equal(r.num_headers, limits.max_headers);
    n = make_many_headers(buf, limits.max_headers + 1);
    assert_int_equal(parse_whole(buf, n, &limits, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 431);
    check_chunkings(buf, n, &limits);
    /* Incomplete: the (max+1)th complete header line fails at once. */
    assert_int_equal(parse_whole(buf, n - 2, &limits, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 431);
    assert_int_equal(parse_whole(buf, n - 3, &limits, &r),
                     HTTP_PARSE_INCOMPLETE);
    /* max_headers above HTTP_MAX_HEADERS is clamped. */
    http_limits_t big = {256, 60000, 1000};
    n = make_many_headers(buf, HTTP_MAX_HEADERS);
    assert_int_equal(parse_whole(buf, n, &big, &r), (int)n);
    n = make_many_headers(buf, HTTP_MAX_HEADERS + 1);
    assert_int_equal(parse_whole(buf, n, &big, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 431);
}

/* Limits are checked before syntax, by their position in the stream. */
static void test_limit_precedence(void **state)
{
    static char buf[8192];
    result_t r;
    /* A bad header line does not hide too many headers... */
    size_t n = make_many_headers(buf, limits.max_headers + 1);
    buf[17] = ' ';
    assert_int_equal(parse_whole(buf, n, &limits, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 431);
    check_chunkings(buf, n, &limits);
    /* ...and a long request line beats a head that is too large, even
     * when the request-line limit is above the head limit. */
    http_limits_t odd = {1000, 100, 8};
    n = make_long_line(buf, 500);
    assert_int_equal(parse_whole(buf, n, &odd, &r), HTTP_PARSE_ERROR);
    assert_int_equal(r.status, 414);
    check_chunkings(buf, n, &odd);
}

static const char *const chunk_cases[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.0\nHost: a\n\n",
    "GET / HTTP/1.1\r\nHost: a\n\r\n",
    "GET / HTTP/1.1\nHost: a\r\n\n",
    "GET /x?y=1 HTTP/1.1\r\nA: 1\r\nB:2\r\n\r\nextra bytes\r\n\r\n",
    "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "GET / HTTP/2.0\r\n\r\n",
    "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
    "GET / HTTP/1.1\rX\r\n\r\n",
    "\r\n\r\n",
    "\n\n",
    "\r\r\n\r\n",
    "GET / HTTP/1.1\r\n\r\r\n\n",
};

static void test_every_chunking(void **state)
{
    for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++)
        check_chunkings(chunk_cases[i], strlen(chunk_cases[i]), &limits);
    check_chunkings(chrome_ws, sizeof chrome_ws - 1, &limits);
    char buf[512];
    size_t n = make_long_line(buf, limits.max_request_line + 1);
    check_chunkings(buf, n, &limits);
}

static void test_last_len_resume(void **state)
{
    static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = sizeof s - 1;
    result_t a, b;
    parse_whole(s, n, &limits, &a);
    /* Resuming from each earlier length, and a stale last_len > len. */
    for (size_t last = 0; last < n; last++) {
        parse_guarded(s, n, last, &limits, &b);
        assert_same(&a, &b);
    }
    parse_guarded(s, n, n + 10, &limits, &b);
    assert_same(&a, &b);
}

static void test_has_token(void **state)
{
    assert_true(http_has_token("Upgrade", 7, "upgrade"));
    assert_true(http_has_token("keep-alive, Upgrade", 19, "upgrade"));
    assert_true(http_has_token(" keep-alive ,\tUPGRADE\t", 22, "upgrade"));
    assert_true(http_has_token("a,,upgrade,", 11, "upgrade"));
    assert_false(http_has_token("keep-alive", 10, "upgrade"));
    assert_false(http_has_token("upgrades", 8, "upgrade"));
    assert_false(http_has_token("up grade", 8, "upgrade"));
    assert_false(http_has_token("", 0, "upgrade"));
    /* len bounds the value: the token past it does not count. */
    assert_false(http_has_token("a, upgrade", 4, "upgrade"));
}

static void test_split_target(void **state)
{
    http_request_t req = {.target = "/a/b?x=1&y", .target_len = 10};
    size_t path_len, query_len;
    const char *query;
    http_split_target(&req, &path_len, &query, &query_len);
    assert_int_equal(path_len, 4);
    assert_ptr_equal(query, req.target + 5);
    assert_int_equal(query_len, 5);
    req.target_len = 4;
    http_split_target(&req, &path_len, &query, &query_len);
    assert_int_equal(path_len, 4);
    assert_null(query);
    assert_int_equal(query_len, 0);
    req.target = "/?";
    req.target_len = 2;
    http_split_target(&req, &path_len, &query, &query_len);
    assert_int_equal(path_len, 1);
    assert_non_null(query);
    assert_int_equal(query_len, 0);
}

static void test_decode_path(void **state)
{
    char out[16];
    assert_int_equal(http_decode_path("/a%20b%2Fc%7e", 13, out, sizeof out), 7);
    assert_memory_equal(out, "/a b/c~", 8); /* NUL added when room */
    assert_int_equal(http_decode_path("/a+b", 4, out, sizeof out), 4);
    assert_memory_equal(out, "/a+b", 4);
    assert_int_equal(http_decode_path("", 0, out, sizeof out), 0);
    assert_int_equal(http_decode_path("/%00", 4, out, sizeof out), -1);
    assert_int_equal(http_decode_path("/a\0b", 4, out, sizeof out), -1);
    assert_int_equal(http_decode_path("/%", 2, out, sizeof out), -1);
    assert_int_equal(http_decode_path("/%4", 3, out, sizeof out), -1);
    assert_int_equal(http_decode_path("/%4g", 4, out, sizeof out), -1);
    assert_int_equal(http_decode_path("/%g4", 4, out, sizeof out), -1);
    /* A truncated escape at len must not read past it. */
    assert_int_equal(http_decode_path("/%41", 3, out, sizeof out), -1);
    assert_int_equal(http_decode_path("/abcd", 5, out, 5), 5);
    assert_int_equal(http_decode_path("/abcd", 5, out, 4), -1);
    assert_int_equal(http_decode_path("/%41%42", 7, out, 3), 3);
    assert_memory_equal(out, "/AB", 3);
}

static int parse_str(const char *s, http_request_t *req)
{
    size_t n = strlen(s);
    return http_parse_request(guarded(s, n), n, 0, &limits, req);
}

static void test_keep_alive(void **state)
{
    http_request_t req;
    assert_true(parse_str("GET / HTTP/1.1\r\n\r\n", &req) > 0);
    assert_true(http_keep_alive(&req));
    assert_true(parse_str("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", &req) >
                0);
    assert_false(http_keep_alive(&req));
    assert_true(parse_str("GET / HTTP/1.1\r\nConnection: x\r\n"
                          "Connection: upgrade, close\r\n\r\n",
                          &req) > 0);
    assert_false(http_keep_alive(&req));
    assert_true(parse_str("GET / HTTP/1.0\r\n\r\n", &req) > 0);
    assert_false(http_keep_alive(&req));
    assert_true(parse_str("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                          &req) > 0);
    assert_true(http_keep_alive(&req));
    assert_true(parse_str("GET / HTTP/1.0\r\nConnection: keep-alive\r\n"
                          "Connection: close\r\n\r\n",
                          &req) > 0);
    assert_false(http_keep_alive(&req));
}

static int content_length_of(const char *headers, size_t *out)
{
    char buf[256];
    http_request_t req;
    snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\n%s\r\n", headers);
    size_t n = strlen(buf);
    const char *g = guarded(buf, n);
    assert_int_equal(http_parse_request(g, n, 0, &limits, &req), (int)n);
    return http_content_length(&req, out);
}

static void test_content_length(void **state)
{
    size_t v = 99;
    assert_int_equal(content_length_of("", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(content_length_of("Content-Length: 42\r\n", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(
        content_length_of("content-length: 7\r\nContent-Length: 007\r\n", &v),
        0);
    assert_int_equal(v, 7);
    assert_int_equal(
        content_length_of("Content-Length: 7\r\nContent-Length: 8\r\n", &v),
        -1);
    assert_int_equal(content_length_of("Content-Length: \r\n", &v), -1);
    assert_int_equal(content_length_of("Content-Length: -1\r\n", &v), -1);
    assert_int_equal(content_length_of("Content-Length: +1\r\n", &v), -1);
    assert_int_equal(content_length_of("Content-Length: 1 2\r\n", &v), -1);
    assert_int_equal(content_length_of("Content-Length: 5, 5\r\n", &v), -1);
    assert_int_equal(content_length_of("Content-Length: 0x10\r\n", &v), -1);
    char big[64];
    snprintf(big, sizeof big, "Content-Length: %zu\r\n", (size_t)SIZE_MAX);
    assert_int_equal(content_length_of(big, &v), 0);
    assert_true(v == SIZE_MAX);
    assert_int_equal(
        content_length_of("Content-Length: 99999999999999999999999\r\n", &v),
        -1);
}

static void test_reason(void **state)
{
    static const int statuses[] = {101, 200, 204, 304, 400, 401, 403,
                                   404, 405, 408, 411, 413, 414, 415,
                                   426, 429, 431, 500, 501, 503, 505};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        assert_string_not_equal(http_reason(statuses[i]), "Unknown");
    assert_string_equal(http_reason(404), "Not Found");
    assert_string_equal(http_reason(101), "Switching Protocols");
    assert_string_equal(http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_reason(599), "Unknown");
    assert_string_equal(http_reason(0), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_chrome_request),
        cmocka_unit_test(test_rebase),
        cmocka_unit_test(test_line_ends_and_ows),
        cmocka_unit_test(test_options_star),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_request_line_strictness),
        cmocka_unit_test(test_header_strictness),
        cmocka_unit_test(test_limit_request_line),
        cmocka_unit_test(test_limit_head_size),
        cmocka_unit_test(test_limit_header_count),
        cmocka_unit_test(test_limit_precedence),
        cmocka_unit_test(test_every_chunking),
        cmocka_unit_test(test_last_len_resume),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_split_target),
        cmocka_unit_test(test_decode_path),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_reason),
    };
    return cmocka_run_group_tests(tests, setup_guard, teardown_guard);
}
