/*
 * static.h - the web client's files under cfg.www.
 *
 * Split in two: pure helpers (path resolution, MIME types, HTTP dates,
 * entity-tag matching) that are unit-tested alone, and static_open(), the
 * one function that touches the file system.  A path never leaves the www
 * tree: ".." segments are refused before and after percent-decoding, and
 * every component is opened with openat(O_NOFOLLOW) from the root's
 * descriptor, so a symlink inside www (pointing anywhere) is never
 * followed.  Writing the response is http.c's business.
 */
#ifndef PARLEY_STATIC_H
#define PARLEY_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define STATIC_MAX_PATH 1024 /* decoded path bytes */
#define STATIC_DATE_LEN 29   /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define STATIC_ETAG_MAX 48

typedef struct {
    int fd; /* open regular file (owned by the caller), or -1 */
    off_t size;
    time_t mtime;     /* seconds, for Last-Modified / If-Modified-Since */
    const char *mime; /* static string */
    bool is_html;     /* gets the Content-Security-Policy */
    char etag[STATIC_ETAG_MAX]; /* with the quotes */
    char last_modified[STATIC_DATE_LEN + 1];
} static_file_t;

/*
 * Maps the (still percent-encoded) path of a request target path[0..len)
 * to a path relative to the www root in out[0..cap), NUL-terminated: "/"
 * becomes "index.html".  Returns the length of out, or a negative HTTP
 * status: -400 for a malformed escape, a NUL, a "." or ".." segment (raw or
 * decoded), or a path not starting with '/'; -404 for an empty segment
 * ("//", or a trailing '/' other than the root: directories are not
 * served), a hidden file (segment starting with '.'), or a path longer than
 * cap.  Pure.
 */
int static_path_resolve(const char *path, size_t len, char *out, size_t cap);

/* The Content-Type for a relative path, by its extension (ASCII case-
 * insensitive); text types carry "; charset=utf-8".  Never NULL; default
 * application/octet-stream.  Pure. */
const char *static_mime_type(const char *path);

/* Formats t as an RFC 7231 IMF-fixdate into out (STATIC_DATE_LEN + 1 bytes).
 * Returns 0, or -1 if t cannot be represented.  Pure. */
int static_http_date(time_t t, char out[STATIC_DATE_LEN + 1]);

/* Parses an IMF-fixdate s[0..len) into *out.  Returns 0, or -1 for any
 * other form (obsolete RFC 850 and asctime forms are not accepted, so the
 * condition is ignored).  Pure. */
int static_parse_http_date(const char *s, size_t len, time_t *out);

/* Writes the strong entity tag "\"<size hex>-<mtime ns hex>\"" into out
 * (STATIC_ETAG_MAX bytes).  Pure. */
void static_make_etag(uint64_t size, uint64_t mtime_ns,
                      char out[STATIC_ETAG_MAX]);

/*
 * True when the If-None-Match value list[0..len) matches etag (with its
 * quotes), by the weak comparison RFC 9110 prescribes for If-None-Match:
 * "*" matches anything, W/ prefixes are ignored on both sides.  A malformed
 * list matches nothing.  Pure.
 */
bool static_etag_match(const char *list, size_t len, const char *etag);

/*
 * Opens the regular file rel (from static_path_resolve) below the directory
 * root_fd, refusing symlinks at every component, and fills f (f->fd is the
 * open file, owned by the caller).  Returns 0, or an HTTP status: 404 when
 * the file is missing, is not a regular file, or a component is a symlink
 * or not a directory; 500 for other errors (with errno logged).
 */
int static_open(int root_fd, const char *rel, static_file_t *f);

/* Opens the www root directory (following symlinks: only what is below it
 * is confined).  Returns the descriptor, or -1 with errno set. */
int static_open_root(const char *www);

#endif
