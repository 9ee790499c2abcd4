/*
 * tls.h - TLS on the gateway's tls_listen sockets.
 *
 * The master builds the server context (SSL_CTX) before it forks the
 * workers, and rebuilds it on SIGHUP: the key is read once, with the
 * privileges the gateway started with, every startup error is reported by
 * the master (exit status 1) instead of by each worker, and all workers of
 * one generation share the session-ticket keys generated with the context,
 * so a client resumes its session on any of them.  Workers forked after a
 * reload get the new context; older workers, and their connections, keep
 * theirs until they exit.
 */
#ifndef PARLEY_TLS_H
#define PARLEY_TLS_H

#include <stddef.h>

#include "config.h"

struct ssl_ctx_st;
struct ssl_st;
struct bufferevent;

/*
 * Builds the server context from cfg->tls_cert (PEM chain, the server's
 * certificate first) and cfg->tls_key (PEM key): TLS 1.2 minimum, ECDHE
 * with AES-GCM or ChaCha20 for TLS 1.2 (OpenSSL's TLS 1.3 suites), ALPN
 * "http/1.1", a server-side session cache and session tickets, no
 * renegotiation.  Refuses an unreadable file, a key file with any group or
 * other permission bit (unless cfg->tls_key_insecure_ok), a key that does
 * not match the certificate, and a certificate expired or not yet valid.
 * Returns an owned context, or NULL with a message in err.
 */
struct ssl_ctx_st *tls_ctx_new(const config_t *cfg, char *err, size_t errlen);

/* Frees a context (the SSL objects made from it hold references); NULL
 * is a no-op. */
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* A new server SSL object for one accepted connection, or NULL. */
struct ssl_st *tls_ssl_new(struct ssl_ctx_st *ctx);

/* The OpenSSL reason of bev's last TLS error ("http request", "wrong
 * version number", ...) into out, or "connection closed" when there is
 * none (the peer closed during the handshake).  Drains bev's errors. */
void tls_error_reason(struct bufferevent *bev, char *out, size_t cap);

/* The protocol version of bev's connection ("TLSv1.3"; "-" when bev is
 * not a TLS bufferevent), for the debug log. */
const char *tls_version(struct bufferevent *bev);

#endif
