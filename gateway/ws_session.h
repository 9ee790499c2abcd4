/*
 * ws_session.h - an upgraded connection: the WebSocket session on top of
 * common/ws_frame (reassembly, ping/pong, the closing handshake, idle
 * pings, size limits, the send-queue bound) in plain or parley.v1 JSON
 * mode.  Chat semantics live in chat.c; this module moves frames.
 */
#ifndef PARLEY_WS_SESSION_H
#define PARLEY_WS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "http_parser.h"
#include "pmd.h"
#include "ws_handshake.h"

struct ws_session;

/*
 * Called by http.c for a request that ws_handshake_check() accepted, on
 * path "/", "/ws" or "/ws/<room>" (room validated by http.c; "lobby" for
 * the first two).  Takes over c: picks the mode (parley.v1 offered: JSON,
 * otherwise plain), and either writes the 101 (at once, or once the room is
 * in sync for plain mode, state CONN_WS_PENDING until then) or answers an
 * HTTP error through http_send_error() (503 while the broker is
 * unreachable).
 */
void ws_session_upgrade(conn_t *c, const http_request_t *req,
                        const ws_handshake_t *hs, const char *room,
                        size_t room_len);

/* Input arrived while c is in a WebSocket state. */
void ws_session_on_read(conn_t *c);

/* The state timer fired (ping due, pong overdue, close handshake overdue). */
void ws_session_on_timer(conn_t *c);

/* c is going away (peer closed, error, or conn_close()): leave rooms, tell
 * the broker.  Called once, before c->ws is freed. */
void ws_session_on_close(conn_t *c);

/* Starts the closing handshake with code and reason (worker shutdown uses
 * 1012 or 1001). */
void ws_session_close(conn_t *c, uint16_t code, const char *reason);

/* Frees a session; NULL is a no-op. */
void ws_session_free(struct ws_session *s);

/* Frees the inflation state the worker's sessions share (the inflater of
 * clients without context takeover, the inflated-message buffer).  Called
 * once no session is left (chat_stop()). */
void ws_session_worker_free(void);

/* ---- for chat.c and rooms.c (gwchat extension) ------------------------- */

struct member;
struct frame;

/* True for a parley.v1 (JSON) session. */
bool ws_session_is_json(const conn_t *c);

/* What permessage-deflate agreed for c (borrowed until c is freed), or
 * NULL when c does not compress (not negotiated, or not a WebSocket). */
const pmd_params_t *ws_session_deflate(const conn_t *c);

/* The head of c's list of room memberships (rooms.c links members there). */
struct member **ws_session_members(conn_t *c);

/* Queues a shared frame f (borrowed; referenced when large) to c if c is
 * open.  Returns 0, or -1 when c is not open or out of memory. */
int ws_session_send_frame(conn_t *c, struct frame *f);

/* The same without counting messages_out/bytes_out (a fan-out counts them
 * once for all its members). */
int ws_session_queue_frame(conn_t *c, struct frame *f);

/* Frames and queues a text message p[0..len) to c.  0 or -1 as above. */
int ws_session_send_text(conn_t *c, const char *p, size_t len);

/* Closes c as a slow consumer (1013): drops most of its queued output,
 * leaves its rooms.  Idempotent; never call it inside a fan-out loop. */
void ws_session_slow_consumer(conn_t *c);

/* The room of a pending plain upgrade is in sync (ok: send the 101 now) or
 * could not be synced (answer 503). */
void ws_session_plain_ready(conn_t *c, bool ok);

#endif
