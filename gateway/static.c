/*
 * static.c - resolving, typing and opening the web client's files.  See
 * static.h for the confinement rules.
 */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_parser.h"
#include "log.h"

typedef struct {
    const char *ext;
    const char *mime;
} mime_entry_t;

static const mime_entry_t mime_table[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"wasm", "application/wasm"},
    {"webmanifest", "application/manifest+json"},
};

#define MIME_DEFAULT "application/octet-stream"

/* True when seg[0..n) is "." or "..". */
static bool is_dot_segment(const char *seg, size_t n)
{
    return (n == 1 && seg[0] == '.') ||
           (n == 2 && seg[0] == '.' && seg[1] == '.');
}

/* True when any '/'-separated segment of p[0..len) is "." or "..". */
static bool has_dot_segment(const char *p, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || p[i] == '/') {
            if (is_dot_segment(p + start, i - start))
                return true;
            start = i + 1;
        }
    }
    return false;
}

/* Copies the decoded absolute path d[0..len) (d[0] == '/') to out as a
 * relative path, checking each segment.  Returns the length or -status. */
static int copy_segments(const char *d, size_t len, char *out, size_t cap)
{
    size_t o = 0, start = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && d[i] != '/')
            continue;
        size_t n = i - start;
        if (n == 0)
            return -404; /* "//" or a trailing '/': no directories */
        if (is_dot_segment(d + start, n))
            return -400;
        if (d[start] == '.')
            return -404;               /* hidden files are not served */
        if (o + (o > 0) + n + 1 > cap) /* '/' separator, NUL */
            return -404;
        if (o > 0)
            out[o++] = '/';
        memcpy(out + o, d + start, n);
        o += n;
        start = i + 1;
    }
    out[o] = '\0';
    return (int)o;
}

int static_path_resolve(const char *path, size_t len, char *out, size_t cap)
{
    char dec[STATIC_MAX_PATH + 1];
    if (len == 0 || path[0] != '/' || cap == 0)
        return -400;
    if (has_dot_segment(path, len))
        return -400;
    int n = http_decode_path(path, len, dec, sizeof dec);
    if (n < 0)
        return len > STATIC_MAX_PATH ? -404 : -400;
    if (n == 0 || dec[0] != '/')
        return -400;
    if (memchr(dec, '\0', (size_t)n) != NULL)
        return -400;
    if (n == 1) {
        static const char index[] = "index.html";
        if (sizeof index > cap)
            return -404;
        memcpy(out, index, sizeof index);
        return (int)(sizeof index - 1);
    }
    return copy_segments(dec, (size_t)n, out, cap);
}

const char *static_mime_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot == NULL || dot == base)
        return MIME_DEFAULT;
    for (size_t i = 0; i < sizeof mime_table / sizeof mime_table[0]; i++)
        if (strcasecmp(dot + 1, mime_table[i].ext) == 0)
            return mime_table[i].mime;
    return MIME_DEFAULT;
}

int static_http_date(time_t t, char out[STATIC_DATE_LEN + 1])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return -1;
    /* strftime's %a and %b follow the locale; we never call setlocale(),
     * so they are the C locale's English names HTTP wants. */
    if (strftime(out, STATIC_DATE_LEN + 1, "%a, %d %b %Y %H:%M:%S GMT", &tm) !=
        STATIC_DATE_LEN)
        return -1;
    return 0;
}

int static_parse_http_date(const char *s, size_t len, time_t *out)
{
    char buf[STATIC_DATE_LEN + 1];
    struct tm tm;
    if (len != STATIC_DATE_LEN)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0')
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t;
    return 0;
}

void static_make_etag(uint64_t size, uint64_t mtime_ns,
                      char out[STATIC_ETAG_MAX])
{
    snprintf(out, STATIC_ETAG_MAX, "\"%" PRIx64 "-%" PRIx64 "\"", size,
             mtime_ns);
}

bool static_etag_match(const char *list, size_t len, const char *etag)
{
    size_t elen = strlen(etag);
    if (elen >= 2 && etag[0] == 'W' && etag[1] == '/') {
        etag += 2;
        elen -= 2;
    }
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        if (i == len)
            break;
        if (list[i] == '*')
            return true;
        if (len - i >= 2 && list[i] == 'W' && list[i + 1] == '/')
            i += 2;
        if (i == len || list[i] != '"')
            return false;
        const char *close = memchr(list + i + 1, '"', len - i - 1);
        if (close == NULL)
            return false;
        size_t tlen = (size_t)(close - (list + i)) + 1;
        if (tlen == elen && memcmp(list + i, etag, elen) == 0)
            return true;
        i += tlen;
    }
    return false;
}

/* The HTTP status for an openat() failure. */
static int open_status(int err, const char *rel)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ELOOP: /* a symlink: never followed */
    case EACCES:
    case ENAMETOOLONG:
    case ENXIO:
        return 404;
    default:
        log_warn("static_open_failed", "path=\"%s\" error=\"%s\"", rel,
                 strerror(err));
        return 500;
    }
}

/* Fills f from the open regular file fd. */
static int fill_file(int fd, const char *rel, static_file_t *f)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return open_status(errno, rel);
    if (!S_ISREG(st.st_mode))
        return 404;
    f->fd = fd;
    f->size = st.st_size;
    f->mtime = st.st_mtim.tv_sec;
    f->mime = static_mime_type(rel);
    f->is_html = strncmp(f->mime, "text/html", 9) == 0;
    static_make_etag((uint64_t)st.st_size,
                     (uint64_t)st.st_mtim.tv_sec * 1000000000u +
                         (uint64_t)st.st_mtim.tv_nsec,
                     f->etag);
    if (static_http_date(st.st_mtim.tv_sec, f->last_modified) != 0)
        f->last_modified[0] = '\0';
    return 0;
}

int static_open(int root_fd, const char *rel, static_file_t *f)
{
    char comp[NAME_MAX + 1];
    int dir = root_fd;
    const char *p = rel;
    f->fd = -1;
    if (root_fd < 0)
        return 404;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n > NAME_MAX) {
            if (dir != root_fd)
                close(dir);
            return 404;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        /* O_NONBLOCK: opening a FIFO someone put in www must not block. */
        int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
                    (slash ? O_DIRECTORY : O_NONBLOCK);
        int fd = openat(dir, comp, flags);
        int err = errno;
        if (dir != root_fd)
            close(dir);
        if (fd < 0)
            return open_status(err, rel);
        if (slash == NULL) {
            int st = fill_file(fd, rel, f);
            if (st != 0)
                close(fd);
            return st;
        }
        dir = fd;
        p = slash + 1;
    }
}

int static_open_root(const char *www)
{
    return open(www, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}
