/*
 * master.c - listening sockets, and the supervision of the workers.
 *
 * Signals: SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP and SIGALRM (our
 * timer) stay blocked except inside sigsuspend(); their handlers only set
 * flags, and the loop acts on the flags.
 *
 *   SIGTERM, SIGQUIT  forward SIGTERM (clients get 1012, "restarting");
 *   SIGINT            forward SIGINT (clients get 1001, "shutting down");
 *                     then wait for the workers, at most drain_timeout +
 *                     STOP_MARGIN_MS, SIGKILL the rest, exit 0.
 *   SIGHUP            re-read the configuration (the same command line:
 *                     --config file, then the overrides; on error the old
 *                     one stays), then replace the workers one at a time:
 *                     fork the new one in the index's other slot, SIGTERM
 *                     the old one as soon as the new one's broker link
 *                     is up (read from its statistics slot; at most
 *                     link_timeout + STOP_MARGIN_MS), wait until the old
 *                     one exits (bounded, then SIGKILL), next.  If the new
 *                     worker dies first, the old one stays.  The
 *                     listening sockets stay open here all along, so no
 *                     connection attempt is refused.
 *                     The TLS certificate and key are read again (new
 *                     workers get them; on error the old ones stay).
 *                     listen, tls_listen, user, workers, backlog and
 *                     reuseport need a restart.
 *
 * A worker that exits is respawned into its index, at once if it ran for a
 * second or more, else after a backoff doubling from 500 ms to 5 s; one
 * that exits with status 2 (fatal configuration) is not respawned.
 */
#include "master.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard.h"
#include "log.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

#define STOP_MARGIN_MS 2000
#define QUICK_DEATH_MS 1000
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 5000
#define READY_POLL_MS 50

/* ---- listening sockets -------------------------------------------------- */

int master_split_listen(const char *item, size_t len, char *host,
                        size_t hostcap, char *port, size_t portcap, char *err,
                        size_t errlen)
{
    const char *colon;
    size_t hlen;
    const char *h = item;
    if (len > 0 && item[0] == '[') {
        const char *close = memchr(item, ']', len);
        if (close == NULL || close + 1 == item + len || close[1] != ':') {
            snprintf(err, errlen,
                     "listen: bad IPv6 address '%.*s' (want "
                     "[addr]:port)",
                     (int)len, item);
            return -1;
        }
        h = item + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = memrchr(item, ':', len);
        if (colon == NULL || memchr(item, ':', (size_t)(colon - item))) {
            snprintf(err, errlen,
                     "listen: '%.*s' is not host:port (IPv6 "
                     "addresses go in brackets)",
                     (int)len, item);
            return -1;
        }
        hlen = (size_t)(colon - item);
        if (hlen == 1 && item[0] == '*')
            hlen = 0;
    }
    size_t plen = len - (size_t)(colon + 1 - item);
    uint64_t pnum;
    if (util_parse_u64(colon + 1, plen, &pnum) != 0 || pnum > 65535 ||
        hlen >= hostcap || plen >= portcap) {
        snprintf(err, errlen, "listen: bad port or host in '%.*s'", (int)len,
                 item);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, colon + 1, plen);
    port[plen] = '\0';
    return 0;
}

/* Calls fn on each trimmed, non-empty item of the comma-separated list;
 * stops at the first failure.  Returns the item count or -1. */
static int each_listen(const char *list, char *err, size_t errlen,
                       int (*fn)(const char *host, const char *port, void *arg,
                                 char *err, size_t errlen),
                       void *arg)
{
    char host[MASTER_HOST_MAX], port[MASTER_PORT_MAX];
    int n = 0;
    const char *p = list;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *s = p, *e = p + len;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            if (master_split_listen(s, (size_t)(e - s), host, sizeof host, port,
                                    sizeof port, err, errlen) != 0 ||
                (fn != NULL && fn(host, port, arg, err, errlen) != 0))
                return -1;
            n++;
        }
        p += len + (p[len] == ',');
    }
    if (n == 0) {
        snprintf(err, errlen, "listen: no address given");
        return -1;
    }
    if (n > GW_MAX_LISTENERS) {
        snprintf(err, errlen, "listen: at most %d addresses", GW_MAX_LISTENERS);
        return -1;
    }
    return n;
}

int master_check_listen(const char *list, char *err, size_t errlen)
{
    return each_listen(list ? list : "", err, errlen, NULL, NULL);
}

static int set_opt(int fd, int level, int name, int on)
{
    return setsockopt(fd, level, name, &on, sizeof on);
}

/* "ip:port" of the bound socket fd, for the log. */
static void bound_name(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char h[NI_MAXHOST], s[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, s, sizeof s,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, s);
}

/* Creates one listening socket for ai.  Returns the fd or -1 (errno). */
static int listen_socket(const gateway_t *gw, const struct addrinfo *ai)
{
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0 ||
        (gw->cfg.reuseport && set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0) ||
        (ai->ai_family == AF_INET6 &&
         set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, (int)gw->cfg.backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

struct bind_arg {
    gateway_t *gw;
    bool tls;
};

static int bind_one(const char *host, const char *port, void *arg, char *err,
                    size_t errlen)
{
    const struct bind_arg *ba = arg;
    gateway_t *gw = ba->gw;
    if (gw->num_listeners >= GW_MAX_LISTENERS) {
        snprintf(err, errlen,
                 "listen: at most %d addresses in listen and "
                 "tls_listen together",
                 GW_MAX_LISTENERS);
        return -1;
    }
    struct addrinfo hints = {.ai_family = host[0] ? AF_UNSPEC : AF_INET,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "listen: cannot resolve '%s': %s", host,
                 gai_strerror(rc));
        return -1;
    }
    int fd = listen_socket(gw, ai);
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "listen: cannot listen on %s%s%s:%s: %s",
                 strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "", port, strerror(errno));
        return -1;
    }
    size_t i = gw->num_listeners++;
    gw->listen_fds[i] = fd;
    gw->listen_tls[i] = ba->tls;
    bound_name(fd, gw->listen_names[i], sizeof gw->listen_names[i]);
    log_info("listening", "addr=%s fd=%d tls=%s", gw->listen_names[i], fd,
             ba->tls ? "yes" : "no");
    return 0;
}

/* Messages of each_listen() name the key "listen"; for tls_listen, say so. */
static void relabel_tls(char *err, size_t errlen)
{
    char tmp[512];
    if (strncmp(err, "listen", 6) != 0)
        return;
    snprintf(tmp, sizeof tmp, "tls_%s", err);
    snprintf(err, errlen, "%s", tmp);
}

int master_check_tls_listen(const char *list, char *err, size_t errlen)
{
    if (list == NULL || list[0] == '\0')
        return 0;
    int n = each_listen(list, err, errlen, NULL, NULL);
    if (n < 0)
        relabel_tls(err, errlen);
    return n;
}

int master_listen(gateway_t *gw, char *err, size_t errlen)
{
    struct bind_arg plain = {gw, false}, tls = {gw, true};
    const char *pl = gw->cfg.listen ? gw->cfg.listen : "";
    const char *tl = gw->cfg.tls_listen ? gw->cfg.tls_listen : "";
    int rc = 0;
    gw->num_listeners = 0;
    if (pl[0] != '\0')
        rc = each_listen(pl, err, errlen, bind_one, &plain);
    if (rc >= 0 && tl[0] != '\0') {
        rc = each_listen(tl, err, errlen, bind_one, &tls);
        if (rc < 0)
            relabel_tls(err, errlen);
    }
    if (rc < 0) {
        for (size_t i = 0; i < gw->num_listeners; i++)
            close(gw->listen_fds[i]);
        gw->num_listeners = 0;
        return -1;
    }
    return 0;
}

/* ---- supervision ------------------------------------------------------------
 */

typedef struct {
    pid_t pid; /* 0: not running */
    int slot;
    uint64_t started_ms;
    uint64_t respawn_at; /* 0: no respawn pending */
    int quick_deaths;    /* consecutive exits within QUICK_DEATH_MS */
    bool fatal;          /* exited with 2: never respawned */
} mworker_t;

typedef struct {
    pid_t pid; /* 0: free entry */
    int slot;
    uint64_t kill_at; /* SIGKILL if still running then */
    bool termed;      /* SIGTERM sent (kill_at is set) */
    bool killed;
} retiree_t;

typedef struct {
    gateway_t *gw;
    int n;
    mworker_t w[GW_MAX_WORKERS];
    retiree_t old[GW_MAX_WORKERS];
    int reload_next;  /* next index to replace; -1: no reload */
    int reload_ready; /* index whose new worker is starting; -1 */
    uint64_t ready_deadline;
    pid_t reload_wait; /* old worker being waited for */
    bool stopping;
    uint64_t stop_deadline;
    bool stop_killed;
    sigset_t child_mask; /* the mask main() started with */
} master_t;

static volatile sig_atomic_t got_chld, got_term, got_int, got_quit, got_hup,
    got_alrm;

static void on_signal(int sig)
{
    switch (sig) {
    case SIGCHLD:
        got_chld = 1;
        break;
    case SIGTERM:
        got_term = 1;
        break;
    case SIGINT:
        got_int = 1;
        break;
    case SIGQUIT:
        got_quit = 1;
        break;
    case SIGHUP:
        got_hup = 1;
        break;
    case SIGALRM:
        got_alrm = 1;
        break;
    default:
        break;
    }
}

static const int handled[] = {SIGCHLD, SIGTERM, SIGINT,
                              SIGQUIT, SIGHUP,  SIGALRM};

static void install_signals(master_t *m)
{
    sigset_t block;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    for (size_t i = 0; i < ARRAY_SIZE(handled); i++) {
        sigaddset(&block, handled[i]);
        sigaction(handled[i], &sa, NULL);
    }
    sigprocmask(SIG_BLOCK, &block, &m->child_mask);
}

/* In a new child: back to the default dispositions and the original mask
 * (children inherit both), die with the master, run the worker. */
static void child_main(master_t *m, int slot, pid_t master_pid)
{
    for (size_t i = 0; i < ARRAY_SIZE(handled); i++)
        signal(handled[i], SIG_DFL);
    sigprocmask(SIG_SETMASK, &m->child_mask, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid)
        _exit(0);
    _exit(worker_run(m->gw, slot));
}

static void slot_reset(gateway_t *gw, int slot)
{
    gw_stats_t *st = &gw->stats[slot];
    STAT_SET(st, pid, 0);
    STAT_SET(st, conns_open, 0);
    STAT_SET(st, ws_plain_open, 0);
    STAT_SET(st, ws_json_open, 0);
    STAT_SET(st, broker_link_up, 0);
}

static bool slot_busy(const master_t *m, int slot)
{
    for (int i = 0; i < m->n; i++)
        if ((m->w[i].pid != 0 && m->w[i].slot == slot) ||
            (m->old[i].pid != 0 && m->old[i].slot == slot))
            return true;
    return false;
}

/* A free slot for index i (i or i + n), or -1. */
static int free_slot(const master_t *m, int i)
{
    if (!slot_busy(m, i))
        return i;
    if (!slot_busy(m, i + m->n))
        return i + m->n;
    return -1;
}

static int spawn(master_t *m, int i)
{
    int slot = free_slot(m, i);
    if (slot < 0)
        return -1;
    slot_reset(m->gw, slot);
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("worker_fork_failed", "worker=%d error=\"%s\"", i,
                  strerror(errno));
        return -1;
    }
    if (pid == 0)
        child_main(m, slot, self);
    m->w[i].pid = pid;
    m->w[i].slot = slot;
    m->w[i].started_ms = util_mono_ms();
    m->w[i].respawn_at = 0;
    log_info("worker_spawned", "worker=%d slot=%d pid=%ld", i, slot, (long)pid);
    return 0;
}

static void spawn_or_retry(master_t *m, int i)
{
    if (spawn(m, i) != 0)
        m->w[i].respawn_at = util_mono_ms() + BACKOFF_MAX_MS;
}

static void describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exit=%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "signal=%d", WTERMSIG(status));
    else
        snprintf(out, cap, "status=%d", status);
}

/* Worker i exited: decide whether and when it comes back. */
static void worker_exited(master_t *m, int i, int status, const char *desc)
{
    mworker_t *w = &m->w[i];
    uint64_t now = util_mono_ms();
    bool quick = now - w->started_ms < QUICK_DEATH_MS;
    log_info("worker_exited", "worker=%d slot=%d pid=%ld %s", i, w->slot,
             (long)w->pid, desc);
    slot_reset(m->gw, w->slot);
    w->pid = 0;
    if (m->stopping)
        return;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
        w->fatal = true;
        log_error("worker_fatal", "worker=%d not respawned", i);
        return;
    }
    w->quick_deaths = quick ? w->quick_deaths + 1 : 0;
    uint64_t delay = 0;
    if (w->quick_deaths > 1) {
        delay = BACKOFF_FIRST_MS
                << (w->quick_deaths > 6 ? 5 : w->quick_deaths - 2);
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
    }
    w->respawn_at = now + delay;
    log_info("worker_respawn", "worker=%d delay_ms=%llu", i,
             (unsigned long long)delay);
}

static void child_exited(master_t *m, pid_t pid, int status)
{
    char desc[32];
    describe_status(status, desc, sizeof desc);
    for (int i = 0; i < m->n; i++) {
        if (m->w[i].pid == pid) {
            worker_exited(m, i, status, desc);
            return;
        }
        if (m->old[i].pid == pid) {
            log_info("worker_retired", "slot=%d pid=%ld %s", m->old[i].slot,
                     (long)pid, desc);
            slot_reset(m->gw, m->old[i].slot);
            m->old[i].pid = 0;
            if (m->reload_wait == pid)
                m->reload_wait = 0;
            return;
        }
    }
    log_warn("unknown_child_exited", "pid=%ld %s", (long)pid, desc);
}

static void reap(master_t *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        child_exited(m, pid, status);
}

static void signal_all(master_t *m, int sig)
{
    for (int i = 0; i < m->n; i++) {
        if (m->w[i].pid != 0)
            kill(m->w[i].pid, sig);
        if (m->old[i].pid != 0)
            kill(m->old[i].pid, sig);
    }
}

static bool any_alive(const master_t *m)
{
    for (int i = 0; i < m->n; i++)
        if (m->w[i].pid != 0 || m->old[i].pid != 0)
            return true;
    return false;
}

static void begin_stop(master_t *m, int fwd)
{
    if (m->stopping)
        return;
    log_info("master_stopping", "forward_signal=%d", fwd);
    m->stopping = true;
    m->reload_next = -1;
    m->reload_ready = -1;
    m->stop_deadline =
        util_mono_ms() + (uint64_t)m->gw->cfg.drain_timeout_ms + STOP_MARGIN_MS;
    signal_all(m, fwd);
}

/* Re-reads the configuration into a fresh config_t; keys that only take
 * effect at start keep their running values.  0, or -1 (old one kept). */
static int reload_config(gateway_t *gw)
{
    config_t fresh;
    char err[512];
    int flags = 0;
    if (config_init(&fresh) != 0)
        return -1;
    if (config_parse_args(&fresh, CONFIG_ROLE_GATEWAY, gw->argc, gw->argv,
                          &flags, err, sizeof err) != 0 ||
        config_validate(&fresh, CONFIG_ROLE_GATEWAY, err, sizeof err) != 0 ||
        guard_origins_check(fresh.allowed_origins, err, sizeof err) != 0) {
        log_error("reload_failed", "error=\"%s\"", err);
        config_free(&fresh);
        return -1;
    }
    if (strcmp(fresh.listen, gw->cfg.listen) != 0 ||
        strcmp(fresh.tls_listen, gw->cfg.tls_listen) != 0 ||
        strcmp(fresh.user, gw->cfg.user) != 0 ||
        fresh.workers != gw->cfg.workers || fresh.backlog != gw->cfg.backlog ||
        fresh.reuseport != gw->cfg.reuseport)
        log_warn("reload_needs_restart",
                 "keys=\"listen tls_listen user workers backlog "
                 "reuseport\" (running values kept)");
    char *listen = fresh.listen;
    fresh.listen = gw->cfg.listen;
    gw->cfg.listen = listen; /* freed with the old configuration */
    listen = fresh.tls_listen;
    fresh.tls_listen = gw->cfg.tls_listen;
    gw->cfg.tls_listen = listen;
    listen = fresh.user;
    fresh.user = gw->cfg.user;
    gw->cfg.user = listen;
    fresh.workers = gw->cfg.workers;
    fresh.backlog = gw->cfg.backlog;
    fresh.reuseport = gw->cfg.reuseport;
    config_free(&gw->cfg);
    gw->cfg = fresh;
    int level = log_level_parse(gw->cfg.log_level);
    if (level >= 0)
        log_set_level((log_level_t)level);
    if (log_open(gw->cfg.log_file) != 0)
        log_error("log_reopen_failed", "path=\"%s\"", gw->cfg.log_file);
    return 0;
}

/* Re-reads the certificate and key for the workers forked from now on;
 * on failure the running context stays (a reload never stops TLS). */
static void reload_tls(gateway_t *gw)
{
    char err[512];
    if (gw->tls_ctx == NULL)
        return;
    struct ssl_ctx_st *ctx = tls_ctx_new(&gw->cfg, err, sizeof err);
    if (ctx == NULL) {
        log_error("tls_reload_failed",
                  "error=\"%s\" (the running certificate stays)", err);
        return;
    }
    tls_ctx_free(gw->tls_ctx);
    gw->tls_ctx = ctx;
    log_info("tls_reloaded", "cert=\"%s\"", gw->cfg.tls_cert);
}

static void begin_reload(master_t *m)
{
    log_info("master_reload", "config=\"%s\"",
             m->gw->config_path ? m->gw->config_path : "(command line)");
    if (reload_config(m->gw) == 0)
        reload_tls(m->gw);
    m->reload_next = 0; /* a pass in progress starts over */
}

/* The new worker of index i is ready to take over: its broker link is up
 * (read from its statistics slot), it died, or the wait timed out. */
static bool new_worker_ready(const master_t *m, int i, uint64_t now)
{
    const mworker_t *w = &m->w[i];
    return w->pid == 0 || now >= m->ready_deadline ||
           atomic_load_explicit(&m->gw->stats[w->slot].broker_link_up,
                                memory_order_relaxed) != 0;
}

/* Stops the old worker of index i (parked in m->old[i]) once its
 * replacement is ready.  Returns when to look again (0: not waiting). */
static uint64_t retire_when_ready(master_t *m, uint64_t now)
{
    int i = m->reload_ready;
    if (!new_worker_ready(m, i, now))
        return now + READY_POLL_MS;
    retiree_t *r = &m->old[i];
    mworker_t *w = &m->w[i];
    m->reload_ready = -1;
    if (r->pid == 0)
        return 0;      /* the old one exited by itself meanwhile */
    if (w->pid == 0) { /* the new one died: the old one stays in service */
        log_warn("worker_replace_failed", "worker=%d kept_pid=%ld", i,
                 (long)r->pid);
        memset(w, 0, sizeof *w);
        w->pid = r->pid;
        w->slot = r->slot;
        w->started_ms = now;
        memset(r, 0, sizeof *r);
        return 0;
    }
    r->termed = true;
    r->kill_at = now + (uint64_t)m->gw->cfg.drain_timeout_ms + STOP_MARGIN_MS;
    kill(r->pid, SIGTERM);
    m->reload_wait = r->pid;
    log_info("worker_replacing", "worker=%d old_pid=%ld new_pid=%ld", i,
             (long)r->pid, (long)m->w[i].pid);
    return 0;
}

/* Forks the replacement of index i; the old worker is parked in m->old[i]
 * (it keeps serving) until retire_when_ready().  0, or -1 to retry. */
static int replace_worker(master_t *m, int i, uint64_t now)
{
    mworker_t prev = m->w[i];
    if (m->old[i].pid != 0 || spawn(m, i) != 0)
        return -1;
    retiree_t *r = &m->old[i];
    memset(r, 0, sizeof *r);
    r->pid = prev.pid;
    r->slot = prev.slot;
    m->reload_ready = i;
    m->ready_deadline =
        now + (uint64_t)m->gw->cfg.link_timeout_ms + STOP_MARGIN_MS;
    return 0;
}

/* Advances a reload: one index at a time, fork the new worker, wait until
 * it is ready, SIGTERM the old one, wait until it exited.  Returns when to
 * look again (0: a signal will wake us). */
static uint64_t reload_step(master_t *m)
{
    uint64_t now = util_mono_ms();
    while (m->reload_next >= 0) {
        if (m->reload_ready >= 0) {
            uint64_t again = retire_when_ready(m, now);
            if (again != 0)
                return again;
        }
        if (m->reload_wait != 0)
            return 0; /* SIGCHLD, or the kill timer, moves us on */
        if (m->reload_next >= m->n) {
            log_info("master_reload_done", "workers=%d", m->n);
            m->reload_next = -1;
            return 0;
        }
        int i = m->reload_next;
        if (m->w[i].pid != 0 && replace_worker(m, i, now) != 0)
            return now + BACKOFF_MAX_MS; /* no free slot or fork failed */
        m->reload_next++; /* a dead index respawns with the new config */
    }
    return 0;
}

/* Due respawns and kills; returns the next deadline (0: none). */
static uint64_t run_timers(master_t *m)
{
    uint64_t now = util_mono_ms(), next = 0;
#define NEXT(t) (next = (next == 0 || (t) < next) ? (t) : next)
    for (int i = 0; i < m->n; i++) {
        mworker_t *w = &m->w[i];
        retiree_t *r = &m->old[i];
        if (!m->stopping && w->pid == 0 && !w->fatal && w->respawn_at != 0) {
            if (w->respawn_at <= now)
                spawn_or_retry(m, i);
            if (w->respawn_at != 0)
                NEXT(w->respawn_at);
        }
        if (r->pid != 0 && r->termed && !r->killed) {
            if (r->kill_at <= now) {
                log_warn("worker_kill", "pid=%ld reason=drain_timeout",
                         (long)r->pid);
                kill(r->pid, SIGKILL);
                r->killed = true;
            } else {
                NEXT(r->kill_at);
            }
        }
    }
    if (m->stopping && !m->stop_killed) {
        if (m->stop_deadline <= now) {
            log_warn("master_kill_workers", "reason=drain_timeout");
            signal_all(m, SIGKILL);
            m->stop_killed = true;
        } else {
            NEXT(m->stop_deadline);
        }
    }
#undef NEXT
    return next;
}

static void arm_alarm(uint64_t deadline)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    if (deadline != 0) {
        uint64_t now = util_mono_ms();
        uint64_t ms = deadline > now ? deadline - now : 1;
        it.it_value.tv_sec = (time_t)(ms / 1000);
        it.it_value.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    }
    setitimer(ITIMER_REAL, &it, NULL);
}

/* Acts on the flags the handlers set (signals are blocked here). */
static void handle_flags(master_t *m)
{
    if (got_chld) {
        got_chld = 0;
        reap(m);
    }
    if (got_term || got_quit) {
        got_term = got_quit = 0;
        begin_stop(m, SIGTERM);
    }
    if (got_int) {
        got_int = 0;
        begin_stop(m, SIGINT);
    }
    if (got_hup) {
        got_hup = 0;
        if (!m->stopping)
            begin_reload(m);
    }
    got_alrm = 0;
}

static bool all_fatal(const master_t *m)
{
    for (int i = 0; i < m->n; i++)
        if (!m->w[i].fatal)
            return false;
    return true;
}

int master_run(gateway_t *gw)
{
    static master_t m;
    memset(&m, 0, sizeof m);
    m.gw = gw;
    m.n = gw->nworkers;
    m.reload_next = -1;
    m.reload_ready = -1;
    install_signals(&m);
    log_info("master_started", "workers=%d slots=%zu", m.n, gw->nslots);
    for (int i = 0; i < m.n; i++)
        spawn_or_retry(&m, i);
    for (;;) {
        handle_flags(&m);
        if (!any_alive(&m) && (m.stopping || all_fatal(&m)))
            break;
        uint64_t t1 = m.stopping ? 0 : reload_step(&m);
        uint64_t t2 = run_timers(&m);
        arm_alarm(t1 == 0 || (t2 != 0 && t2 < t1) ? t2 : t1);
        if (!got_chld && !got_term && !got_int && !got_quit && !got_hup &&
            !got_alrm)
            sigsuspend(&m.child_mask);
    }
    arm_alarm(0);
    int rc = m.stopping ? 0 : 2;
    log_info("master_exit", "status=%d", rc);
    return rc;
}
