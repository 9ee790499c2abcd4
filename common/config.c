/*
 * config.c - the configuration table, the INI reader (inih) and the command
 * line.  One table describes every key: its section, type, default, bounds
 * and help; everything else is driven by it.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#ifndef PARLEY_WWW_DIR
#define PARLEY_WWW_DIR "/usr/local/share/parley/www"
#endif

typedef enum { T_STR, T_INT, T_SIZE, T_DUR, T_BOOL } key_type_t;

typedef struct {
    const char *name;
    const char *section; /* link, log, process, gateway, broker */
    key_type_t type;
    size_t offset;
    const char *def;
    int64_t min, max; /* numbers: inclusive bounds (T_DUR in ms) */
    const char *help;
} cfg_key_t;

#define F(field) offsetof(config_t, field)
#define KIB 1024LL
#define MIB (1024LL * 1024)

static const cfg_key_t keys[] = {
    {"broker_router", "link", T_STR, F(broker_router),
     "ipc:///tmp/parley-router.ipc", 0, 0,
     "broker's ROUTER endpoint (requests); tcp://host:port across hosts"},
    {"broker_pub", "link", T_STR, F(broker_pub), "ipc:///tmp/parley-pub.ipc", 0,
     0, "broker's PUB endpoint (room messages to every gateway)"},
    {"heartbeat", "link", T_DUR, F(heartbeat_ms), "1s", 10, 60000,
     "heartbeat period between gateways and broker"},
    {"link_timeout", "link", T_DUR, F(link_timeout_ms), "3s", 50, 600000,
     "silence after which the other side of the link is down"},
    {"log_level", "log", T_STR, F(log_level), "info", 0, 0,
     "debug, info, warn or error"},
    {"log_file", "log", T_STR, F(log_file), "-", 0, 0,
     "log file, - for standard error"},
    {"access_log", "log", T_BOOL, F(access_log), "no", 0, 0,
     "log one line per HTTP request"},
    {"user", "process", T_STR, F(user), "", 0, 0,
     "started as root: switch to this user after binding the sockets"},
    {"allow_root", "process", T_BOOL, F(allow_root), "no", 0, 0,
     "allow running as root without user (not recommended)"},
    {"listen", "gateway", T_STR, F(listen), "127.0.0.1:8080", 0, 0,
     "comma-separated host:port list ([::1]:8080 for IPv6)"},
    {"workers", "gateway", T_INT, F(workers), "-1", -1, 256,
     "worker processes; -1: one per CPU; 0: one process, no master"},
    {"backlog", "gateway", T_INT, F(backlog), "511", 1, 65535,
     "listen(2) backlog"},
    {"reuseport", "gateway", T_BOOL, F(reuseport), "no", 0, 0,
     "SO_REUSEPORT, to run several gateways on one port"},
    {"www", "gateway", T_STR, F(www), PARLEY_WWW_DIR, 0, 0,
     "directory of the web client"},
    {"node_name", "gateway", T_STR, F(node_name), "", 0, 0,
     "name of this gateway in the broker's logs (default: host name)"},
    {"max_message", "gateway", T_SIZE, F(max_message), "64k", 125, 64 * MIB,
     "largest WebSocket message accepted (close 1009 beyond)"},
    {"max_text", "gateway", T_SIZE, F(max_text), "4k", 1, 64 * MIB,
     "largest chat text (error too_large beyond)"},
    {"max_head", "gateway", T_SIZE, F(max_head), "8k", 256, 1 * MIB,
     "largest HTTP request head (431 beyond)"},
    {"max_request_line", "gateway", T_SIZE, F(max_request_line), "4k", 16,
     1 * MIB, "longest HTTP request line (414 beyond)"},
    {"max_headers", "gateway", T_INT, F(max_headers), "64", 1, 64,
     "most HTTP request headers (431 beyond)"},
    {"send_queue", "gateway", T_SIZE, F(send_queue), "1m", 4 * KIB, 1024 * MIB,
     "per-connection send queue; a client over it is closed 1013"},
    {"max_connections", "gateway", T_INT, F(max_connections), "10000", 1,
     10000000, "connections per worker (503 beyond)"},
    {"history_replay", "gateway", T_INT, F(history_replay), "50", 0, 100000,
     "messages replayed by a join without since"},
    {"header_timeout", "gateway", T_DUR, F(header_timeout_ms), "10s", 10,
     3600000, "time allowed to send a request head"},
    {"idle_timeout", "gateway", T_DUR, F(idle_timeout_ms), "60s", 10, 86400000,
     "idle HTTP keep-alive connection lifetime"},
    {"ping_interval", "gateway", T_DUR, F(ping_interval_ms), "30s", 10,
     86400000, "ping a WebSocket after this much silence"},
    {"pong_timeout", "gateway", T_DUR, F(pong_timeout_ms), "10s", 10, 86400000,
     "close a WebSocket silent this long after a ping"},
    {"close_timeout", "gateway", T_DUR, F(close_timeout_ms), "5s", 10, 600000,
     "wait for the peer's close frame"},
    {"drain_timeout", "gateway", T_DUR, F(drain_timeout_ms), "10s", 0, 600000,
     "graceful stop: longest wait for connections to close"},
    {"request_timeout", "gateway", T_DUR, F(request_timeout_ms), "5s", 10,
     600000, "longest wait for the broker's answer to a request"},
    {"tls_listen", "gateway", T_STR, F(tls_listen), "", 0, 0,
     "comma-separated host:port list for TLS (empty: no TLS listener)"},
    {"tls_cert", "gateway", T_STR, F(tls_cert), "", 0, 0,
     "PEM certificate chain file (server certificate first)"},
    {"tls_key", "gateway", T_STR, F(tls_key), "", 0, 0,
     "PEM private key file (mode 0600 or stricter)"},
    {"tls_key_insecure_ok", "gateway", T_BOOL, F(tls_key_insecure_ok), "no", 0,
     0, "accept a tls_key file readable by group or others"},
    {"allowed_origins", "gateway", T_STR, F(allowed_origins), "", 0, 0,
     "Origins allowed to open WebSockets: list, * or empty (same host)"},
    {"max_connections_per_ip", "gateway", T_INT, F(max_connections_per_ip),
     "256", 0, 10000000,
     "connections per client address per worker; 0: "
     "unlimited"},
    {"deflate", "gateway", T_BOOL, F(deflate), "yes", 0, 0,
     "negotiate permessage-deflate (RFC 7692) when a client offers it"},
    {"deflate_min_size", "gateway", T_SIZE, F(deflate_min_size), "256", 0,
     64 * MIB, "broadcast messages shorter than this are sent uncompressed"},
    {"deflate_level", "gateway", T_INT, F(deflate_level), "6", 1, 9,
     "zlib compression level of broadcasts (1 fastest, 9 smallest)"},
    {"deflate_server_max_window_bits", "gateway", T_INT,
     F(deflate_server_max_window_bits), "15", 9, 15,
     "window of the compressor (also the most offered to clients)"},
    {"deflate_client_max_window_bits", "gateway", T_INT,
     F(deflate_client_max_window_bits), "15", 9, 15,
     "window asked of clients that offer client_max_window_bits"},
    {"deflate_client_no_context_takeover", "gateway", T_BOOL,
     F(deflate_client_no_context_takeover), "no", 0, 0,
     "ask every client to compress each message alone (no inflater kept)"},
    {"rate_limit", "gateway", T_INT, F(rate_limit), "20", 0, 1000000,
     "messages per second per WebSocket connection; 0: no limit"},
    {"rate_burst", "gateway", T_INT, F(rate_burst), "40", 1, 1000000,
     "messages a connection may send at once above rate_limit"},
    {"api_token", "gateway", T_STR, F(api_token), "", 0, 0,
     "bearer token of the HTTP API (empty: the API is disabled)"},
    {"api_max_body", "gateway", T_SIZE, F(api_max_body), "16k", 16, 64 * MIB,
     "largest HTTP API request body (413 beyond)"},
    {"history_size", "broker", T_INT, F(history_size), "1000", 1, 10000000,
     "messages of history kept per room"},
    {"journal", "broker", T_STR, F(journal), "", 0, 0,
     "journal directory (empty: no journal, history lost on restart)"},
    {"fsync", "broker", T_STR, F(fsync), "interval", 0, 0,
     "journal fsync policy: always, interval or never"},
};

static bool key_for_role(const cfg_key_t *k, config_role_t role)
{
    if (strcmp(k->section, "gateway") == 0)
        return role == CONFIG_ROLE_GATEWAY;
    if (strcmp(k->section, "broker") == 0)
        return role == CONFIG_ROLE_BROKER;
    return true;
}

static const cfg_key_t *key_find(const char *name)
{
    char norm[64];
    size_t n = strlen(name);
    if (n >= sizeof norm)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '-' ? '_' : name[i];
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].name, norm) == 0)
            return &keys[i];
    return NULL;
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

/* Parses a number with an optional suffix from units (NULL-terminated
 * pairs of suffix and multiplier); a bare number uses bare_mult. */
static int parse_scaled(const char *v, const char *const *sfx,
                        const int64_t *mult, int64_t bare_mult, int64_t *out)
{
    size_t digits = 0;
    bool neg = v[0] == '-';
    const char *p = v + (neg ? 1 : 0);
    while (isdigit((unsigned char)p[digits]))
        digits++;
    uint64_t n;
    if (util_parse_u64(p, digits, &n) != 0 || n > INT64_MAX / (1LL << 30))
        return -1;
    const char *unit = p + digits;
    int64_t m = -1;
    if (*unit == '\0')
        m = bare_mult;
    for (size_t i = 0; sfx != NULL && sfx[i] != NULL && m < 0; i++)
        if (strcasecmp(unit, sfx[i]) == 0)
            m = mult[i];
    if (m < 0)
        return -1;
    *out = (neg ? -1 : 1) * (int64_t)n * m;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

static int parse_value(const cfg_key_t *k, const char *v, int64_t *num, bool *b)
{
    static const char *const size_sfx[] = {"k",   "kb", "kib", "m",   "mb",
                                           "mib", "g",  "gb",  "gib", NULL};
    static const int64_t size_mult[] = {
        KIB, KIB, KIB, MIB, MIB, MIB, 1024 * MIB, 1024 * MIB, 1024 * MIB};
    static const char *const dur_sfx[] = {"ms", "s", "m", "h", NULL};
    static const int64_t dur_mult[] = {1, 1000, 60000, 3600000};
    switch (k->type) {
    case T_INT:
        return parse_scaled(v, NULL, NULL, 1, num);
    case T_SIZE:
        return parse_scaled(v, size_sfx, size_mult, 1, num);
    case T_DUR:
        return parse_scaled(v, dur_sfx, dur_mult, 1000, num);
    case T_BOOL:
        return parse_bool(v, b);
    case T_STR:
        return 0;
    }
    return -1;
}

static const char *type_hint(key_type_t t)
{
    switch (t) {
    case T_INT:
        return "an integer";
    case T_SIZE:
        return "a size (bytes, or with k/m/g)";
    case T_DUR:
        return "a duration (e.g. 500ms, 10s, 2m)";
    case T_BOOL:
        return "yes or no";
    case T_STR:
        return "a string";
    }
    return "?";
}

static int set_key(config_t *c, const cfg_key_t *k, const char *value,
                   char *err, size_t errlen)
{
    void *field = (char *)c + k->offset;
    int64_t num = 0;
    bool b = false;
    if (parse_value(k, value, &num, &b) != 0) {
        errf(err, errlen, "%s: \"%s\" is not %s", k->name, value,
             type_hint(k->type));
        return -1;
    }
    switch (k->type) {
    case T_STR: {
        char *s = strdup(value);
        if (s == NULL) {
            errf(err, errlen, "out of memory");
            return -1;
        }
        free(*(char **)field);
        *(char **)field = s;
        return 0;
    }
    case T_BOOL:
        *(bool *)field = b;
        return 0;
    default:
        break;
    }
    if (num < k->min || num > k->max) {
        errf(err, errlen, "%s: %s is out of range [%lld, %lld]%s", k->name,
             value, (long long)k->min, (long long)k->max,
             k->type == T_DUR ? " ms" : "");
        return -1;
    }
    *(int64_t *)field = num;
    return 0;
}

int config_init(config_t *c)
{
    char err[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (set_key(c, &keys[i], keys[i].def, err, sizeof err) != 0) {
            config_free(c);
            return -1;
        }
    }
    return 0;
}

void config_free(config_t *c)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (keys[i].type == T_STR) {
            char **s = (char **)((char *)c + keys[i].offset);
            free(*s);
            *s = NULL;
        }
    }
}

int config_set(config_t *c, config_role_t role, const char *key,
               const char *value, char *err, size_t errlen)
{
    const cfg_key_t *k = key_find(key);
    if (k == NULL) {
        errf(err, errlen, "unknown key \"%s\"", key);
        return -1;
    }
    if (!key_for_role(k, role)) {
        errf(err, errlen, "key \"%s\" belongs to the %s, not to this program",
             key, k->section);
        return -1;
    }
    return set_key(c, k, value, err, errlen);
}

struct load_ctx {
    config_t *c;
    config_role_t role;
    char msg[256];
    bool failed;
};

static bool section_known(const char *s)
{
    return strcmp(s, "link") == 0 || strcmp(s, "log") == 0 ||
           strcmp(s, "process") == 0 || strcmp(s, "gateway") == 0 ||
           strcmp(s, "broker") == 0;
}

/* inih handler: returns 0 to flag the line as an error. */
static int on_ini_line(void *user, const char *section, const char *name,
                       const char *value)
{
    struct load_ctx *ctx = user;
    if (ctx->failed)
        return 1; /* report the first error only */
    if (!section_known(section)) {
        snprintf(ctx->msg, sizeof ctx->msg, "unknown section [%s]", section);
        ctx->failed = true;
        return 0;
    }
    const cfg_key_t *k = key_find(name);
    if (k == NULL || strcmp(k->section, section) != 0) {
        snprintf(ctx->msg, sizeof ctx->msg, "unknown key \"%s\" in [%s]", name,
                 section);
        ctx->failed = true;
        return 0;
    }
    if (!key_for_role(k, ctx->role))
        return 1; /* the other program's key */
    if (set_key(ctx->c, k, value, ctx->msg, sizeof ctx->msg) != 0) {
        ctx->failed = true;
        return 0;
    }
    return 1;
}

int config_load(config_t *c, config_role_t role, const char *path, char *err,
                size_t errlen)
{
    struct load_ctx ctx = {.c = c, .role = role};
    int rc = ini_parse(path, on_ini_line, &ctx);
    if (rc == -1) {
        errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (rc == -2) {
        errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (rc > 0) {
        errf(err, errlen, "%s:%d: %s", path, rc,
             ctx.failed ? ctx.msg : "syntax error");
        return -1;
    }
    return 0;
}

/* Splits "--name=value" or "--name value"; returns the index of the last
 * argument used, or -1 when the option has no value. */
static int take_option(int argc, char **argv, int i, const cfg_key_t *k,
                       const char *eq, const char **value)
{
    if (eq != NULL) {
        *value = eq + 1;
        return i;
    }
    if (k != NULL && k->type == T_BOOL) {
        bool b;
        if (i + 1 < argc && parse_bool(argv[i + 1], &b) == 0) {
            *value = argv[i + 1];
            return i + 1;
        }
        *value = "yes";
        return i;
    }
    if (i + 1 >= argc)
        return -1;
    *value = argv[i + 1];
    return i + 1;
}

static int opt_name(const char *arg, char *name, size_t cap, const char **eq)
{
    if (strncmp(arg, "--", 2) != 0)
        return -1;
    const char *p = arg + 2;
    *eq = strchr(p, '=');
    size_t n = *eq ? (size_t)(*eq - p) : strlen(p);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(name, p, n);
    name[n] = '\0';
    return 0;
}

static int find_config_file(int argc, char **argv, const char **path)
{
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--config=", 9) == 0)
            *path = argv[i] + 9;
        else if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return -1;
            *path = argv[++i];
        }
    }
    return 0;
}

int config_parse_args(config_t *c, config_role_t role, int argc, char **argv,
                      int *flags, char *err, size_t errlen)
{
    const char *path;
    *flags = 0;
    if (find_config_file(argc, argv, &path) != 0) {
        errf(err, errlen, "--config needs a file name");
        return -1;
    }
    if (path != NULL && config_load(c, role, path, err, errlen) != 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        char name[64];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *flags |= CONFIG_FLAG_HELP;
            continue;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            *flags |= CONFIG_FLAG_VERSION;
            continue;
        }
        if (strcmp(arg, "--check-config") == 0) {
            *flags |= CONFIG_FLAG_CHECK;
            continue;
        }
        if (opt_name(arg, name, sizeof name, &eq) != 0) {
            errf(err, errlen, "unexpected argument \"%s\"", arg);
            return -1;
        }
        if (strcmp(name, "config") == 0) {
            i += eq ? 0 : 1; /* already loaded */
            continue;
        }
        const cfg_key_t *k = key_find(name);
        int last = take_option(argc, argv, i, k, eq, &value);
        if (last < 0) {
            errf(err, errlen, "--%s needs a value", name);
            return -1;
        }
        if (config_set(c, role, name, value, err, errlen) != 0)
            return -1;
        i = last;
    }
    return 0;
}

int config_validate(const config_t *c, config_role_t role, char *err,
                    size_t errlen)
{
    if (log_level_parse(c->log_level) < 0) {
        errf(err, errlen, "log_level: \"%s\" is not debug, info, warn or error",
             c->log_level);
        return -1;
    }
    if (c->broker_router[0] == '\0' || c->broker_pub[0] == '\0') {
        errf(err, errlen, "broker_router and broker_pub must be set");
        return -1;
    }
    if (c->link_timeout_ms <= c->heartbeat_ms) {
        errf(err, errlen,
             "link_timeout (%lld ms) must be longer than "
             "heartbeat (%lld ms)",
             (long long)c->link_timeout_ms, (long long)c->heartbeat_ms);
        return -1;
    }
    if (role == CONFIG_ROLE_GATEWAY) {
        if (c->listen[0] == '\0' && c->tls_listen[0] == '\0') {
            errf(err, errlen,
                 "listen: at least one host:port is needed "
                 "(in listen or tls_listen)");
            return -1;
        }
        if (c->tls_listen[0] != '\0' &&
            (c->tls_cert[0] == '\0' || c->tls_key[0] == '\0')) {
            errf(err, errlen,
                 "tls_listen is set: tls_cert and tls_key are "
                 "required");
            return -1;
        }
        if (c->max_text > c->max_message) {
            errf(err, errlen,
                 "max_text (%lld) cannot exceed max_message "
                 "(%lld)",
                 (long long)c->max_text, (long long)c->max_message);
            return -1;
        }
        if (c->max_request_line > c->max_head) {
            errf(err, errlen,
                 "max_request_line (%lld) cannot exceed "
                 "max_head (%lld)",
                 (long long)c->max_request_line, (long long)c->max_head);
            return -1;
        }
    } else {
        if (strcmp(c->fsync, "always") != 0 &&
            strcmp(c->fsync, "interval") != 0 &&
            strcmp(c->fsync, "never") != 0) {
            errf(err, errlen, "fsync: \"%s\" is not always, interval or never",
                 c->fsync);
            return -1;
        }
    }
    return 0;
}

static void format_value(const config_t *c, const cfg_key_t *k, char *out,
                         size_t cap)
{
    const void *field = (const char *)c + k->offset;
    switch (k->type) {
    case T_STR:
        snprintf(out, cap, "%s", *(char *const *)field);
        break;
    case T_BOOL:
        snprintf(out, cap, "%s", *(const bool *)field ? "yes" : "no");
        break;
    case T_DUR:
        snprintf(out, cap, "%lldms", (long long)*(const int64_t *)field);
        break;
    default:
        snprintf(out, cap, "%lld", (long long)*(const int64_t *)field);
        break;
    }
}

void config_usage(FILE *out, config_role_t role, const char *prog)
{
    fprintf(out,
            "usage: %s [--config FILE] [--KEY VALUE]... [--check-config]\n"
            "       %s --help | --version\n\n"
            "Every key can be set in the configuration file (INI) or on the\n"
            "command line as --key value (dashes or underscores).\n",
            prog, prog);
    const char *section = "";
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const cfg_key_t *k = &keys[i];
        if (!key_for_role(k, role))
            continue;
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(out, "\n[%s]\n", section);
        }
        char opt[64];
        for (size_t j = 0; j <= strlen(k->name); j++)
            opt[j] = k->name[j] == '_' ? '-' : k->name[j];
        fprintf(out, "  --%-18s %s (default: %s)\n", opt, k->help,
                k->def[0] ? k->def : "none");
    }
}

void config_dump(FILE *out, const config_t *c, config_role_t role)
{
    const char *section = "";
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const cfg_key_t *k = &keys[i];
        if (!key_for_role(k, role))
            continue;
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        char v[512];
        format_value(c, k, v, sizeof v);
        fprintf(out, "%s = %s\n", k->name, v);
    }
}
