/*
 * ws_client.c - non-blocking WebSocket client connection (see ws_client.h).
 */
#include "ws_client.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "ws_handshake.h"

#define HEAD_MAX 4096     /* longest handshake answer accepted */
#define READS_PER_EVENT 8 /* bound on reads per readable event */
#define INFLATE_CHUNK 16384

static const uint8_t pmd_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* Per-thread scratch space for inflated messages (grows, never shrinks). */
static __thread uint8_t *inflate_buf;
static __thread size_t inflate_cap;

static uint32_t next_rand(wsc_t *c)
{
    uint32_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return c->rng = x;
}

/* Standard base64 of in[0..len) into out (NUL-ended, 4*ceil(len/3)+1). */
static void base64(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Makes room for need more bytes in the output queue. */
static int out_reserve(wsc_t *c, size_t need)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + need <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + need <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 256;
    while (cap < c->out_len + need)
        cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (p == NULL)
        return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

/* Writes queued output until done or EAGAIN.  0 or -1. */
static int flush_out(wsc_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Queues the upgrade request and remembers the accept value to expect. */
static int queue_request(wsc_t *c, const char *path)
{
    uint8_t raw[16];
    char key[25];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = next_rand(c);
        memcpy(raw + i, &r, 4);
    }
    base64(raw, sizeof(raw), key);
    if (ws_accept_key(key, strlen(key), c->accept) != 0)
        return -1;
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s%s\r\n",
                     path, c->opts->host, key,
                     c->opts->protocol ? "Sec-WebSocket-Protocol: " : "",
                     c->opts->protocol ? c->opts->protocol : "",
                     c->opts->protocol ? "\r\n" : "",
                     c->opts->deflate
                         ? "Sec-WebSocket-Extensions: permessage-deflate; "
                           "client_no_context_takeover\r\n"
                         : "");
    if (n < 0 || (size_t)n >= sizeof(req) || out_reserve(c, (size_t)n) != 0)
        return -1;
    memcpy(c->out + c->out_len, req, (size_t)n);
    c->out_len += (size_t)n;
    return 0;
}

static int open_socket(const struct sockaddr_in *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (src != NULL) {
        /* Port chosen at connect(), per destination: no early exhaustion. */
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                         sizeof(one));
        if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    return fd;
}

int wsc_start(wsc_t *c, const struct sockaddr_in *dst,
              const struct sockaddr_in *src, const char *path,
              const wsc_opts_t *opts)
{
    void *user = c->user;
    uint32_t seed = c->rng ? c->rng : 0x9e3779b9u;
    memset(c, 0, sizeof(*c));
    c->user = user;
    c->rng = seed;
    c->opts = opts;
    c->state = WSC_CLOSED;
    c->fd = open_socket(src);
    if (c->fd < 0)
        return -1;
    if (queue_request(c, path) != 0 ||
        (connect(c->fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0 &&
         errno != EINPROGRESS)) {
        int e = errno;
        close(c->fd);
        free(c->out);
        c->out = NULL;
        c->fd = -1;
        errno = e;
        return -1;
    }
    c->state = WSC_CONNECTING;
    return 0;
}

bool wsc_wants_write(const wsc_t *c)
{
    return c->state == WSC_CONNECTING || c->out_off < c->out_len;
}

int wsc_on_writable(wsc_t *c)
{
    if (c->state == WSC_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
            err != 0) {
            errno = err ? err : errno;
            return -1;
        }
        c->state = WSC_HANDSHAKE;
    }
    return flush_out(c);
}

/* The value of header name in head (a NUL-ended answer), or NULL; *vlen
   gets its length without surrounding blanks. */
static const char *find_header(const char *head, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l != NULL;
         l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, nlen) != 0 || l[nlen] != ':')
            continue;
        const char *v = l + nlen + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        const char *e = strstr(v, "\r\n");
        if (e == NULL)
            return NULL;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *vlen = (size_t)(e - v);
        return v;
    }
    return NULL;
}

/* Checks a complete answer head; sets up the parser.  0 or -1. */
static int check_answer(wsc_t *c)
{
    size_t n = 0;
    if (strncmp(c->head, "HTTP/1.1 101", 12) != 0)
        return -1;
    const char *v = find_header(c->head, "Sec-WebSocket-Accept", &n);
    if (v == NULL || n != WS_ACCEPT_LEN || memcmp(v, c->accept, n) != 0)
        return -1;
    if (c->opts->protocol != NULL) {
        v = find_header(c->head, "Sec-WebSocket-Protocol", &n);
        if (v == NULL || n != strlen(c->opts->protocol) ||
            memcmp(v, c->opts->protocol, n) != 0)
            return -1;
    }
    v = find_header(c->head, "Sec-WebSocket-Extensions", &n);
    c->deflate = c->opts->deflate && v != NULL &&
                 memmem(v, n, "permessage-deflate", 18) != NULL;
    ws_parser_config_t cfg = {.max_message = c->opts->max_message,
                              .reject_mask = true,
                              .allowed_rsv = c->deflate ? WS_RSV1 : 0};
    ws_parser_init(&c->parser, &cfg);
    c->state = WSC_OPEN;
    return 0;
}

/* Inflates one compressed message into the thread's buffer.  Returns the
   inflated length, or -1. */
static ssize_t inflate_msg(wsc_t *c, const uint8_t *in, size_t len)
{
    z_stream *z = c->inflater;
    if (z == NULL) {
        z = calloc(1, sizeof(*z));
        if (z == NULL || inflateInit2(z, -15) != Z_OK) {
            free(z);
            return -1;
        }
        c->inflater = z;
    }
    size_t used = 0;
    for (int part = 0; part < 2; part++) {
        z->next_in = (Bytef *)(part == 0 ? in : pmd_tail);
        z->avail_in = (uInt)(part == 0 ? len : sizeof(pmd_tail));
        while (z->avail_in > 0) {
            if (inflate_cap - used < INFLATE_CHUNK) {
                size_t cap = inflate_cap ? inflate_cap * 2 : 4 * INFLATE_CHUNK;
                uint8_t *p = realloc(inflate_buf, cap);
                if (p == NULL || cap > 2 * c->opts->max_message + 65536)
                    return -1;
                inflate_buf = p;
                inflate_cap = cap;
            }
            z->next_out = inflate_buf + used;
            z->avail_out = (uInt)(inflate_cap - used);
            int rc = inflate(z, Z_SYNC_FLUSH);
            used = inflate_cap - z->avail_out;
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return -1;
        }
    }
    return (ssize_t)used;
}

/* One complete message or control frame.  0, 1 (closed) or -1. */
static int on_message(wsc_t *c, const ws_message_t *m, wsc_msg_fn fn, void *arg)
{
    switch (m->opcode) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (m->compressed) {
            ssize_t n = inflate_msg(c, m->data, m->len);
            if (n < 0)
                return -1;
            fn(c, inflate_buf, (size_t)n, arg);
        } else {
            fn(c, m->data, m->len, arg);
        }
        return 0;
    case WS_OP_PING:
        return wsc_send(c, WS_OP_PONG, m->data, m->len) == 0 ? 0 : -1;
    case WS_OP_CLOSE:
        c->close_code = m->close_code;
        if (c->state == WSC_CLOSING)
            return 0; /* the server closes the TCP connection next */
        (void)wsc_close(c);
        return 1;
    default:
        return 0;
    }
}

/* Feeds frame bytes to the parser.  0, 1 or -1. */
static int feed_frames(wsc_t *c, const uint8_t *p, size_t len, wsc_msg_fn fn,
                       void *arg)
{
    while (len > 0) {
        ws_message_t m;
        ssize_t k = ws_parser_feed(&c->parser, p, len, &m);
        if (k < 0)
            return -1;
        p += k;
        len -= (size_t)k;
        if (m.opcode == WS_OP_CONT) {
            if (k == 0)
                return -1; /* cannot progress: never expected */
            continue;
        }
        int rc = on_message(c, &m, fn, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Accumulates the handshake answer; on its end, checks it and feeds what
   follows to the frame parser.  0 (more needed or open), 1 or -1. */
static int feed_head(wsc_t *c, const uint8_t *p, size_t len, wsc_msg_fn fn,
                     void *arg)
{
    if (c->head == NULL && (c->head = malloc(HEAD_MAX + 1)) == NULL)
        return -1;
    size_t take = len < HEAD_MAX - c->head_len ? len : HEAD_MAX - c->head_len;
    memcpy(c->head + c->head_len, p, take);
    size_t old = c->head_len;
    c->head_len += take;
    c->head[c->head_len] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    if (end == NULL)
        return c->head_len >= HEAD_MAX ? -1 : 0;
    size_t head_end = (size_t)(end - c->head) + 4;
    end[2] = '\0'; /* headers end with one CRLF for find_header() */
    int rc = check_answer(c);
    free(c->head);
    c->head = NULL;
    if (rc != 0)
        return -1;
    size_t used = head_end - old; /* of this chunk */
    return feed_frames(c, p + used, len - used, fn, arg);
}

int wsc_on_readable(wsc_t *c, uint8_t *scratch, size_t cap, wsc_msg_fn fn,
                    void *arg)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = recv(c->fd, scratch, cap, 0);
        if (n == 0)
            return 1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        int rc = c->state == WSC_HANDSHAKE || c->state == WSC_CONNECTING
                     ? feed_head(c, scratch, (size_t)n, fn, arg)
                     : feed_frames(c, scratch, (size_t)n, fn, arg);
        if (rc != 0)
            return rc;
        if ((size_t)n < cap)
            return 0;
    }
    return 0;
}

int wsc_send(wsc_t *c, ws_opcode_t op, const void *data, size_t len)
{
    if (c->state != WSC_OPEN)
        return -1;
    if (out_reserve(c, len + WS_MAX_HEADER) != 0)
        return -1;
    uint32_t r = next_rand(c);
    uint8_t mask[4];
    memcpy(mask, &r, 4);
    bool idle = c->out_off == c->out_len;
    c->out_len += ws_frame_write(c->out + c->out_len, c->out_cap - c->out_len,
                                 op, true, 0, data, len, mask);
    return idle ? flush_out(c) : 0;
}

int wsc_close(wsc_t *c)
{
    uint8_t payload[WS_MAX_CONTROL];
    size_t n = ws_close_payload(payload, WS_CLOSE_NORMAL, "");
    int rc = wsc_send(c, WS_OP_CLOSE, payload, n);
    c->state = WSC_CLOSING;
    return rc;
}

void wsc_free(wsc_t *c)
{
    if (c->fd >= 0 && c->state != WSC_CLOSED)
        close(c->fd);
    if (c->state == WSC_OPEN || c->state == WSC_CLOSING)
        ws_parser_free(&c->parser);
    if (c->inflater != NULL) {
        inflateEnd(c->inflater);
        free(c->inflater);
    }
    free(c->head);
    free(c->out);
    void *user = c->user;
    uint32_t rng = c->rng;
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->state = WSC_CLOSED;
    c->user = user;
    c->rng = rng;
}
