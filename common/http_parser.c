/*
 * http_parser.c - strict HTTP/1.1 request-head parser (see http_parser.h).
 *
 * One call does three things, always in the same order, so the outcome
 * depends only on buf[0..len) and never on how the bytes were chunked:
 *   1. find the end of the head (resuming at last_len - 3);
 *   2. check the limits on what has arrived, complete or not, reporting the
 *      violation that happens first in the byte stream (414, then 431 for
 *      the header count, then 431 for the size);
 *   3. once the head is complete, parse and validate it line by line.
 * A limit error seen on a prefix is therefore also the error of every
 * longer input, which is what lets a server fail a slow oversized head
 * early.
 */
#include "http_parser.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

static int fail(http_request_t *req, int status, const char *why)
{
    req->status = status;
    req->error = why;
    return HTTP_PARSE_ERROR;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Control characters forbidden in a field value (HTAB is allowed). */
static bool is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

/*
 * Returns the length of the head (through the empty line) when buf[0..len)
 * holds one, else 0.  An empty line is an LF followed by LF or CR LF; the
 * start of the buffer counts as a line start too, so a head that begins
 * with an empty line completes (and then fails) at once.  Patterns that
 * end before last_len were seen by the previous call, hence the resume.
 */
static size_t find_head_end(const char *buf, size_t len, size_t last_len)
{
    if (len > 0 && buf[0] == '\n')
        return 1;
    if (len > 1 && buf[0] == '\r' && buf[1] == '\n')
        return 2;
    size_t i = last_len > 3 ? last_len - 3 : 0;
    const char *lf;
    while (i < len && (lf = memchr(buf + i, '\n', len - i)) != NULL) {
        i = (size_t)(lf - buf) + 1;
        if (i < len && buf[i] == '\n')
            return i + 1;
        if (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
            return i + 2;
    }
    return 0;
}

/*
 * The request-line limit is clamped below max_head - 1 so that whenever a
 * prefix fails for size while the request line is still open, the request
 * line has already failed for length: 414 and 431 never swap places
 * between a prefix and the whole input.
 */
static size_t line_limit(const http_limits_t *lim, size_t max_head)
{
    size_t cap = max_head >= 2 ? max_head - 2 : 0;
    return lim->max_request_line < cap ? lim->max_request_line : cap;
}

/* Checks the request line's length on buf[0..n); sets *l0 to its LF. */
static int check_line_limit(const char *buf, size_t n, size_t max_line,
                            const char **l0, http_request_t *req)
{
    size_t scan = n < max_line + 2 ? n : max_line + 2;
    *l0 = memchr(buf, '\n', scan);
    size_t end = *l0 ? (size_t)(*l0 - buf) : scan;
    /* A CR just before the LF (or pending at the end) is not content. */
    size_t content = end - (end > 0 && buf[end - 1] == '\r');
    if (content > max_line)
        return fail(req, 414, "request line too long");
    return 0;
}

/*
 * Counts the header lines (every LF after the request line's, except the
 * final empty line's) that end before byte max_head - 1, where a size
 * violation would take over.
 */
static int check_count_limit(const char *buf, size_t n, bool complete,
                             const char *l0, size_t max_head,
                             size_t max_headers, http_request_t *req)
{
    size_t stop = complete ? n - 1 : n;
    if (max_head == 0)
        return 0;
    if (stop > max_head - 1)
        stop = max_head - 1;
    size_t i = (size_t)(l0 - buf) + 1, count = 0;
    const char *lf;
    while (i < stop && (lf = memchr(buf + i, '\n', stop - i)) != NULL) {
        if (++count > max_headers)
            return fail(req, 431, "too many header fields");
        i = (size_t)(lf - buf) + 1;
    }
    return 0;
}

static size_t headers_limit(const http_limits_t *lim)
{
    return lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers
                                               : HTTP_MAX_HEADERS;
}

/* Limits on buf[0..n): the whole head if complete, else all bytes. */
static int check_limits(const char *buf, size_t n, bool complete,
                        const http_limits_t *lim, http_request_t *req)
{
    size_t max_head = lim->max_head < INT_MAX ? lim->max_head : INT_MAX;
    const char *l0;
    int rc = check_line_limit(buf, n, line_limit(lim, max_head), &l0, req);
    if (rc != 0)
        return rc;
    if (l0 != NULL) {
        rc = check_count_limit(buf, n, complete, l0, max_head,
                               headers_limit(lim), req);
        if (rc != 0)
            return rc;
    }
    /* Incomplete after max_head bytes means longer than max_head. */
    if (complete ? n > max_head : n >= max_head)
        return fail(req, 431, "request head too large");
    return 0;
}

/* Cuts the next line out of a complete head; *pos moves past its LF. */
static void next_line(const char **pos, const char *end, const char **line,
                      size_t *line_len)
{
    const char *lf = memchr(*pos, '\n', (size_t)(end - *pos));
    size_t n = (size_t)(lf - *pos);
    if (n > 0 && lf[-1] == '\r')
        n--;
    *line = *pos;
    *line_len = n;
    *pos = lf + 1;
}

/* "HTTP/" DIGIT "." DIGIT; only 1.0 and 1.1 are served. */
static int parse_version(const char *v, size_t n, http_request_t *req)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
        v[6] != '.' || v[7] < '0' || v[7] > '9')
        return fail(req, 400, "malformed HTTP version");
    if (v[5] != '1' || v[7] > '1')
        return fail(req, 505, "HTTP version not supported");
    req->minor_version = v[7] - '0';
    return 0;
}

/* origin-form, or "*" for OPTIONS; absolute and authority forms fail. */
static int check_target(http_request_t *req)
{
    if (req->target[0] == '/')
        return 0;
    if (req->target_len == 1 && req->target[0] == '*' &&
        http_method_is(req, "OPTIONS"))
        return 0;
    return fail(req, 400, "unsupported request-target form");
}

/* method SP request-target SP HTTP-version */
static int parse_request_line(const char *s, size_t n, http_request_t *req)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != ' ')
        return fail(req, 400, "malformed method");
    req->method = s;
    req->method_len = i;
    size_t t = ++i;
    while (i < n && s[i] > ' ' && s[i] < 0x7f)
        i++;
    if (i == t || i >= n || s[i] != ' ')
        return fail(req, 400, "malformed request-target");
    req->target = s + t;
    req->target_len = i - t;
    int rc = check_target(req);
    if (rc != 0)
        return rc;
    return parse_version(s + i + 1, n - i - 1, req);
}

/* field-name ":" OWS field-value OWS, on a non-empty line. */
static int parse_header(const char *s, size_t n, size_t max_headers,
                        http_request_t *req)
{
    if (is_ows(s[0]))
        return fail(req, 400, "obsolete line folding");
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    if (i < n && is_ows(s[i]))
        return fail(req, 400, "whitespace before colon");
    if (i == 0 || i >= n || s[i] != ':')
        return fail(req, 400, "malformed header name");
    const char *v = s + i + 1, *end = s + n;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    for (const char *p = v; p < end; p++)
        if (is_ctl((unsigned char)*p))
            return fail(req, 400, "control character in header value");
    if (req->num_headers >= max_headers)
        return fail(req, 431, "too many header fields");
    http_header_t *h = &req->headers[req->num_headers++];
    *h = (http_header_t){s, i, v, (size_t)(end - v)};
    return 0;
}

/* Parses a complete head buf[0..n) (it ends with an empty line). */
static int parse_head(const char *buf, size_t n, size_t max_headers,
                      http_request_t *req)
{
    const char *pos = buf, *end = buf + n, *line;
    size_t line_len;
    next_line(&pos, end, &line, &line_len);
    int rc = parse_request_line(line, line_len, req);
    while (rc == 0) {
        next_line(&pos, end, &line, &line_len);
        if (line_len == 0)
            break;
        rc = parse_header(line, line_len, max_headers, req);
    }
    return rc;
}

static void reset_request(http_request_t *req)
{
    req->method = req->target = NULL;
    req->method_len = req->target_len = 0;
    req->minor_version = 0;
    req->num_headers = 0;
    req->status = 0;
    req->error = NULL;
}

int http_parse_request(const char *buf, size_t len, size_t last_len,
                       const http_limits_t *limits, http_request_t *req)
{
    reset_request(req);
    if (last_len > len)
        last_len = 0;
    size_t head_len = find_head_end(buf, len, last_len);
    int rc = check_limits(buf, head_len ? head_len : len, head_len != 0, limits,
                          req);
    if (rc != 0)
        return rc;
    if (head_len == 0)
        return HTTP_PARSE_INCOMPLETE;
    rc = parse_head(buf, head_len, headers_limit(limits), req);
    if (rc != 0)
        return rc;
    return (int)head_len; /* <= max_head, itself clamped to INT_MAX */
}

static const char *rebase(const char *p, const char *from, const char *to)
{
    return p != NULL ? to + (p - from) : NULL;
}

void http_request_rebase(http_request_t *req, const char *from, const char *to)
{
    req->method = rebase(req->method, from, to);
    req->target = rebase(req->target, from, to);
    for (size_t i = 0; i < req->num_headers; i++) {
        http_header_t *h = &req->headers[i];
        h->name = rebase(h->name, from, to);
        h->value = rebase(h->value, from, to);
    }
}

const http_header_t *http_find_header(const http_request_t *req,
                                      const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len == n && ascii_ieq(h->name, name, n))
            return h;
    }
    return NULL;
}

size_t http_count_header(const http_request_t *req, const char *name)
{
    size_t n = strlen(name), count = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len == n && ascii_ieq(h->name, name, n))
            count++;
    }
    return count;
}

bool http_has_token(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token), i = 0;
    while (i <= len) {
        const char *comma = memchr(value + i, ',', len - i);
        size_t stop = comma ? (size_t)(comma - value) : len, a = i, b = stop;
        while (a < b && is_ows(value[a]))
            a++;
        while (b > a && is_ows(value[b - 1]))
            b--;
        if (b - a == tlen && ascii_ieq(value + a, token, tlen))
            return true;
        i = stop + 1;
    }
    return false;
}

bool http_method_is(const http_request_t *req, const char *m)
{
    size_t n = strlen(m);
    return req->method != NULL && req->method_len == n &&
           memcmp(req->method, m, n) == 0;
}

void http_split_target(const http_request_t *req, size_t *path_len,
                       const char **query, size_t *query_len)
{
    const char *q =
        req->target_len ? memchr(req->target, '?', req->target_len) : NULL;
    if (q == NULL) {
        *path_len = req->target_len;
        *query = NULL;
        *query_len = 0;
        return;
    }
    *path_len = (size_t)(q - req->target);
    *query = q + 1;
    *query_len = req->target_len - *path_len - 1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Also NUL-terminates out when there is room left (not required). */
int http_decode_path(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o >= cap || o >= INT_MAX)
            return -1;
        out[o++] = (char)c;
    }
    if (o < cap)
        out[o] = '\0';
    return (int)o;
}

/* True when any header named name lists token. */
static bool any_header_has(const http_request_t *req, const char *name,
                           const char *token)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len == n && ascii_ieq(h->name, name, n) &&
            http_has_token(h->value, h->value_len, token))
            return true;
    }
    return false;
}

bool http_keep_alive(const http_request_t *req)
{
    if (any_header_has(req, "Connection", "close"))
        return false;
    if (req->minor_version >= 1)
        return true;
    return any_header_has(req, "Connection", "keep-alive");
}

static int parse_size(const char *s, size_t len, size_t *out)
{
    size_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        size_t d = (size_t)(s[i] - '0');
        if (v > (SIZE_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int http_content_length(const http_request_t *req, size_t *out)
{
    bool seen = false;
    size_t value = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        size_t v;
        if (h->name_len != 14 || !ascii_ieq(h->name, "Content-Length", 14))
            continue;
        if (parse_size(h->value, h->value_len, &v) != 0)
            return -1;
        if (seen && v != value)
            return -1;
        seen = true;
        value = v;
    }
    *out = value;
    return 0;
}

const char *http_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {101, "Switching Protocols"},
        {200, "OK"},
        {204, "No Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {411, "Length Required"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}
