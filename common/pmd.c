/*
 * pmd.c - RFC 7692 permessage-deflate: negotiation, compression with a
 * fresh context per message, bounded decompression.  See pmd.h.
 */
#include "pmd.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

/* The empty stored block that ends every message (RFC 7692 7.2.1). */
static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* Bytes added to the output buffer at a time while inflating. */
#define INFLATE_CHUNK 16384

/* zlib's counters are uInt: feed larger inputs in pieces. */
#define ZLIB_MAX_FEED ((size_t)UINT_MAX)

/* --- negotiation ---------------------------------------------------------- */

enum { P_SNCT, P_CNCT, P_SMWB, P_CMWB, P_COUNT };

static const char *const param_names[P_COUNT] = {
    "server_no_context_takeover", "client_no_context_takeover",
    "server_max_window_bits", "client_max_window_bits"};

/* One offer, checked: which parameters were present, with which values. */
typedef struct {
    bool seen[P_COUNT];
    int server_bits; /* 0 when absent */
    int client_bits; /* 0 when absent or given without a value */
} offer_t;

static bool str_is(ws_str_t s, const char *want)
{
    size_t n = strlen(want);
    return s.len == n && strncasecmp(s.p, want, n) == 0;
}

/* "8".."15", no sign, no leading zero; -1 otherwise. */
static int window_value(ws_str_t v)
{
    if (v.len == 1 && v.p[0] >= '8' && v.p[0] <= '9')
        return v.p[0] - '0';
    if (v.len == 2 && v.p[0] == '1' && v.p[1] >= '0' && v.p[1] <= '5')
        return 10 + (v.p[1] - '0');
    return -1;
}

/* Records one parameter into o; false when it makes the offer invalid. */
static bool take_param(const ws_ext_param_t *prm, offer_t *o)
{
    int k = 0;
    while (k < P_COUNT && !str_is(prm->name, param_names[k]))
        k++;
    if (k == P_COUNT || o->seen[k])
        return false; /* unknown or duplicate */
    o->seen[k] = true;
    bool has_value = prm->value.p != NULL;
    if (k == P_SNCT || k == P_CNCT)
        return !has_value;
    if (!has_value)
        return k == P_CMWB; /* server_max_window_bits needs a value */
    int bits = window_value(prm->value);
    if (bits < 0)
        return false;
    if (k == P_SMWB)
        o->server_bits = bits;
    else
        o->client_bits = bits;
    return true;
}

/* Whether off is an acceptable permessage-deflate offer, filling o. */
static bool check_offer(const ws_ext_offer_t *off, offer_t *o)
{
    memset(o, 0, sizeof *o);
    if (!str_is(off->name, PMD_EXTENSION))
        return false;
    for (size_t i = 0; i < off->num_params; i++)
        if (!take_param(&off->params[i], o))
            return false;
    /* zlib would use 9 bits when asked for 8: we cannot keep that bound. */
    return !(o->seen[P_SMWB] && o->server_bits < PMD_MIN_WINDOW_BITS);
}

static int config_bits(int v)
{
    return v >= PMD_MIN_WINDOW_BITS && v <= PMD_MAX_WINDOW_BITS
               ? v
               : PMD_MAX_WINDOW_BITS;
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/* The agreed parameters for an accepted offer o under cfg. */
static void agree(const offer_t *o, const pmd_config_t *cfg, pmd_params_t *p)
{
    int server_cap = config_bits(cfg ? cfg->server_max_window_bits : 0);
    int client_cap = config_bits(cfg ? cfg->client_max_window_bits : 0);
    p->server_no_context_takeover = true;
    p->client_no_context_takeover =
        o->seen[P_CNCT] || (cfg != NULL && cfg->client_no_context_takeover);
    p->server_window_bits =
        o->seen[P_SMWB] ? min_int(o->server_bits, server_cap) : server_cap;
    p->client_window_bits = PMD_MAX_WINDOW_BITS;
    if (o->seen[P_CMWB])
        p->client_window_bits =
            o->client_bits ? min_int(o->client_bits, client_cap) : client_cap;
}

/* Writes the response value for p; false when cap is too small. */
static bool write_response(const offer_t *o, const pmd_params_t *p,
                           char *response, size_t cap)
{
    char sbits[40] = "", cbits[40] = "";
    if (o->seen[P_SMWB])
        snprintf(sbits, sizeof sbits, "; server_max_window_bits=%d",
                 p->server_window_bits);
    if (o->seen[P_CMWB])
        snprintf(cbits, sizeof cbits, "; client_max_window_bits=%d",
                 p->client_window_bits);
    int n = snprintf(
        response, cap, "%s; server_no_context_takeover%s%s%s", PMD_EXTENSION,
        p->client_no_context_takeover ? "; client_no_context_takeover" : "",
        sbits, cbits);
    return n > 0 && (size_t)n < cap;
}

int pmd_negotiate(const ws_handshake_t *hs, const pmd_config_t *cfg,
                  pmd_params_t *out, char *response, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (cap > 0)
        response[0] = '\0';
    for (size_t i = 0; i < hs->num_extensions; i++) {
        offer_t o;
        if (!check_offer(&hs->extensions[i], &o))
            continue;
        agree(&o, cfg, out);
        if (!write_response(&o, out, response, cap)) {
            memset(out, 0, sizeof *out);
            if (cap > 0)
                response[0] = '\0';
            return -1;
        }
        return 1;
    }
    return 0;
}

bool pmd_shareable(const pmd_params_t *p, int window_bits, size_t msg_len)
{
    return p->server_window_bits >= window_bits ||
           msg_len <= ((size_t)1 << p->server_window_bits);
}

int pmd_close_code(int err)
{
    switch (err) {
    case PMD_ERR_TOO_BIG:
        return WS_CLOSE_TOO_BIG;
    case PMD_ERR_DATA:
        return WS_CLOSE_INVALID_DATA;
    default:
        return WS_CLOSE_INTERNAL;
    }
}

/* --- compression ---------------------------------------------------------- */

static bool window_ok(int bits)
{
    return bits >= PMD_MIN_WINDOW_BITS && bits <= PMD_MAX_WINDOW_BITS;
}

int pmd_compressor_init(pmd_compressor_t *c, int window_bits, int level)
{
    memset(c, 0, sizeof *c);
    if (window_bits == 0)
        window_bits = PMD_MAX_WINDOW_BITS;
    if (!window_ok(window_bits) || level < -1 || level > 9)
        return PMD_ERR_DATA;
    z_stream *zs = calloc(1, sizeof *zs);
    if (zs == NULL)
        return PMD_ERR_NOMEM;
    /* Negative windowBits: raw deflate, no zlib header (RFC 7692 7.2.1);
     * memLevel 8 is zlib's default. */
    if (deflateInit2(zs, level, Z_DEFLATED, -window_bits, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(zs);
        return PMD_ERR_NOMEM;
    }
    c->zs = zs;
    c->window_bits = window_bits;
    return 0;
}

void pmd_compressor_free(pmd_compressor_t *c)
{
    if (c->zs != NULL) {
        deflateEnd(c->zs);
        free(c->zs);
    }
    free(c->buf);
    memset(c, 0, sizeof *c);
}

/* Makes c->buf hold at least need bytes. */
static int reserve(pmd_compressor_t *c, size_t need)
{
    if (need <= c->cap)
        return 0;
    size_t cap = c->cap ? c->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *nb = realloc(c->buf, cap);
    if (nb == NULL)
        return PMD_ERR_NOMEM;
    c->buf = nb;
    c->cap = cap;
    return 0;
}

/* Feeds in[0..len) with Z_SYNC_FLUSH; output after PMD_HEADROOM. */
static int deflate_all(pmd_compressor_t *c, const uint8_t *in, size_t len,
                       size_t *produced)
{
    z_stream *zs = c->zs;
    size_t done = 0, pos = PMD_HEADROOM;
    zs->avail_in = 0;
    for (;;) {
        if (zs->avail_in == 0 && done < len) {
            size_t n = len - done < ZLIB_MAX_FEED ? len - done : ZLIB_MAX_FEED;
            zs->next_in = (Bytef *)(in + done);
            zs->avail_in = (uInt)n;
            done += n;
        }
        if (reserve(c, pos + 64) != 0)
            return PMD_ERR_NOMEM;
        size_t room = c->cap - pos < UINT_MAX ? c->cap - pos : UINT_MAX;
        zs->next_out = c->buf + pos;
        zs->avail_out = (uInt)room;
        int flush = done == len ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        int rc = deflate(zs, flush);
        pos += room - zs->avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return PMD_ERR_NOMEM;
        /* Finished once the flush left output space unused. */
        if (flush == Z_SYNC_FLUSH && zs->avail_in == 0 && zs->avail_out > 0)
            break;
    }
    *produced = pos - PMD_HEADROOM;
    return 0;
}

int pmd_compress(pmd_compressor_t *c, const uint8_t *in, size_t len,
                 uint8_t **out, size_t *out_len)
{
    if (c->zs == NULL || deflateReset(c->zs) != Z_OK)
        return PMD_ERR_NOMEM;
    /* deflateBound plus the sync-flush marker usually fits in one go. */
    size_t guess = deflateBound(c->zs, len > ULONG_MAX ? ULONG_MAX : len);
    if (reserve(c, PMD_HEADROOM + guess + 16) != 0)
        return PMD_ERR_NOMEM;
    size_t n;
    int rc = deflate_all(c, in ? in : tail, in ? len : 0, &n);
    if (rc != 0)
        return rc;
    uint8_t *payload = c->buf + PMD_HEADROOM;
    if (n < sizeof tail || memcmp(payload + n - 4, tail, 4) != 0)
        return PMD_ERR_NOMEM; /* zlib broke its sync-flush contract */
    *out = c->buf;
    *out_len = n - sizeof tail;
    return 0;
}

int pmd_deflate_message(const uint8_t *in, size_t len, int window_bits,
                        uint8_t **out, size_t *out_len)
{
    pmd_compressor_t c;
    int rc = pmd_compressor_init(&c, window_bits, Z_DEFAULT_COMPRESSION);
    if (rc != 0)
        return rc;
    uint8_t *frame;
    rc = pmd_compress(&c, in, len, &frame, out_len);
    if (rc == 0) {
        *out = c.buf; /* the caller takes the scratch buffer */
        c.buf = NULL;
    }
    pmd_compressor_free(&c);
    return rc;
}

/* --- decompression -------------------------------------------------------- */

void pmd_buf_free(pmd_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void pmd_inflater_init(pmd_inflater_t *inf, int window_bits, bool takeover)
{
    if (window_bits == 0 || window_bits > PMD_MAX_WINDOW_BITS)
        window_bits = PMD_MAX_WINDOW_BITS;
    if (window_bits < PMD_MIN_WINDOW_BITS)
        window_bits = PMD_MIN_WINDOW_BITS;
    inf->zs = NULL;
    inf->window_bits = window_bits;
    inf->takeover = takeover;
}

void pmd_inflater_free(pmd_inflater_t *inf)
{
    if (inf->zs != NULL) {
        inflateEnd(inf->zs);
        free(inf->zs);
        inf->zs = NULL;
    }
}

/* Allocates the zlib state if needed; otherwise resets it when asked. */
static int inflater_ready(pmd_inflater_t *inf, bool reset)
{
    if (inf->zs != NULL)
        return !reset || inflateReset(inf->zs) == Z_OK ? 0 : PMD_ERR_NOMEM;
    z_stream *zs = calloc(1, sizeof *zs);
    if (zs == NULL)
        return PMD_ERR_NOMEM;
    if (inflateInit2(zs, -inf->window_bits) != Z_OK) {
        free(zs);
        return PMD_ERR_NOMEM;
    }
    inf->zs = zs;
    return 0;
}

/* Gives out room for more output, never past limit bytes in all. */
static int grow(pmd_buf_t *out, size_t limit)
{
    if (out->len >= limit)
        return PMD_ERR_TOO_BIG;
    if (out->cap > out->len)
        return 0;
    size_t cap = out->cap < INFLATE_CHUNK ? INFLATE_CHUNK : out->cap * 2;
    if (cap > limit || cap < out->cap)
        cap = limit;
    uint8_t *nb = realloc(out->data, cap);
    if (nb == NULL)
        return PMD_ERR_NOMEM;
    out->data = nb;
    out->cap = cap;
    return 0;
}

/*
 * After a final block (BFINAL): keep the window as a dictionary for the
 * next message if the context is taken over, start a new stream.
 */
static int restart_stream(pmd_inflater_t *inf)
{
    static uint8_t dict[1u << PMD_MAX_WINDOW_BITS];
    uInt n = 0;
    if (inf->takeover && inflateGetDictionary(inf->zs, dict, &n) != Z_OK)
        return PMD_ERR_NOMEM;
    if (inflateReset(inf->zs) != Z_OK)
        return PMD_ERR_NOMEM;
    if (n > 0 && inflateSetDictionary(inf->zs, dict, n) != Z_OK)
        return PMD_ERR_NOMEM;
    return 0;
}

/*
 * Inflates in[0..len) onto out (bounded by limit bytes of output).  *ended
 * is set when the sender's stream ended with a final block.  Z_BLOCK makes
 * zlib stop at block boundaries, so the caller can check that the message
 * ended on one.
 */
static int inflate_feed(z_stream *zs, const uint8_t *in, size_t len,
                        pmd_buf_t *out, size_t limit, bool *ended)
{
    size_t done = 0;
    zs->avail_in = 0;
    for (;;) {
        if (zs->avail_in == 0 && done < len) {
            size_t n = len - done < ZLIB_MAX_FEED ? len - done : ZLIB_MAX_FEED;
            zs->next_in = (Bytef *)(in + done);
            zs->avail_in = (uInt)n;
            done += n;
        }
        int rc = grow(out, limit);
        if (rc != 0)
            return rc;
        size_t room = out->cap - out->len;
        if (room > limit - out->len)
            room = limit - out->len;
        if (room > UINT_MAX)
            room = UINT_MAX;
        zs->next_out = out->data + out->len;
        zs->avail_out = (uInt)room;
        rc = inflate(zs, Z_BLOCK);
        out->len += room - zs->avail_out;
        /* With Z_BLOCK zlib stops right after the final block (bit 128:
         * at a block boundary, bit 64: the last block was seen) and would
         * only report Z_STREAM_END on the next call. */
        if (rc == Z_STREAM_END ||
            (rc == Z_OK && (zs->data_type & 192) == 192)) {
            *ended = true;
            return zs->avail_in == 0 && done == len ? 0 : PMD_ERR_DATA;
        }
        if (rc == Z_MEM_ERROR)
            return PMD_ERR_NOMEM;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return PMD_ERR_DATA;
        if (zs->avail_in == 0 && done == len && zs->avail_out > 0)
            return 0; /* all input used, all output delivered */
    }
}

/* The message, then the 00 00 ff ff tail, which must end on a block. */
static int inflate_message(pmd_inflater_t *inf, const uint8_t *in, size_t len,
                           size_t max_out, pmd_buf_t *out)
{
    z_stream *zs = inf->zs;
    size_t limit = max_out < SIZE_MAX ? max_out + 1 : SIZE_MAX;
    bool ended = false;
    out->len = 0;
    int rc = inflate_feed(zs, in, len, out, limit, &ended);
    if (rc == 0 && !ended) {
        rc = inflate_feed(zs, tail, sizeof tail, out, limit, &ended);
        if (rc == 0 && !ended && !(zs->data_type & 128))
            rc = PMD_ERR_DATA; /* the message stopped inside a block */
    }
    if (rc == 0 && ended)
        rc = restart_stream(inf);
    if (rc == 0 && out->len > max_out)
        rc = PMD_ERR_TOO_BIG;
    return rc;
}

int pmd_inflate(pmd_inflater_t *inf, const uint8_t *in, size_t len,
                size_t max_out, pmd_buf_t *out)
{
    int rc = inflater_ready(inf, false);
    if (rc == 0)
        rc = inflate_message(inf, in, len, max_out, out);
    if (rc != 0 || !inf->takeover)
        pmd_inflater_free(inf);
    return rc;
}

int pmd_inflate_oneshot(pmd_inflater_t *shared, const uint8_t *in, size_t len,
                        size_t max_out, pmd_buf_t *out)
{
    if (shared->takeover)
        return PMD_ERR_NOMEM; /* misuse: a shared stream has no context */
    int rc = inflater_ready(shared, true);
    if (rc == 0)
        rc = inflate_message(shared, in, len, max_out, out);
    if (rc != 0)
        pmd_inflater_free(shared);
    return rc;
}
