/*
 * guard.c - the Origin policy and the per-address connection table.
 *
 * The table is a fixed array of buckets with chained entries, one entry
 * per address with at least one connection counted; an entry is freed when
 * its count drops to zero, so the table holds at most as many entries as
 * the worker has connections.
 */
#include "guard.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <sys/socket.h>

#include "util.h"

/* ---- Origin ------------------------------------------------------------- */

typedef struct {
    bool https;
    const char *host; /* IPv6 literals keep their brackets */
    size_t hlen;
    unsigned port;
} origin_t;

static bool host_char(unsigned char ch, bool bracketed)
{
    return isalnum(ch) || ch == '-' || ch == '.' || ch == '_' ||
           (bracketed && (ch == ':' || ch == '[' || ch == ']'));
}

/* Parses "host[:port]" or "[v6]:port" in p[0..end); a missing port is
 * defport.  0, or -1 when malformed. */
static int parse_hostport(const char *p, const char *end, unsigned defport,
                          origin_t *o)
{
    const char *colon;
    bool br = p < end && *p == '[';
    if (br) {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL || (rb + 1 < end && rb[1] != ':'))
            return -1;
        colon = rb + 1 < end ? rb + 1 : NULL;
        o->hlen = (size_t)(rb + 1 - p);
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        o->hlen = (size_t)((colon ? colon : end) - p);
    }
    o->host = p;
    if (o->hlen == 0 || (br && o->hlen < 3))
        return -1;
    for (size_t i = 0; i < o->hlen; i++)
        if (!host_char((unsigned char)p[i], br))
            return -1;
    o->port = defport;
    if (colon != NULL) {
        uint64_t n;
        if (util_parse_u64(colon + 1, (size_t)(end - colon - 1), &n) != 0 ||
            n == 0 || n > 65535)
            return -1;
        o->port = (unsigned)n;
    }
    return 0;
}

/* Parses an origin "http(s)://host[:port]" in s[0..len).  0 or -1. */
static int parse_origin(const char *s, size_t len, origin_t *o)
{
    size_t skip;
    if (len > 7 && strncasecmp(s, "http://", 7) == 0) {
        o->https = false;
        skip = 7;
    } else if (len > 8 && strncasecmp(s, "https://", 8) == 0) {
        o->https = true;
        skip = 8;
    } else {
        return -1;
    }
    return parse_hostport(s + skip, s + len, o->https ? 443 : 80, o);
}

static bool host_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static bool same_origin(const origin_t *a, const origin_t *b)
{
    return a->https == b->https && a->port == b->port &&
           host_eq(a->host, a->hlen, b->host, b->hlen);
}

static bool is_loopback(const origin_t *o)
{
    return host_eq(o->host, o->hlen, "localhost", 9) ||
           host_eq(o->host, o->hlen, "127.0.0.1", 9) ||
           host_eq(o->host, o->hlen, "[::1]", 5);
}

/* The default policy: the Host of the request, or a loopback name. */
static bool default_allowed(const origin_t *o, const char *host, size_t hlen)
{
    origin_t h;
    if (is_loopback(o))
        return true;
    if (host == NULL ||
        parse_hostport(host, host + hlen, o->https ? 443 : 80, &h) != 0)
        return false;
    return h.port == o->port && host_eq(h.host, h.hlen, o->host, o->hlen);
}

/* Calls fn on each trimmed non-empty item of list until it returns
 * non-zero; returns that value, or 0. */
static int each_item(const char *list,
                     int (*fn)(const char *s, size_t len, void *arg), void *arg)
{
    const char *p = list;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *s = p, *e = p + len;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        int rc = e > s ? fn(s, (size_t)(e - s), arg) : 0;
        if (rc != 0)
            return rc;
        p += len + (p[len] == ',');
    }
    return 0;
}

static int item_is_star(const char *s, size_t len, void *arg)
{
    (void)arg;
    return len == 1 && s[0] == '*';
}

static int item_matches(const char *s, size_t len, void *arg)
{
    origin_t it;
    return parse_origin(s, len, &it) == 0 && same_origin(&it, arg);
}

static int item_any(const char *s, size_t len, void *arg)
{
    (void)s;
    (void)arg;
    return len > 0;
}

bool guard_origin_allowed(const char *allowed, const char *origin, size_t olen,
                          const char *host, size_t hlen)
{
    origin_t o;
    if (origin == NULL || each_item(allowed, item_is_star, NULL) == 1)
        return true;
    if (parse_origin(origin, olen, &o) != 0)
        return false;
    if (each_item(allowed, item_any, NULL) == 0)
        return default_allowed(&o, host, hlen);
    return each_item(allowed, item_matches, &o) == 1;
}

struct check_ctx {
    char *err;
    size_t errlen;
};

static int item_check(const char *s, size_t len, void *arg)
{
    struct check_ctx *ctx = arg;
    origin_t o;
    if ((len == 1 && s[0] == '*') || parse_origin(s, len, &o) == 0)
        return 0;
    snprintf(ctx->err, ctx->errlen,
             "allowed_origins: '%.*s' is not an origin like "
             "https://chat.example.com or http://host:8080, nor *",
             (int)(len > 100 ? 100 : len), s);
    return -1;
}

int guard_origins_check(const char *allowed, char *err, size_t errlen)
{
    struct check_ctx ctx = {err, errlen};
    return each_item(allowed ? allowed : "", item_check, &ctx);
}

/* ---- per-address table ------------------------------------------------- */

struct ip_entry {
    uint8_t key[GUARD_IP_KEY_LEN];
    uint32_t count;
    struct ip_entry *next;
};

struct guard_iptab {
    struct ip_entry **buckets;
    size_t mask; /* buckets - 1 (a power of two) */
    size_t entries;
    uint64_t seed[2];
};

int guard_ip_key(const struct sockaddr *sa, uint8_t key[GUARD_IP_KEY_LEN])
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        memcpy(key, &a->sin6_addr, GUARD_IP_KEY_LEN);
        return 0;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a->sin_addr, 4);
        return 0;
    }
    return -1;
}

guard_iptab_t *guard_iptab_new(size_t expected)
{
    size_t n = 64;
    while (n < expected && n < (1u << 16))
        n <<= 1;
    guard_iptab_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->buckets = calloc(n, sizeof *t->buckets);
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    t->mask = n - 1;
    if (util_random(t->seed, sizeof t->seed) != 0) {
        t->seed[0] = (uint64_t)(uintptr_t)t ^ util_wall_ms();
        t->seed[1] = util_mono_ms() * 0x9e3779b97f4a7c15ULL;
    }
    return t;
}

void guard_iptab_free(guard_iptab_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        struct ip_entry *e = t->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(t->buckets);
    free(t);
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Seeded hash of a key (not cryptographic; the seed is secret). */
static size_t bucket_of(const guard_iptab_t *t, const uint8_t *key)
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = mix64(a ^ t->seed[0]);
    h = mix64(h ^ b ^ t->seed[1]);
    return (size_t)h & t->mask;
}

static struct ip_entry **find(const guard_iptab_t *t, const uint8_t *key)
{
    struct ip_entry **pp = &t->buckets[bucket_of(t, key)];
    while (*pp != NULL && memcmp((*pp)->key, key, GUARD_IP_KEY_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

int guard_ip_acquire(guard_iptab_t *t, const uint8_t key[GUARD_IP_KEY_LEN],
                     uint32_t limit)
{
    struct ip_entry **pp = find(t, key);
    if (*pp != NULL) {
        if (limit != 0 && (*pp)->count >= limit)
            return 0;
        (*pp)->count++;
        return 1;
    }
    struct ip_entry *e = malloc(sizeof *e);
    if (e == NULL)
        return -1;
    memcpy(e->key, key, GUARD_IP_KEY_LEN);
    e->count = 1;
    e->next = NULL;
    *pp = e;
    t->entries++;
    return 1;
}

void guard_ip_release(guard_iptab_t *t, const uint8_t key[GUARD_IP_KEY_LEN])
{
    struct ip_entry **pp = find(t, key);
    struct ip_entry *e = *pp;
    if (e == NULL)
        return;
    if (--e->count == 0) {
        *pp = e->next;
        free(e);
        t->entries--;
    }
}

uint32_t guard_ip_count(const guard_iptab_t *t,
                        const uint8_t key[GUARD_IP_KEY_LEN])
{
    struct ip_entry *const *pp = find(t, key);
    return *pp != NULL ? (*pp)->count : 0;
}

size_t guard_ip_addresses(const guard_iptab_t *t)
{
    return t->entries;
}
