/*
 * http_parser.h - strict HTTP/1.1 request-head parser, no I/O.
 *
 * picohttpparser-shaped: the caller keeps the bytes received so far in one
 * buffer and calls http_parse_request() each time more arrive, passing how
 * many bytes the previous call saw (last_len) so the end-of-head search
 * resumes where it stopped.  Outputs point into the caller's buffer (no
 * allocation per header).  Limits on the request line and the head give the
 * right status: 414 (request line too long), 431 (head too large or too many
 * headers), 400 (malformed), 505 (HTTP version other than 1.0/1.1),
 * 501 (Transfer-Encoding other than none on a request we cannot handle is
 * the caller's business, not the parser's).
 */
#ifndef PARLEY_HTTP_PARSER_H
#define PARLEY_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

/* The hard upper bound of http_limits_t.max_headers. */
#define HTTP_MAX_HEADERS 64

enum {
    HTTP_PARSE_ERROR = -1,     /* see req->status and req->error */
    HTTP_PARSE_INCOMPLETE = -2 /* need more bytes */
};

typedef struct {
    size_t max_request_line; /* bytes, without CRLF; over it: 414 */
    size_t max_head;         /* bytes of the whole head; over it: 431 */
    size_t max_headers;      /* count, <= HTTP_MAX_HEADERS; over it: 431 */
} http_limits_t;

typedef struct {
    const char *name; /* as received (case preserved) */
    size_t name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t value_len;
} http_header_t;

typedef struct {
    const char *method;
    size_t method_len;
    const char *target; /* request-target as received (origin-form) */
    size_t target_len;
    int minor_version; /* 0 or 1 (HTTP/1.x) */
    http_header_t headers[HTTP_MAX_HEADERS];
    size_t num_headers;
    int status;        /* on HTTP_PARSE_ERROR: 400, 414, 431 or 505 */
    const char *error; /* on HTTP_PARSE_ERROR: short static reason */
} http_request_t;

/*
 * Parses the request head in buf[0..len).  last_len is the len of the
 * previous call on the same buffer (0 on the first).  Returns the length of
 * the head (through the blank line) when complete, HTTP_PARSE_INCOMPLETE
 * when more bytes are needed (limits are checked on partial input too, so
 * an oversized head fails early), or HTTP_PARSE_ERROR.  Strict: CRLF line
 * ends (a bare LF is accepted, a bare CR is not), no obs-fold, token
 * characters in the method and header names, no whitespace before a colon,
 * no control characters in values.  On success req points into buf.
 */
int http_parse_request(const char *buf, size_t len, size_t last_len,
                       const http_limits_t *limits, http_request_t *req);

/*
 * After a successful parse of from[0..n), moves req's pointers to the same
 * offsets in to[0..n), a copy of those bytes (so the head need not be
 * parsed again once it is copied out of an input buffer).
 */
void http_request_rebase(http_request_t *req, const char *from, const char *to);

/* The first header named name (ASCII case-insensitive), or NULL. */
const http_header_t *http_find_header(const http_request_t *req,
                                      const char *name);

/* Number of headers named name (to reject duplicates where they matter). */
size_t http_count_header(const http_request_t *req, const char *name);

/*
 * True when the comma-separated list value[0..len) contains token, ASCII
 * case-insensitively, ignoring optional whitespace around elements
 * (Connection: keep-alive, Upgrade).
 */
bool http_has_token(const char *value, size_t len, const char *token);

/* True for method[0..len) == m (case-sensitive, as RFC 9110 says). */
bool http_method_is(const http_request_t *req, const char *m);

/*
 * Splits the target into path and query: *path_len is the length up to '?'
 * or the end; *query points after '?' or is NULL.
 */
void http_split_target(const http_request_t *req, size_t *path_len,
                       const char **query, size_t *query_len);

/*
 * Percent-decodes the path in[0..len) into out[0..cap).  Fails (returns -1)
 * on a malformed escape, an encoded or literal NUL, or when out is too
 * small; returns the decoded length otherwise.  Does not normalize.
 */
int http_decode_path(const char *in, size_t len, char *out, size_t cap);

/*
 * Whether the connection stays open after the response: HTTP/1.1 unless
 * "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
 */
bool http_keep_alive(const http_request_t *req);

/*
 * Reads Content-Length.  Returns 0 and sets *out (0 when absent), or -1 on
 * a malformed, duplicated-with-different-values or overflowing value.
 */
int http_content_length(const http_request_t *req, size_t *out);

/* Standard reason phrase of status ("Not Found"), "Unknown" otherwise. */
const char *http_reason(int status);

#endif
