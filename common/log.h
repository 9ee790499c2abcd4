/*
 * log.h - one line per event:
 *
 *   2026-11-25T13:59:51.123Z info gateway[1234] conn_open fd=7 peer=...
 *
 * time (UTC), level, process role and pid, an event name, then key=value
 * fields.  Lines are written with one write(2) each, so lines of several
 * processes sharing a file or pipe do not interleave.  Never log message
 * contents at info level or above.
 */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

typedef enum {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3
} log_level_t;

/* Sets the role printed in every line ("gateway", "worker", "broker") and
 * the minimum level.  The pid is read at each line, so it stays right after
 * fork.  Output goes to stderr until log_open() names a file. */
void log_init(const char *role, log_level_t level);

/* Changes the role after a fork ("worker"). */
void log_set_role(const char *role);

void log_set_level(log_level_t level);

/* Parses "debug", "info", "warn" or "error"; returns -1 when unknown. */
int log_level_parse(const char *s);

/* Appends to path instead of stderr ("-" or NULL: stderr).  Returns 0, or
 * -1 with errno set.  Reopening the same path (after SIGHUP) is fine. */
int log_open(const char *path);

/* True when lines of this level are written (to skip costly formatting). */
int log_enabled(log_level_t level);

/* Writes a line: event is a short snake_case name, fmt the key=value fields
 * (may be NULL).  Values with spaces should be quoted by the caller. */
void log_write(log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(ev, ...) log_write(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_write(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_write(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_write(LOG_ERROR, ev, __VA_ARGS__)

#endif
