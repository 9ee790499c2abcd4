/*
 * master.h - the gateway's master process (nginx model): it binds the
 * listening sockets, forks the workers, and then only supervises them:
 * signal handlers set flags, the master sleeps in sigsuspend(), reaps,
 * respawns, reloads and stops.  It never runs an event loop and never
 * touches client traffic.
 *
 * Statistics slots: gw->nslots = 2 * workers.  Worker i runs in slot i or
 * slot i + workers; on a reload its replacement takes the other one, so the
 * old and the new worker of the same index both have a slot while the old
 * one drains.  Counters of both slots are summed by /metrics.
 */
#ifndef PARLEY_MASTER_H
#define PARLEY_MASTER_H

#include <stddef.h>

#include "gateway.h"

#define MASTER_HOST_MAX 256
#define MASTER_PORT_MAX 8

/*
 * Splits one listen address item[0..len) into host and port: "host:port",
 * "[v6addr]:port", ":port" or "*:port" (host "" = every IPv4 address).
 * The port must be a number from 0 to 65535 (0: any free port).  Returns
 * 0, or -1 with a reason in err.  Pure.
 */
int master_split_listen(const char *item, size_t len, char *host,
                        size_t hostcap, char *port, size_t portcap, char *err,
                        size_t errlen);

/* Checks the syntax of a comma-separated listen list (for --check-config)
 * without binding.  Returns the number of addresses, or -1 with err. */
int master_check_listen(const char *list, char *err, size_t errlen);

/* The same for tls_listen (an empty list is fine: no TLS).  Returns the
 * number of addresses, or -1 with err. */
int master_check_tls_listen(const char *list, char *err, size_t errlen);

/*
 * Binds and listens on every address of gw->cfg.listen, then of
 * gw->cfg.tls_listen (gw->listen_tls marks those) (SO_REUSEADDR,
 * SO_REUSEPORT when cfg.reuseport, IPV6_V6ONLY on IPv6, non-blocking,
 * close-on-exec; backlog from cfg) into gw->listen_fds and
 * gw->listen_names, and logs the address actually bound.  Returns 0, or -1
 * with a message in err (sockets bound so far are closed).
 */
int master_listen(gateway_t *gw, char *err, size_t errlen);

/*
 * Runs the master until SIGTERM, SIGINT or SIGQUIT and the workers' exit.
 * Forks gw->nworkers workers.  Returns the process exit status: 0 after a
 * clean stop, 2 when every worker exited with the fatal status 2.
 */
int master_run(gateway_t *gw);

#endif
