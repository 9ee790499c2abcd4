/*
 * http.h - the HTTP/1.1 side of a connection: reads request heads with
 * common/http_parser, routes them (static files, /healthz, /metrics, the
 * WebSocket upgrade) and writes responses.  Keep-alive, HEAD, and a short
 * text body on every error.
 */
#ifndef PARLEY_HTTP_H
#define PARLEY_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

/* Input arrived while c is in an HTTP state: parse and serve what is
 * complete. */
void http_on_read(conn_t *c);

/* The state timer of an HTTP state fired (header read or keep-alive idle
 * timeout): answer 408 if a request was partly read, then close. */
void http_on_timeout(conn_t *c);

/* The response of the current request is fully written: go back to reading
 * the next request head (keep-alive) or close. */
void http_on_written(conn_t *c);

/*
 * Writes a complete error response with a short text/plain body
 * ("<status> <reason>: <detail>\n"), and closes the connection after it
 * unless keep-alive is possible and the status allows it.  extra_headers is
 * NULL or CRLF-terminated header lines to add (e.g.
 * "Sec-WebSocket-Version: 13\r\n").
 */
void http_send_error(conn_t *c, int status, const char *detail,
                     const char *extra_headers);

/*
 * Writes a complete response with the in-memory body[0..len) (copied) of
 * Content-Type type, like the error responses: keep-alive continues after
 * it when the request allows it.  extra_headers as for http_send_error().
 * No-op on a closing connection.
 */
void http_send_response(conn_t *c, int status, const char *type,
                        const char *body, size_t len,
                        const char *extra_headers);

/*
 * The current request of c (CONN_HTTP_HEAD, head already consumed) has a
 * body of len > 0 bytes: moves c to CONN_HTTP_BODY and calls
 * api_on_body() once len bytes are buffered (perhaps at once), within
 * header_timeout (408 otherwise).  With expect_continue, "100 Continue" is
 * written first unless the body is already there.
 */
void http_read_body(conn_t *c, size_t len, bool expect_continue);

#endif
