/*
 * fuzz_http_parser.c - libFuzzer target for the request-head parser.
 *
 * The whole input is parsed at once, and again in two calls split at a
 * point chosen by the first byte (the first call on an exact-size copy of
 * the prefix, so an over-read past it trips ASan); both must agree.  On
 * success every output must point inside the head, and the helpers run
 * over the parsed request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parser.h"
#include "fuzz.h"

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void check_request(const char *buf, int rc, const http_request_t *req)
{
    size_t len = (size_t)rc;
    CHECK(inside(req->method, req->method_len, buf, len));
    CHECK(inside(req->target, req->target_len, buf, len));
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->num_headers <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, len));
        CHECK(inside(h->value, h->value_len, buf, len));
        http_has_token(h->value, h->value_len, "close");
    }
}

static void exercise_helpers(const http_request_t *req)
{
    size_t path_len, query_len, clen;
    const char *query;
    char out[256];
    http_split_target(req, &path_len, &query, &query_len);
    CHECK(path_len <= req->target_len);
    int n = http_decode_path(req->target, path_len, out, sizeof out);
    CHECK(n == -1 || (n >= 0 && (size_t)n <= path_len));
    CHECK(n <= 0 || memchr(out, 0, (size_t)n) == NULL);
    http_keep_alive(req);
    http_content_length(req, &clen);
    const http_header_t *h = http_find_header(req, "host");
    CHECK((h != NULL) == (http_count_header(req, "HOST") > 0));
}

static bool same(int rc1, const http_request_t *a, const char *base_a, int rc2,
                 const http_request_t *b, const char *base_b)
{
    if (rc1 != rc2)
        return false;
    if (rc1 == HTTP_PARSE_ERROR)
        return a->status == b->status && a->error == b->error;
    if (rc1 < 0)
        return true;
    if (a->method - base_a != b->method - base_b ||
        a->target_len != b->target_len || a->num_headers != b->num_headers)
        return false;
    for (size_t i = 0; i < a->num_headers; i++)
        if (a->headers[i].value - base_a != b->headers[i].value - base_b ||
            a->headers[i].value_len != b->headers[i].value_len)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static http_request_t whole, part;
    if (size == 0)
        return 0;
    const char *buf = (const char *)data;
    http_limits_t lim = {200, 1024, 16};
    if (data[0] & 1)
        lim = (http_limits_t){16, 64, 2};
    int rc = http_parse_request(buf, size, 0, &lim, &whole);
    CHECK(rc == HTTP_PARSE_ERROR || rc == HTTP_PARSE_INCOMPLETE ||
          (rc > 0 && (size_t)rc <= size && (size_t)rc <= lim.max_head));
    if (rc == HTTP_PARSE_ERROR)
        CHECK(whole.status == 400 || whole.status == 414 ||
              whole.status == 431 || whole.status == 505);
    if (rc > 0) {
        check_request(buf, rc, &whole);
        exercise_helpers(&whole);
    }
    size_t split = size * data[0] / 255;
    char *prefix = malloc(split ? split : 1);
    CHECK(prefix != NULL);
    memcpy(prefix, data, split);
    int rc1 = http_parse_request(prefix, split, 0, &lim, &part);
    if (rc1 != HTTP_PARSE_INCOMPLETE) {
        CHECK(same(rc1, &part, prefix, rc, &whole, buf));
    } else {
        rc1 = http_parse_request(buf, size, split, &lim, &part);
        CHECK(same(rc1, &part, buf, rc, &whole, buf));
    }
    free(prefix);
    return 0;
}
