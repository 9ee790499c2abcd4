/*
 * main.c - parley-gateway: reads the configuration, binds the listening
 * sockets, maps the shared statistics, then becomes the master (workers >
 * 0, or -1 for one per CPU) or the single worker (workers = 0, for running
 * several gateways under a supervisor with reuseport).
 *
 * Exit status: 0 clean, 1 configuration or usage error (a TLS certificate
 * or key that cannot be used, started as root without user), 2 fatal
 * error.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "autoconfig.h"
#include "config.h"
#include "gateway.h"
#include "guard.h"
#include "log.h"
#include "master.h"
#include "privs.h"
#include "tls.h"
#include "worker.h"

#define PROG "parley-gateway"

/* The --config argument, for the reload log line; NULL when none. */
static const char *find_config_path(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    return NULL;
}

static int resolve_workers(const config_t *cfg)
{
    if (cfg->workers >= 0)
        return (int)cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > GW_MAX_WORKERS ? GW_MAX_WORKERS : (int)n;
}

/* Parses the command line; returns -1 to go on, or an exit status. */
static int read_config(gateway_t *gw, int argc, char **argv)
{
    char err[512];
    int flags = 0;
    if (config_parse_args(&gw->cfg, CONFIG_ROLE_GATEWAY, argc, argv, &flags,
                          err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\nTry '" PROG " --help'.\n", err);
        return 1;
    }
    if (flags & CONFIG_FLAG_HELP) {
        config_usage(stdout, CONFIG_ROLE_GATEWAY, PROG);
        return 0;
    }
    if (flags & CONFIG_FLAG_VERSION) {
        printf(PROG " %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (config_validate(&gw->cfg, CONFIG_ROLE_GATEWAY, err, sizeof err) != 0 ||
        (gw->cfg.listen[0] != '\0' &&
         master_check_listen(gw->cfg.listen, err, sizeof err) < 0) ||
        master_check_tls_listen(gw->cfg.tls_listen, err, sizeof err) < 0 ||
        guard_origins_check(gw->cfg.allowed_origins, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    if (log_level_parse(gw->cfg.log_level) < 0) {
        fprintf(stderr, PROG ": unknown log_level '%s'\n", gw->cfg.log_level);
        return 1;
    }
    if (flags & CONFIG_FLAG_CHECK) {
        config_dump(stdout, &gw->cfg, CONFIG_ROLE_GATEWAY);
        return 0;
    }
    return -1;
}

static int map_stats(gateway_t *gw)
{
    gw->nslots = gw->nworkers > 0 ? 2 * (size_t)gw->nworkers : 1;
    void *p = mmap(NULL, gw->nslots * sizeof(gw_stats_t),
                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        log_error("stats_mmap_failed", "slots=%zu", gw->nslots);
        return -1;
    }
    gw->stats = p; /* zero-filled */
    return 0;
}

/* A startup failure: logged, and also shown on the terminal when the log
 * goes to a file.  Returns status. */
static int fail(const gateway_t *gw, const char *event, const char *err,
                int status)
{
    log_error(event, "error=\"%s\"", err);
    if (strcmp(gw->cfg.log_file, "-") != 0)
        fprintf(stderr, PROG ": %s\n", err);
    return status;
}

/* Binds the sockets and reads the TLS key with the privileges we started
 * with, then drops them (privs.h).  Returns -1 to go on, or an exit
 * status. */
static int privileged_setup(gateway_t *gw)
{
    char err[512];
    privs_t privs;
    if (privs_plan(&privs, gw->cfg.user, gw->cfg.allow_root, err, sizeof err) !=
        0)
        return fail(gw, "startup_refused", err, 1);
    if (master_listen(gw, err, sizeof err) != 0)
        return fail(gw, "listen_failed", err, 2);
    if (gw->cfg.tls_listen[0] != '\0') {
        gw->tls_ctx = tls_ctx_new(&gw->cfg, err, sizeof err);
        if (gw->tls_ctx == NULL)
            return fail(gw, "tls_failed", err, 1);
    }
    if (map_stats(gw) != 0)
        return 2;
    if (privs_drop(&privs, err, sizeof err) != 0)
        return fail(gw, "privileges_failed", err, 2);
    return -1;
}

int main(int argc, char **argv)
{
    static gateway_t gw;
    log_init("gateway", LOG_INFO);
    if (config_init(&gw.cfg) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return 2;
    }
    int rc = read_config(&gw, argc, argv);
    if (rc >= 0)
        return rc;
    log_set_level((log_level_t)log_level_parse(gw.cfg.log_level));
    if (log_open(gw.cfg.log_file) != 0) {
        fprintf(stderr, PROG ": cannot open log file '%s'\n", gw.cfg.log_file);
        return 2;
    }
    gw.argc = argc;
    gw.argv = argv;
    gw.config_path = find_config_path(argc, argv);
    gw.nworkers = resolve_workers(&gw.cfg);
    signal(SIGPIPE, SIG_IGN);
    rc = privileged_setup(&gw);
    if (rc >= 0)
        return rc;
    log_info("gateway_started", "version=%s workers=%d", PACKAGE_VERSION,
             gw.nworkers);
    if (gw.nworkers == 0)
        return worker_run(&gw, 0);
    return master_run(&gw);
}
