/*
 * main.c - parley-broker: configuration, logging, signals, then the loop
 * of broker.c until SIGTERM or SIGINT.
 */
#include "autoconfig.h" /* autoconf's: PACKAGE_VERSION (common/config.h is
                           Parley's configuration, a different file) */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "config.h"
#include "log.h"
#include "privs.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGTERM/SIGINT ask the loop to stop (no SA_RESTART, so a blocking
 * zmq_poll returns EINTR at once); SIGPIPE is ignored. */
static int setup_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* Handles --help, --version and --check-config; returns the exit code, or
 * -1 to go on and run. */
static int handle_flags(const config_t *c, int flags, const char *prog)
{
    char err[512];
    if (flags & CONFIG_FLAG_HELP) {
        config_usage(stdout, CONFIG_ROLE_BROKER, prog);
        return 0;
    }
    if (flags & CONFIG_FLAG_VERSION) {
        printf("parley-broker " PACKAGE_VERSION "\n");
        return 0;
    }
    if (config_validate(c, CONFIG_ROLE_BROKER, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    if (flags & CONFIG_FLAG_CHECK) {
        config_dump(stdout, c, CONFIG_ROLE_BROKER);
        return 0;
    }
    return -1;
}

static int run(const config_t *c)
{
    char err[512];
    log_init("broker", (log_level_t)log_level_parse(c->log_level));
    if (log_open(c->log_file) < 0) {
        fprintf(stderr, "parley-broker: log_file %s: %s\n", c->log_file,
                strerror(errno));
        return 1;
    }
    if (setup_signals() < 0) {
        log_error("startup_failed", "reason=\"sigaction: %s\"",
                  strerror(errno));
        return 1;
    }
    privs_t privs;
    if (privs_plan(&privs, c->user, c->allow_root, err, sizeof err) != 0) {
        log_error("startup_refused", "reason=\"%s\"", err);
        return 1;
    }
    broker_t *b = broker_new(c, err, sizeof err);
    if (b == NULL) {
        log_error("startup_failed", "reason=\"%s\"", err);
        return 1;
    }
    /* the sockets are bound and the journal open: no more root */
    if (privs_drop(&privs, err, sizeof err) != 0) {
        log_error("startup_failed", "reason=\"%s\"", err);
        broker_free(b);
        return 1;
    }
    int rc = broker_run(b, &stop_requested);
    broker_free(b);
    log_info("broker_stop", "reason=%s", rc == 0 ? "signal" : "error");
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    config_t c;
    char err[512];
    int flags = 0;
    if (config_init(&c) != 0) {
        fprintf(stderr, "parley-broker: out of memory\n");
        return 1;
    }
    if (config_parse_args(&c, CONFIG_ROLE_BROKER, argc, argv, &flags, err,
                          sizeof err) != 0) {
        fprintf(stderr, "parley-broker: %s (try --help)\n", err);
        config_free(&c);
        return 1;
    }
    int rc = handle_flags(&c, flags, argv[0]);
    if (rc < 0)
        rc = run(&c);
    config_free(&c);
    return rc;
}
