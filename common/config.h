/*
 * config.h - Parley's configuration: one INI file format for both programs,
 * every key also settable on the command line.
 *
 * The file has sections [link] (the broker endpoints, read by both),
 * [log] (both), [process] (both: the user to run as), [gateway] and
 * [broker]; a program reads [link], [log], [process] and its own section
 * and skips the other program's.  On the command line a key
 * is "--name=value" or "--name value" with the key's bare name
 * (--workers 4, --listen 0.0.0.0:8080).  Values: integers, sizes with an
 * optional k/m/g suffix (powers of 1024), durations with ms/s/m suffixes
 * (default: seconds), booleans (yes/no, true/false, on/off, 1/0), strings.
 * Unknown keys and bad values are errors naming the file and line.
 */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { CONFIG_ROLE_GATEWAY = 1, CONFIG_ROLE_BROKER = 2 } config_role_t;

typedef struct {
    /* [link] */
    char *broker_router;     /* broker's ROUTER endpoint */
    char *broker_pub;        /* broker's PUB endpoint */
    int64_t heartbeat_ms;    /* heartbeat period, both directions */
    int64_t link_timeout_ms; /* silence after which a peer is down */
    /* [log] */
    char *log_level;
    char *log_file; /* "-" = stderr */
    bool access_log;
    /* [process] */
    char *user;      /* drop to this user after binding (as root) */
    bool allow_root; /* run as root without a user */
    /* [gateway] */
    char *listen;    /* comma-separated host:port list */
    int64_t workers; /* -1: number of CPUs; 0: no master */
    int64_t backlog;
    bool reuseport;
    char *www;           /* directory of the web client */
    char *node_name;     /* name of this gateway in the broker's logs */
    int64_t max_message; /* WebSocket message size limit, bytes */
    int64_t max_text;    /* say text limit, bytes */
    int64_t max_head;    /* HTTP request head, bytes */
    int64_t max_request_line;
    int64_t max_headers;
    int64_t send_queue;      /* per-connection send queue bound, bytes */
    int64_t max_connections; /* per worker */
    int64_t history_replay;  /* messages replayed by a join without since */
    int64_t header_timeout_ms;
    int64_t idle_timeout_ms;  /* HTTP keep-alive idle */
    int64_t ping_interval_ms; /* WebSocket ping after this much silence */
    int64_t
        pong_timeout_ms; /* close a connection silent this long after a ping */
    int64_t close_timeout_ms;   /* wait for the peer's close frame */
    int64_t drain_timeout_ms;   /* graceful stop: wait for clients to leave */
    int64_t request_timeout_ms; /* broker answer to join/say/who */
    char *tls_listen;           /* comma-separated host:port list; "": no TLS */
    char *tls_cert;             /* PEM certificate chain file */
    char *tls_key;              /* PEM private key file */
    bool tls_key_insecure_ok;   /* accept a key readable by group/others */
    char *allowed_origins;      /* "", "*" or a comma-separated origin list */
    int64_t max_connections_per_ip; /* per worker; 0: unlimited */
    bool deflate;             /* negotiate permessage-deflate when offered */
    int64_t deflate_min_size; /* broadcasts below this go uncompressed */
    int64_t deflate_level;    /* zlib level of the worker's compressor, 1..9 */
    int64_t deflate_server_max_window_bits;  /* compressor window, 9..15 */
    int64_t deflate_client_max_window_bits;  /* asked of clients, 9..15 */
    bool deflate_client_no_context_takeover; /* asked of every client */
    int64_t rate_limit;   /* messages per second per connection; 0: off */
    int64_t rate_burst;   /* messages at once (token bucket size) */
    char *api_token;      /* HTTP API bearer token; "": API disabled */
    int64_t api_max_body; /* HTTP API request body limit, bytes */
    /* [broker] */
    int64_t history_size; /* messages kept per room */
    char *journal;        /* journal directory; empty: no journal */
    char *fsync;          /* journal fsync policy: always, interval, never */
} config_t;

/* Sets every key to its default (strings are allocated).  Returns 0, or -1
 * when out of memory. */
int config_init(config_t *c);

/* Frees the strings of c; c can be initialized again. */
void config_free(config_t *c);

/*
 * Sets key (bare name, e.g. "workers") to value as given on the command
 * line or in a file.  Keys of the other program's section are refused
 * (role).  Returns 0, or -1 with a message in err[errlen].
 */
int config_set(config_t *c, config_role_t role, const char *key,
               const char *value, char *err, size_t errlen);

/*
 * Reads an INI file (inih): "[section]" then "key = value" lines, "#" or
 * ";" comments.  Keys of the other program's section are skipped; unknown
 * sections or keys are errors.  Returns 0, or -1 with "path:line: reason" in
 * err.
 */
int config_load(config_t *c, config_role_t role, const char *path, char *err,
                size_t errlen);

/*
 * The command line of a program: --config FILE is read first (wherever it
 * stands), then every --key=value / --key value overrides it.  Flags
 * --help, --version and --check-config are reported through *flags
 * (CONFIG_FLAG_*) and not handled here.  Returns 0, or -1 with err set.
 */
enum { CONFIG_FLAG_HELP = 1, CONFIG_FLAG_VERSION = 2, CONFIG_FLAG_CHECK = 4 };
int config_parse_args(config_t *c, config_role_t role, int argc, char **argv,
                      int *flags, char *err, size_t errlen);

/* Cross-key checks (e.g. pong timeout vs ping interval).  0 or -1 + err. */
int config_validate(const config_t *c, config_role_t role, char *err,
                    size_t errlen);

/* Prints the options of role with their defaults and help text. */
void config_usage(FILE *out, config_role_t role, const char *prog);

/* Prints the effective configuration as an INI file (--check-config). */
void config_dump(FILE *out, const config_t *c, config_role_t role);

#endif
