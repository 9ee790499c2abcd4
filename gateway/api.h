/*
 * api.h - the HTTP API of a gateway (PROTOCOL.md section 1):
 *
 *   POST /api/rooms/<room>/messages   {"nick":"bot","text":"..."}
 *                                     -> 200 {"room":"...","seq":N}
 *   GET  /api/rooms/<room>/history?since=N&limit=M
 *        -> 200 {"room":"...","epoch":"...","seq":LAST,"messages":[msg,...]}
 *
 * Both need "Authorization: Bearer <api_token>"; with no api_token
 * configured every /api path answers 404 "HTTP API disabled".
 *
 * A request becomes one broker request (SAY with ack, or HIST) whose conn
 * id has API_ID_BIT set, so it never collides with a connection id or
 * chat.c's HIST request ids (1 << 62 and up).  The requests in flight sit
 * in a fixed table (API_MAX_PENDING; 503 beyond); each is tied to its
 * connection both ways, so a connection that closes first frees its entry
 * and the late answer finds nothing.  The wait is bounded by
 * request_timeout with the connection's own timer.
 */
#ifndef PARLEY_API_H
#define PARLEY_API_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"
#include "http_parser.h"
#include "wire.h"

#define API_ID_BIT (1ull << 63)
#define API_MAX_PENDING 1024
#define API_MAX_LIMIT 1000 /* most messages one history request returns */
#define API_DEFAULT_LIMIT 50

/* True for "/api" and every path under "/api/". */
bool api_is_path(const char *path, size_t plen);

/*
 * Routes the request head req (borrowed, valid during the call) of c
 * (state CONN_HTTP_HEAD) to path[0..plen) under /api, query[0..qlen)
 * (query NULL when absent); clen is its Content-Length (0 when absent),
 * chunked whether it has Transfer-Encoding.  Answers at once (errors), or
 * starts reading the body (http_read_body()), or sends the broker request
 * and leaves c in CONN_HTTP_BODY waiting for the answer.
 */
void api_on_head(conn_t *c, const http_request_t *req, const char *path,
                 size_t plen, const char *query, size_t qlen, size_t clen,
                 bool chunked);

/*
 * The body of c's POST is complete: body[0..len) is borrowed for the call.
 * Validates it and sends the SAY, or answers the error.
 */
void api_on_body(conn_t *c, const char *body, size_t len);

/* c's timer fired while it waits for the broker: answers 503 and forgets
 * the request. */
void api_on_timeout(conn_t *c);

/* True while c waits for the broker's answer to an API request. */
bool api_waiting(const conn_t *c);

/* A broker reply whose conn id has API_ID_BIT set (ACK, HISTORY or ERROR):
 * answers the waiting connection, if it is still there. */
void api_on_reply(worker_t *w, const wire_msg_t *m);

/* c is closing: its API request, if any, is forgotten (called from
 * conn_close()).  Idempotent. */
void api_conn_gone(conn_t *c);

#endif
