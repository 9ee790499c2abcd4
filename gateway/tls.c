/*
 * tls.c - the gateway's OpenSSL server context and startup checks.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "log.h"

#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
#define TLS_SESSION_CACHE 20480 /* sessions per worker */
#define TLS_EXPIRY_WARN_DAYS 14

static const unsigned char alpn_ours[] = "\x08http/1.1";

/* The reason of the most recent OpenSSL error (the queue is cleared). */
static void last_ssl_error(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r != NULL)
        snprintf(out, cap, "%s", r);
    else if (e != 0)
        ERR_error_string_n(e, out, cap);
    else
        snprintf(out, cap, "unknown error");
    ERR_clear_error();
}

/* A file given by key name must exist and be readable by us now. */
static int check_readable(const char *key, const char *path, char *err,
                          size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", key, path,
                 strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

static int check_key_mode(const config_t *cfg, char *err, size_t errlen)
{
    struct stat st;
    if (stat(cfg->tls_key, &st) != 0) {
        snprintf(err, errlen, "tls_key: cannot read '%s': %s", cfg->tls_key,
                 strerror(errno));
        return -1;
    }
    if ((st.st_mode & 077) == 0)
        return 0;
    if (cfg->tls_key_insecure_ok) {
        log_warn("tls_key_insecure", "path=\"%s\" mode=%04o", cfg->tls_key,
                 (unsigned)(st.st_mode & 07777));
        return 0;
    }
    snprintf(err, errlen,
             "tls_key: insecure permissions %04o on '%s' (the private key "
             "is accessible by group or others): chmod 600 it, or set "
             "tls_key_insecure_ok = yes",
             (unsigned)(st.st_mode & 07777), cfg->tls_key);
    return -1;
}

/* "2024-01-31 12:00:00 UTC" */
static void format_time(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1 ||
        strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, cap, "(unreadable date)");
}

/* The certificate must be valid now; warns when it expires soon. */
static int check_validity(SSL_CTX *ctx, const char *path, char *err,
                          size_t errlen)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    char date[64];
    int days = 0, secs = 0;
    if (cert == NULL) {
        snprintf(err, errlen, "tls_cert: no certificate in '%s'", path);
        return -1;
    }
    const ASN1_TIME *na = X509_get0_notAfter(cert);
    const ASN1_TIME *nb = X509_get0_notBefore(cert);
    if (X509_cmp_current_time(na) <= 0) {
        format_time(na, date, sizeof date);
        snprintf(err, errlen, "tls_cert: certificate expired on %s ('%s')",
                 date, path);
        return -1;
    }
    if (X509_cmp_current_time(nb) >= 0) {
        format_time(nb, date, sizeof date);
        snprintf(err, errlen,
                 "tls_cert: certificate not valid before %s ('%s'): check "
                 "the clock",
                 date, path);
        return -1;
    }
    format_time(na, date, sizeof date);
    if (ASN1_TIME_diff(&days, &secs, NULL, na) == 1 &&
        days < TLS_EXPIRY_WARN_DAYS)
        log_warn("tls_cert_expires_soon",
                 "path=\"%s\" not_after=\"%s\" "
                 "days=%d",
                 path, date, days);
    log_info("tls_cert_loaded", "path=\"%s\" not_after=\"%s\"", path, date);
    return 0;
}

/* Picks http/1.1 when the client offers it; otherwise no ALPN at all
 * (the handshake goes on, and HTTP/1.1 is what the client will get). */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, &sellen, alpn_ours, sizeof alpn_ours - 1,
                              in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    *outlen = sellen;
    return SSL_TLSEXT_ERR_OK;
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* Protocol settings that do not depend on the files.  0 or -1. */
static int configure(SSL_CTX *ctx)
{
    static const unsigned char sid_ctx[] = "parley";
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1) != 1)
        return -1;
    return 0;
}

static int key_mismatch(const config_t *cfg, const char *why, char *err,
                        size_t errlen)
{
    snprintf(err, errlen,
             "tls_key: the private key in '%s' does not match the "
             "certificate in '%s' (%s)",
             cfg->tls_key, cfg->tls_cert, why);
    return -1;
}

/* Loads the chain and the key into ctx and checks they belong together
 * (OpenSSL already compares them when the key is loaded after the
 * certificate; SSL_CTX_check_private_key() makes sure). */
static int load_files(SSL_CTX *ctx, const config_t *cfg, char *err,
                      size_t errlen)
{
    char why[256];
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        last_ssl_error(why, sizeof why);
        snprintf(err, errlen,
                 "tls_cert: cannot load a PEM certificate chain from '%s': %s",
                 cfg->tls_cert, why);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        bool mismatch =
            ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        last_ssl_error(why, sizeof why);
        if (mismatch)
            return key_mismatch(cfg, why, err, errlen);
        snprintf(err, errlen,
                 "tls_key: cannot load a PEM private key from '%s': %s "
                 "(encrypted keys are not supported)",
                 cfg->tls_key, why);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        last_ssl_error(why, sizeof why);
        return key_mismatch(cfg, why, err, errlen);
    }
    return 0;
}

struct ssl_ctx_st *tls_ctx_new(const config_t *cfg, char *err, size_t errlen)
{
    if (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0') {
        snprintf(err, errlen,
                 "tls_listen is set: tls_cert and tls_key are "
                 "required");
        return NULL;
    }
    if (check_readable("tls_cert", cfg->tls_cert, err, errlen) != 0 ||
        check_readable("tls_key", cfg->tls_key, err, errlen) != 0 ||
        check_key_mode(cfg, err, errlen) != 0)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || configure(ctx) != 0) {
        char why[256];
        last_ssl_error(why, sizeof why);
        snprintf(err, errlen, "TLS setup failed: %s", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (load_files(ctx, cfg, err, errlen) != 0 ||
        check_validity(ctx, cfg->tls_cert, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

struct ssl_st *tls_ssl_new(struct ssl_ctx_st *ctx)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        ERR_clear_error();
    return ssl;
}

void tls_error_reason(struct bufferevent *bev, char *out, size_t cap)
{
    /* libevent stashes SSL_get_error()'s code (a small number) and then the
     * OpenSSL error queue; the queue's entries carry the reason. */
    unsigned long e, best = 0, code = 0;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_LIB(e) != 0 || ERR_GET_REASON(e) > 255)
            best = best ? best : e;
        else
            code = e;
    }
    const char *r = best ? ERR_reason_error_string(best) : NULL;
    if (r != NULL)
        snprintf(out, cap, "%s", r);
    else if (best != 0)
        ERR_error_string_n(best, out, cap);
    else if (code == SSL_ERROR_SYSCALL)
        snprintf(out, cap, "connection reset or closed");
    else if (code != 0)
        snprintf(out, cap, "TLS error %lu", code);
    else
        snprintf(out, cap, "connection closed");
}

const char *tls_version(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    return ssl != NULL ? SSL_get_version(ssl) : "-";
}
