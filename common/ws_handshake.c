/*
 * ws_handshake.c - server side of the RFC 6455 opening handshake (see
 * ws_handshake.h).  Checks run in a fixed order so one request always gets
 * the same status: method, version, Host, Upgrade, Connection,
 * Sec-WebSocket-Version, Sec-WebSocket-Key, protocols, extensions.
 */
#include "ws_handshake.h"

#include <openssl/evp.h>
#include <string.h>

#define WS_KEY_B64_LEN 24 /* base64 of the 16-byte nonce */

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

/* ASCII-only, whatever the locale. */
static bool name_is(const http_header_t *h, const char *name, size_t n)
{
    if (h->name_len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = h->name[i], b = name[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

static int reject(ws_handshake_t *hs, int status, const char *why)
{
    hs->status = status;
    hs->error = why;
    return status;
}

/* True when any header named name lists token (case-insensitively). */
static bool any_header_has(const http_request_t *req, const char *name,
                           const char *token)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (name_is(h, name, n) &&
            http_has_token(h->value, h->value_len, token))
            return true;
    }
    return false;
}

bool ws_is_upgrade(const http_request_t *req)
{
    return any_header_has(req, "Upgrade", "websocket");
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    return c == '/' ? 63 : -1;
}

/*
 * True when key is the canonical base64 of exactly 16 bytes: 22 alphabet
 * characters, "==", and the 4 bits the last character carries beyond the
 * 16th byte all zero.
 */
static bool key_valid(const char *key, size_t len)
{
    if (len != WS_KEY_B64_LEN || key[22] != '=' || key[23] != '=')
        return false;
    int v = 0;
    for (size_t i = 0; i < 22; i++)
        if ((v = b64_value(key[i])) < 0)
            return false;
    return (v & 0x0f) == 0;
}

/* SHA-1 fetched once per process (EVP_sha1() fetches it again on every
 * init, which costs more than hashing 60 bytes) and one context reused
 * for every key; NULL when OpenSSL cannot provide them. */
static EVP_MD_CTX *sha1_ctx(const EVP_MD **md)
{
    static EVP_MD *sha1;
    static EVP_MD_CTX *ctx;
    if (sha1 == NULL)
        sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    if (ctx == NULL)
        ctx = EVP_MD_CTX_new();
    *md = sha1;
    return sha1 != NULL ? ctx : NULL;
}

int ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    const EVP_MD *md;
    EVP_MD_CTX *ctx = sha1_ctx(&md);
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, len) == 1 &&
             EVP_DigestUpdate(ctx, WS_GUID, strlen(WS_GUID)) == 1 &&
             EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 && dlen == 20;
    if (!ok)
        return -1;
    if (EVP_EncodeBlock((unsigned char *)out, digest, 20) != WS_ACCEPT_LEN)
        return -1;
    out[WS_ACCEPT_LEN] = '\0';
    return 0;
}

bool ws_offers_protocol(const ws_handshake_t *hs, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < hs->num_protocols; i++)
        if (hs->protocols[i].len == n &&
            memcmp(hs->protocols[i].p, name, n) == 0)
            return true;
    return false;
}

/* A cursor over one header value. */
typedef struct {
    const char *p;
    const char *end;
} cursor_t;

static void skip_ows(cursor_t *c)
{
    while (c->p < c->end && is_ows(*c->p))
        c->p++;
}

static bool at(const cursor_t *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

/* Takes a non-empty token; false when there is none. */
static bool take_token(cursor_t *c, ws_str_t *out)
{
    const char *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    *out = (ws_str_t){start, (size_t)(c->p - start)};
    return out->len > 0;
}

/*
 * Sec-WebSocket-Protocol: 1#token.  Empty elements and non-tokens fail;
 * offers past WS_MAX_PROTOCOLS are validated and dropped.
 */
static int parse_protocols(const char *value, size_t len, ws_handshake_t *hs)
{
    cursor_t c = {value, value + len};
    for (;;) {
        ws_str_t tok;
        skip_ows(&c);
        if (!take_token(&c, &tok))
            return -1;
        if (hs->num_protocols < WS_MAX_PROTOCOLS)
            hs->protocols[hs->num_protocols++] = tok;
        skip_ows(&c);
        if (c.p == c.end)
            return 0;
        if (!at(&c, ','))
            return -1;
        c.p++;
    }
}

/* token, or a quoted-string whose content is a token (no escapes). */
static bool take_param_value(cursor_t *c, ws_str_t *out)
{
    if (!at(c, '"'))
        return take_token(c, out);
    c->p++;
    if (!take_token(c, out) || !at(c, '"'))
        return false;
    c->p++;
    return true;
}

/* param = token [ "=" (token | quoted-string) ], with OWS around "=". */
static bool take_param(cursor_t *c, ws_ext_param_t *param)
{
    if (!take_token(c, &param->name))
        return false;
    param->value = (ws_str_t){NULL, 0};
    skip_ows(c);
    if (!at(c, '='))
        return true;
    c->p++;
    skip_ows(c);
    return take_param_value(c, &param->value);
}

/* One offer: name *( ";" param ); off is NULL when past the limit. */
static bool take_offer(cursor_t *c, ws_ext_offer_t *off)
{
    ws_ext_offer_t scratch;
    if (off == NULL)
        off = &scratch;
    off->num_params = 0;
    if (!take_token(c, &off->name))
        return false;
    skip_ows(c);
    while (at(c, ';')) {
        ws_ext_param_t param;
        c->p++;
        skip_ows(c);
        if (!take_param(c, &param))
            return false;
        if (off->num_params < WS_MAX_EXT_PARAMS)
            off->params[off->num_params++] = param;
        skip_ows(c);
    }
    return true;
}

int ws_parse_extensions(const char *value, size_t len, ws_handshake_t *hs)
{
    cursor_t c = {value, value + len};
    for (;;) {
        skip_ows(&c);
        ws_ext_offer_t *off = hs->num_extensions < WS_MAX_EXTENSIONS
                                  ? &hs->extensions[hs->num_extensions]
                                  : NULL;
        if (!take_offer(&c, off))
            return -1;
        if (off != NULL)
            hs->num_extensions++;
        if (c.p == c.end)
            return 0;
        if (!at(&c, ','))
            return -1;
        c.p++;
    }
}

/* Runs parse on the value of every header named name, in order. */
static int parse_each(const http_request_t *req, const char *name,
                      int (*parse)(const char *, size_t, ws_handshake_t *),
                      ws_handshake_t *hs)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (name_is(h, name, n) && parse(h->value, h->value_len, hs) != 0)
            return -1;
    }
    return 0;
}

/* Method, version and the headers every upgrade needs. */
static int check_basics(const http_request_t *req, ws_handshake_t *hs)
{
    if (!http_method_is(req, "GET"))
        return reject(hs, 405, "WebSocket upgrade needs GET");
    if (req->minor_version < 1)
        return reject(hs, 505, "WebSocket upgrade needs HTTP/1.1");
    if (http_count_header(req, "Host") != 1)
        return reject(hs, 400, "exactly one Host header required");
    if (!any_header_has(req, "Upgrade", "websocket"))
        return reject(hs, 400, "Upgrade header lacks websocket");
    if (!any_header_has(req, "Connection", "upgrade"))
        return reject(hs, 400, "Connection header lacks upgrade");
    const http_header_t *v = http_find_header(req, "Sec-WebSocket-Version");
    if (v == NULL || http_count_header(req, "Sec-WebSocket-Version") != 1 ||
        v->value_len != 2 || memcmp(v->value, "13", 2) != 0)
        return reject(hs, 426, "Sec-WebSocket-Version 13 required");
    return 0;
}

/* The key, the accept value, the offers and Origin. */
static int check_offers(const http_request_t *req, ws_handshake_t *hs)
{
    const http_header_t *k = http_find_header(req, "Sec-WebSocket-Key");
    if (k == NULL || http_count_header(req, "Sec-WebSocket-Key") != 1 ||
        !key_valid(k->value, k->value_len))
        return reject(hs, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
    if (parse_each(req, "Sec-WebSocket-Protocol", parse_protocols, hs) != 0)
        return reject(hs, 400, "malformed Sec-WebSocket-Protocol");
    if (parse_each(req, "Sec-WebSocket-Extensions", ws_parse_extensions, hs) !=
        0)
        return reject(hs, 400, "malformed Sec-WebSocket-Extensions");
    const http_header_t *o = http_find_header(req, "Origin");
    if (o != NULL)
        hs->origin = (ws_str_t){o->value, o->value_len};
    if (ws_accept_key(k->value, k->value_len, hs->accept) != 0)
        return reject(hs, 500, "SHA-1 unavailable");
    return 0;
}

int ws_handshake_check(const http_request_t *req, ws_handshake_t *hs)
{
    hs->status = 0;
    hs->error = NULL;
    hs->accept[0] = '\0';
    hs->num_protocols = 0;
    hs->num_extensions = 0;
    hs->origin = (ws_str_t){NULL, 0};
    int rc = check_basics(req, hs);
    if (rc == 0)
        rc = check_offers(req, hs);
    return rc;
}
