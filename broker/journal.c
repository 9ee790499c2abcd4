/*
 * journal.c - per-room append-only history files (journal.h).
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"

#define REC_HDR 8     /* u32 length + u32 crc */
#define BODY_FIXED 22 /* seq, ts, epoch len, nick len, text len */
#define MAX_BODY (BODY_FIXED + 255 + 255 + (16u << 20))
#define SUFFIX ".journal"
#define ROOM_BUCKETS 1024

struct journal_room {
    char name[72];
    int fd;
    uint64_t records; /* records in the file */
    uint64_t bytes;
    bool dirty; /* written since the last sync */
    journal_room_t *hash_next;
    journal_room_t *dirty_next;
};

struct journal {
    char *dir;
    int dir_fd;
    journal_fsync_t policy;
    size_t keep;
    journal_room_t *buckets[ROOM_BUCKETS];
    journal_room_t *dirty; /* list of rooms to sync on the next tick */
    uint8_t *buf;          /* record being encoded */
    size_t buf_cap;
    uint64_t total_bytes;
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static unsigned bucket_of(const char *name, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h % ROOM_BUCKETS;
}

static int parse_policy(const char *s, journal_fsync_t *out)
{
    if (strcmp(s, "always") == 0)
        *out = JOURNAL_FSYNC_ALWAYS;
    else if (strcmp(s, "interval") == 0)
        *out = JOURNAL_FSYNC_INTERVAL;
    else if (strcmp(s, "never") == 0)
        *out = JOURNAL_FSYNC_NEVER;
    else
        return -1;
    return 0;
}

journal_t *journal_open(const char *dir, const char *policy, size_t keep,
                        char *err, size_t errlen)
{
    journal_fsync_t pol;
    if (keep == 0 || parse_policy(policy, &pol) != 0) {
        errf(err, errlen, "journal: bad fsync policy \"%s\"", policy);
        return NULL;
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        errf(err, errlen, "journal: cannot create %s: %s", dir,
             strerror(errno));
        return NULL;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        errf(err, errlen, "journal: cannot open %s: %s", dir, strerror(errno));
        return NULL;
    }
    journal_t *j = calloc(1, sizeof *j);
    if (j == NULL || (j->dir = strdup(dir)) == NULL) {
        free(j);
        close(dfd);
        errf(err, errlen, "journal: out of memory");
        return NULL;
    }
    j->dir_fd = dfd;
    j->policy = pol;
    j->keep = keep;
    return j;
}

static void room_sync(journal_room_t *r)
{
    if (r->dirty && fdatasync(r->fd) != 0)
        log_warn("journal_sync_failed", "room=%s error=\"%s\"", r->name,
                 strerror(errno));
    r->dirty = false;
}

void journal_close(journal_t *j)
{
    if (j == NULL)
        return;
    for (size_t b = 0; b < ROOM_BUCKETS; b++) {
        journal_room_t *r = j->buckets[b];
        while (r != NULL) {
            journal_room_t *next = r->hash_next;
            room_sync(r);
            close(r->fd);
            free(r);
            r = next;
        }
    }
    close(j->dir_fd);
    free(j->buf);
    free(j->dir);
    free(j);
}

/* Reads a whole file into memory (journal files are bounded by
 * compaction). */
static uint8_t *slurp(int fd, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return NULL;
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    size_t have = 0;
    while (buf != NULL && have < size) {
        ssize_t n = pread(fd, buf + have, size - have, (off_t)have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        have += (size_t)n;
    }
    *len = have;
    return buf;
}

/* Decodes the record at buf[off..len); returns its total length, or 0 when
 * it is torn or corrupt. */
static size_t decode_record(const uint8_t *buf, size_t len, size_t off,
                            journal_record_t *rec)
{
    if (len - off < REC_HDR)
        return 0;
    uint32_t blen = get32(buf + off);
    if (blen < BODY_FIXED || blen > MAX_BODY || len - off - REC_HDR < blen)
        return 0;
    const uint8_t *b = buf + off + REC_HDR;
    if ((uint32_t)crc32(0L, b, blen) != get32(buf + off + 4))
        return 0;
    rec->seq = get64(b);
    rec->ts = get64(b + 8);
    rec->epoch_len = b[16];
    rec->nick_len = b[17];
    rec->text_len = get32(b + 18);
    if (BODY_FIXED + rec->epoch_len + rec->nick_len + rec->text_len != blen)
        return 0;
    rec->epoch = (const char *)b + BODY_FIXED;
    rec->nick = rec->epoch + rec->epoch_len;
    rec->text = rec->nick + rec->nick_len;
    return REC_HDR + blen;
}

/* Offsets of records in a file: the first that starts a torn tail is the
 * returned length. */
static size_t scan_file(const char *room, const uint8_t *buf, size_t len,
                        journal_load_fn fn, void *arg, uint64_t *count,
                        int *fn_failed)
{
    size_t off = 0;
    uint64_t prev = 0;
    journal_record_t first = {0}, rec;
    while (off < len) {
        size_t n = decode_record(buf, len, off, &rec);
        if (n == 0)
            break;
        if (*count > 0 &&
            (rec.seq != prev + 1 || rec.epoch_len != first.epoch_len ||
             memcmp(rec.epoch, first.epoch, rec.epoch_len)))
            break; /* not a continuation of this room's stream */
        if (*count == 0)
            first = rec;
        rec.room = room;
        rec.room_len = strlen(room);
        if (fn(arg, &rec) != 0) {
            *fn_failed = 1;
            break;
        }
        prev = rec.seq;
        (*count)++;
        off += n;
    }
    return off;
}

static journal_room_t *room_add(journal_t *j, const char *name, size_t len,
                                int fd, uint64_t records, uint64_t bytes)
{
    journal_room_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    r->fd = fd;
    r->records = records;
    r->bytes = bytes;
    unsigned b = bucket_of(name, len);
    r->hash_next = j->buckets[b];
    j->buckets[b] = r;
    j->total_bytes += bytes;
    return r;
}

/* Loads one room file; returns records read or -1. */
static long load_file(journal_t *j, const char *fname, journal_load_fn fn,
                      void *arg)
{
    size_t nlen = strlen(fname) - strlen(SUFFIX);
    if (nlen == 0 || nlen > 64)
        return 0;
    char room[72];
    memcpy(room, fname, nlen);
    room[nlen] = '\0';
    int fd = openat(j->dir_fd, fname, O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    uint8_t *buf = slurp(fd, &len);
    if (buf == NULL) {
        close(fd);
        return -1;
    }
    uint64_t count = 0;
    int fn_failed = 0;
    size_t good = scan_file(room, buf, len, fn, arg, &count, &fn_failed);
    free(buf);
    if (fn_failed) {
        close(fd);
        return -1;
    }
    if (good < len) {
        log_warn("journal_truncated",
                 "room=%s kept_bytes=%zu dropped_bytes=%zu", room, good,
                 len - good);
        if (ftruncate(fd, (off_t)good) != 0) {
            close(fd);
            return -1;
        }
    }
    if (room_add(j, room, nlen, fd, count, good) == NULL) {
        close(fd);
        return -1;
    }
    return (long)count;
}

long journal_load(journal_t *j, journal_load_fn fn, void *arg, char *err,
                  size_t errlen)
{
    int dfd = dup(j->dir_fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        errf(err, errlen, "journal: cannot read %s: %s", j->dir,
             strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    rewinddir(d);
    long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= strlen(SUFFIX) ||
            strcmp(e->d_name + n - strlen(SUFFIX), SUFFIX) != 0)
            continue;
        long got = load_file(j, e->d_name, fn, arg);
        if (got < 0) {
            errf(err, errlen, "journal: cannot load %s/%s: %s", j->dir,
                 e->d_name, errno ? strerror(errno) : "rejected");
            closedir(d);
            return -1;
        }
        total += got;
    }
    closedir(d);
    return total;
}

journal_room_t *journal_room(journal_t *j, const char *room, size_t len)
{
    if (len == 0 || len > 64) {
        errno = EINVAL;
        return NULL;
    }
    for (journal_room_t *r = j->buckets[bucket_of(room, len)]; r;
         r = r->hash_next)
        if (strlen(r->name) == len && memcmp(r->name, room, len) == 0)
            return r;
    char fname[96];
    snprintf(fname, sizeof fname, "%.*s" SUFFIX, (int)len, room);
    int fd =
        openat(j->dir_fd, fname, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return NULL;
    journal_room_t *r = room_add(j, room, len, fd, 0, 0);
    if (r == NULL) {
        close(fd);
        errno = ENOMEM;
    }
    return r;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Rewrites r's file with its last j->keep records (write a temporary file,
 * sync it, rename it over the old one). */
static int compact(journal_t *j, journal_room_t *r)
{
    size_t len = 0;
    uint8_t *buf = slurp(r->fd, &len);
    if (buf == NULL)
        return -1;
    uint64_t skip = r->records - j->keep;
    size_t off = 0;
    journal_record_t rec;
    for (uint64_t i = 0; i < skip && off < len; i++) {
        size_t n = decode_record(buf, len, off, &rec);
        if (n == 0)
            break;
        off += n;
    }
    char tmp[112], fname[96];
    snprintf(fname, sizeof fname, "%s" SUFFIX, r->name);
    snprintf(tmp, sizeof tmp, "%s.tmp", fname);
    int fd =
        openat(j->dir_fd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int rc = -1;
    if (fd >= 0 && write_all(fd, buf + off, len - off) == 0 &&
        fdatasync(fd) == 0 && renameat(j->dir_fd, tmp, j->dir_fd, fname) == 0) {
        fsync(j->dir_fd);
        close(r->fd);
        r->fd = fd;
        lseek(fd, 0, SEEK_END);
        j->total_bytes -= r->bytes;
        r->bytes = len - off;
        j->total_bytes += r->bytes;
        r->records -= skip;
        /* O_APPEND is not set on the new descriptor: every write goes to
         * the end anyway because we own the offset. */
        rc = 0;
    } else if (fd >= 0) {
        close(fd);
        unlinkat(j->dir_fd, tmp, 0);
    }
    free(buf);
    return rc;
}

static int ensure_buf(journal_t *j, size_t need)
{
    if (need <= j->buf_cap)
        return 0;
    size_t cap = j->buf_cap ? j->buf_cap : 1024;
    while (cap < need)
        cap *= 2;
    uint8_t *b = realloc(j->buf, cap);
    if (b == NULL)
        return -1;
    j->buf = b;
    j->buf_cap = cap;
    return 0;
}

int journal_append(journal_t *j, journal_room_t *r, const char *epoch,
                   size_t epoch_len, uint64_t seq, uint64_t ts,
                   const char *nick, size_t nick_len, const char *text,
                   size_t text_len)
{
    if (epoch_len > 255 || nick_len > 255 || text_len > (16u << 20)) {
        errno = EINVAL;
        return -1;
    }
    size_t blen = BODY_FIXED + epoch_len + nick_len + text_len;
    if (ensure_buf(j, REC_HDR + blen) != 0) {
        errno = ENOMEM;
        return -1;
    }
    uint8_t *b = j->buf + REC_HDR;
    put64(b, seq);
    put64(b + 8, ts);
    b[16] = (uint8_t)epoch_len;
    b[17] = (uint8_t)nick_len;
    put32(b + 18, (uint32_t)text_len);
    memcpy(b + BODY_FIXED, epoch, epoch_len);
    memcpy(b + BODY_FIXED + epoch_len, nick, nick_len);
    memcpy(b + BODY_FIXED + epoch_len + nick_len, text, text_len);
    put32(j->buf, (uint32_t)blen);
    put32(j->buf + 4, (uint32_t)crc32(0L, b, (uInt)blen));
    if (write_all(r->fd, j->buf, REC_HDR + blen) != 0)
        return -1;
    r->records++;
    r->bytes += REC_HDR + blen;
    j->total_bytes += REC_HDR + blen;
    if (j->policy == JOURNAL_FSYNC_ALWAYS) {
        if (fdatasync(r->fd) != 0)
            return -1;
    } else if (j->policy == JOURNAL_FSYNC_INTERVAL && !r->dirty) {
        r->dirty = true;
        r->dirty_next = j->dirty;
        j->dirty = r;
    }
    if (r->records >= 2 * (uint64_t)j->keep && compact(j, r) != 0)
        log_warn("journal_compact_failed", "room=%s error=\"%s\"", r->name,
                 strerror(errno));
    return 0;
}

void journal_tick(journal_t *j)
{
    journal_room_t *r = j->dirty;
    j->dirty = NULL;
    while (r != NULL) {
        journal_room_t *next = r->dirty_next;
        room_sync(r);
        r->dirty_next = NULL;
        r = next;
    }
}

uint64_t journal_bytes(const journal_t *j)
{
    return j->total_bytes;
}
