/*
 * ws_handshake.h - the server side of the RFC 6455 opening handshake, no I/O.
 *
 * Validates a parsed upgrade request (method, version, Host, Upgrade,
 * Connection, Sec-WebSocket-Version, Sec-WebSocket-Key), computes
 * Sec-WebSocket-Accept with OpenSSL (SHA-1 + base64), and parses the
 * Sec-WebSocket-Protocol and Sec-WebSocket-Extensions offers so the caller
 * can select a subprotocol and negotiate extensions.
 */
#ifndef PARLEY_WS_HANDSHAKE_H
#define PARLEY_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "http_parser.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_ACCEPT_LEN 28    /* base64 of a 20-byte SHA-1 */
#define WS_MAX_PROTOCOLS 16 /* subprotocol offers kept */
#define WS_MAX_EXTENSIONS 8 /* extension offers kept */
#define WS_MAX_EXT_PARAMS 8 /* parameters kept per extension offer */

typedef struct {
    const char *p; /* borrowed from the request buffer */
    size_t len;
} ws_str_t;

typedef struct {
    ws_str_t name;
    ws_str_t value; /* value.p == NULL when the parameter has no value */
} ws_ext_param_t;

typedef struct {
    ws_str_t name; /* e.g. "permessage-deflate" */
    ws_ext_param_t params[WS_MAX_EXT_PARAMS];
    size_t num_params;
} ws_ext_offer_t;

typedef struct {
    int status;        /* 0 when valid; else 400, 405, 426 or 505 */
    const char *error; /* short static reason when status != 0 */
    char accept[WS_ACCEPT_LEN + 1];       /* Sec-WebSocket-Accept, NUL-ended */
    ws_str_t protocols[WS_MAX_PROTOCOLS]; /* Sec-WebSocket-Protocol offers */
    size_t num_protocols;
    ws_ext_offer_t extensions[WS_MAX_EXTENSIONS];
    size_t num_extensions;
    ws_str_t origin; /* Origin header, p == NULL when absent */
} ws_handshake_t;

/*
 * True when req asks for a WebSocket upgrade at all (an Upgrade header
 * listing "websocket"); such a request is then checked with
 * ws_handshake_check(), and everything else is plain HTTP.
 */
bool ws_is_upgrade(const http_request_t *req);

/*
 * Validates the upgrade request req and fills hs.  Returns 0 when the
 * handshake may proceed; otherwise the HTTP status to answer (also in
 * hs->status): 405 for a method other than GET, 505 for HTTP/1.0, 426 for a
 * missing or unsupported Sec-WebSocket-Version (answer with
 * "Sec-WebSocket-Version: 13"), 400 for anything else malformed (missing or
 * duplicated Host, Upgrade without websocket, Connection without upgrade,
 * a key that is not base64 of exactly 16 bytes, malformed protocol or
 * extension lists).  hs's strings borrow from the request buffer.
 */
int ws_handshake_check(const http_request_t *req, ws_handshake_t *hs);

/*
 * Computes Sec-WebSocket-Accept for key[0..len) into out (NUL-terminated).
 * Returns 0, or -1 if OpenSSL fails.  Not thread-safe: the SHA-1 method
 * and context are fetched once per process and reused.
 */
int ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN + 1]);

/* True when the client offered subprotocol name (case-sensitive). */
bool ws_offers_protocol(const ws_handshake_t *hs, const char *name);

/*
 * Parses a Sec-WebSocket-Extensions value (RFC 6455 section 9.1 grammar:
 * extension *( ";" param [ "=" (token | quoted-string) ] ), comma-
 * separated) and appends the offers to hs.  Returns 0, or -1 when
 * malformed.  Quoted values are returned without the quotes (no escapes
 * allowed inside, as RFC 7692 values are tokens).
 */
int ws_parse_extensions(const char *value, size_t len, ws_handshake_t *hs);

#endif
