/*
 * bench.c - parley-bench, the load generator of Parley's benchmarks.
 *
 * Modes:
 *   fanout     N connections over R rooms, P of them publishing at an
 *              open-loop total rate; every received message is checked for
 *              loss, duplication and reordering per publisher, and its
 *              latency taken from the send timestamp it carries.
 *   handshake  connections opened (101 verified) and closed per second,
 *              K in flight.
 *   idle       N connections held open (the caller measures memory).
 * One JSON line on stdout per run; progress on stderr.  See
 * docs/benchmarks.md.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "autoconfig.h"

#define SCRATCH_SIZE 65536
#define EVENTS_MAX 256
#define MARK "~B"
#define HS_TIMEOUT_NS 5000000000ull /* one handshake cycle at most */
#define MAX_QUEUE (64u << 20)       /* publisher queue: give up beyond */

bench_t g;

uint64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "parley-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

/* ---- connections and the event loop ------------------------------------- */

static void watch(bench_conn_t *c)
{
    bool want = wsc_wants_write(&c->ws);
    if (!c->alive || want == c->watch_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(c->t->epfd, EPOLL_CTL_MOD, c->ws.fd, &ev) == 0)
        c->watch_out = want;
}

/* Source address of connection idx: several loopback addresses give
   several ephemeral port ranges. */
static const struct sockaddr_in *source_of(uint32_t idx,
                                           struct sockaddr_in *src)
{
    if (g.o.sources <= 1)
        return NULL;
    memset(src, 0, sizeof(*src));
    src->sin_family = AF_INET;
    src->sin_addr.s_addr = htonl(0x7f000001u + idx % g.o.sources);
    return src;
}

static int conn_open(bench_conn_t *c, uint64_t now)
{
    char path[512];
    struct sockaddr_in src;
    size_t plen = strlen(g.o.path);
    if (g.o.json) /* rooms come from join: "/ws/" is "/ws" */
        snprintf(path, sizeof(path), "%.*s",
                 (int)(plen > 1 && g.o.path[plen - 1] == '/' ? plen - 1 : plen),
                 g.o.path);
    else
        snprintf(path, sizeof(path), "%sb%08x-%u", g.o.path, g.run_id, c->room);
    c->ws.user = c;
    if (wsc_start(&c->ws, &g.o.dst, source_of(c->idx, &src), path, &g.wo))
        return -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(c->t->epfd, EPOLL_CTL_ADD, c->ws.fd, &ev) != 0) {
        wsc_free(&c->ws);
        return -1;
    }
    c->alive = c->watch_out = true;
    c->ready = c->counted = false;
    c->start_ns = now;
    return 0;
}

static void conn_drop(bench_conn_t *c)
{
    if (!c->alive)
        return;
    wsc_free(&c->ws); /* closing the fd removes it from the epoll set */
    c->alive = false;
    if (c->t->pending > 0 && !c->ready)
        c->t->pending--;
}

/* A connection that became usable. */
static void conn_ready(bench_conn_t *c)
{
    c->ready = true;
    c->t->ready++;
    if (c->t->pending > 0)
        c->t->pending--;
}

/* Parses a decimal number at *p (advancing past it and one separator). */
static uint64_t parse_num(const uint8_t **p, const uint8_t *end, int base)
{
    uint64_t v = 0;
    const uint8_t *s = *p;
    for (; s < end; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else
            break;
        v = v * (unsigned)base + d;
    }
    *p = s < end ? s + 1 : s;
    return v;
}

/* Loss, duplicate and reorder accounting of one delivery. */
static void track(bench_thread_t *t, pair_t *pr, uint32_t seq)
{
    if (seq > pr->hi) {
        uint32_t shift = seq - pr->hi;
        pr->window = shift >= 64 ? 0 : pr->window << shift;
        pr->window |= 1;
        pr->hi = seq;
    } else {
        uint32_t d = pr->hi - seq;
        if (d < 64 && (pr->window & (1ull << d))) {
            t->dup++;
            return;
        }
        if (d < 64)
            pr->window |= 1ull << d;
        t->reordered++;
    }
    pr->distinct++;
    t->distinct++;
}

/* A chat line carrying "~B<run>:<pub>:<seq>:<ts>:". */
static void on_mark(bench_thread_t *t, bench_conn_t *c, const uint8_t *p,
                    const uint8_t *end)
{
    uint32_t run = (uint32_t)parse_num(&p, end, 16);
    uint32_t pub = (uint32_t)parse_num(&p, end, 10);
    uint32_t seq = (uint32_t)parse_num(&p, end, 10);
    uint64_t ts = parse_num(&p, end, 10);
    if (run != g.run_id) {
        t->foreign++;
        return;
    }
    if (pub >= g.o.publishers || pub % g.o.rooms != c->room || seq == 0) {
        t->misrouted++;
        return;
    }
    t->rx++;
    uint64_t t0 = atomic_load_explicit(&g.t0, memory_order_relaxed);
    uint64_t wstart = t0 + (uint64_t)(g.o.warmup * 1e9);
    uint64_t wend = wstart + (uint64_t)(g.o.duration * 1e9);
    if (ts >= wstart)
        hist_record(&t->lat, t->now > ts ? (t->now - ts) / 1000 : 0);
    if (t->now >= wstart && t->now < wend)
        t->window_rx++;
    track(t, &c->pairs[pub / g.o.rooms], seq);
}

static void on_msg(wsc_t *ws, const uint8_t *data, size_t len, void *arg)
{
    bench_thread_t *t = arg;
    bench_conn_t *c = ws->user;
    const uint8_t *m = memmem(data, len, MARK, 2);
    if (m != NULL) {
        on_mark(t, c, m + 2, data + len);
        return;
    }
    t->other++;
    if (!c->ready && g.o.json &&
        memmem(data, len, "\"type\":\"joined\"", 15) != NULL)
        conn_ready(c);
}

/* Sends the join of a JSON connection that just opened. */
static void json_join(bench_conn_t *c)
{
    char buf[160];
    int n = snprintf(buf, sizeof(buf),
                     "{\"type\":\"join\",\"room\":\"b%08x-%u\","
                     "\"nick\":\"b%u\"}",
                     g.run_id, c->room, c->idx);
    if (wsc_send(&c->ws, WS_OP_TEXT, buf, (size_t)n) != 0)
        c->t->errors++;
}

/* Handshake mode: a verified 101 starts the closing handshake. */
static void hs_opened(bench_thread_t *t, bench_conn_t *c)
{
    c->counted = true;
    t->hs_ok++;
    hist_record(&t->hs_lat, (t->now - c->start_ns) / 1000);
    uint64_t t0 = atomic_load(&g.t0);
    uint64_t ws = t0 + (uint64_t)(g.o.warmup * 1e9);
    if (t->now >= ws && t->now < ws + (uint64_t)(g.o.duration * 1e9))
        t->hs_window++;
    (void)wsc_close(&c->ws);
}

/* After the connection c read something: state transitions. */
static void after_read(bench_thread_t *t, bench_conn_t *c, int rc)
{
    if (rc == 0 && c->ws.state == WSC_OPEN && !c->ready && !c->counted) {
        if (g.o.mode == MODE_HANDSHAKE)
            hs_opened(t, c);
        else if (g.o.json)
            json_join(c), c->counted = true;
        else
            conn_ready(c);
    }
    if (rc == 0)
        return;
    if (g.o.mode == MODE_HANDSHAKE) {
        if (c->counted && rc > 0)
            t->cycles++;
        else
            t->hs_err++;
    } else if (c->ready) {
        t->closed++;
        unsigned code = c->ws.close_code;
        t->close_codes[code >= 1000 && code < 1016 ? code - 1000 : 0]++;
    } else {
        t->failed++;
    }
    conn_drop(c);
}

static void on_event(bench_thread_t *t, bench_conn_t *c, uint32_t ev)
{
    if (ev & (EPOLLOUT | EPOLLERR)) {
        if (wsc_on_writable(&c->ws) != 0) {
            after_read(t, c, -1);
            return;
        }
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        t->now = bench_now();
        int rc = wsc_on_readable(&c->ws, t->scratch, SCRATCH_SIZE, on_msg, t);
        after_read(t, c, rc);
    }
    if (c->alive)
        watch(c);
}

/* Waits up to timeout_ms for events and handles them. */
static void loop_once(bench_thread_t *t, int timeout_ms)
{
    struct epoll_event evs[EVENTS_MAX];
    int n = epoll_wait(t->epfd, evs, EVENTS_MAX, timeout_ms);
    for (int i = 0; i < n; i++)
        on_event(t, evs[i].data.ptr, evs[i].events);
}

/* A barrier that keeps serving sockets: returns once every thread has
   arrived at barrier k; the last one to arrive runs last_fn first. */
static void meet(bench_thread_t *t, unsigned k, void (*last_fn)(void))
{
    unsigned n = atomic_fetch_add(&g.arrived[k], 1) + 1;
    if (n == g.o.threads) {
        if (last_fn != NULL)
            last_fn();
        atomic_fetch_add(&g.arrived[k], 1);
    }
    while (atomic_load(&g.arrived[k]) <= g.o.threads)
        loop_once(t, 1);
}

/* ---- phases ---------------------------------------------------------------*/

/* Opens this thread's connections, at most inflight/threads at a time,
   until each is ready or failed or the connect deadline passes. */
static void connect_all(bench_thread_t *t)
{
    unsigned limit = g.o.inflight / g.o.threads;
    limit = limit ? limit : 1;
    uint64_t deadline = bench_now() + (uint64_t)(g.o.connect_timeout * 1e9);
    while (t->ready + t->failed < t->n && bench_now() < deadline) {
        while (t->opened < t->n && t->pending < limit) {
            bench_conn_t *c = t->conns[t->opened++];
            if (conn_open(c, bench_now()) != 0) {
                t->failed++;
                continue;
            }
            t->pending++;
        }
        loop_once(t, 5);
    }
    t->failed = t->n - t->ready;
}

static struct rusage ru_t0, ru_w0, ru_w1; /* start, measured window */
static uint64_t ns_w0, ns_w1;

/* Thread 0 samples the process's CPU use (all threads) as the measured
   window opens (last == false, once now reaches wstart) and closes (last),
   so warm-up and drain do not dilute it. */
static void sample_window(bench_thread_t *t, uint64_t now, uint64_t wstart,
                          bool last)
{
    if (t->id != 0)
        return;
    if (ns_w0 == 0 && now >= wstart && !last) {
        getrusage(RUSAGE_SELF, &ru_w0);
        ns_w0 = now;
    } else if (ns_w0 != 0 && last) {
        getrusage(RUSAGE_SELF, &ru_w1);
        ns_w1 = now;
    }
}

/* Run by the last thread to reach the start barrier: the measured part
   (and the CPU use reported) begins. */
static void set_t0(void)
{
    getrusage(RUSAGE_SELF, &ru_t0);
    atomic_store(&g.t0, bench_now());
}

/* Builds message seq of publisher c into t->msg; returns its length. */
static size_t build_msg(bench_thread_t *t, bench_conn_t *c, uint64_t seq,
                        uint64_t now)
{
    char head[96];
    int h =
        snprintf(head, sizeof(head), MARK "%08x:%d:%" PRIu64 ":%" PRIu64 ":",
                 g.run_id, c->pub, seq, now);
    size_t tlen = g.o.size > (unsigned)h ? g.o.size : (size_t)h;
    size_t n = 0;
    if (g.o.json)
        n = (size_t)sprintf(t->msg,
                            "{\"type\":\"say\",\"room\":\"b%08x-%u\","
                            "\"text\":\"",
                            g.run_id, c->room);
    memcpy(t->msg + n, head, (size_t)h);
    memcpy(t->msg + n + h, g.padding, tlen - (size_t)h);
    n += tlen;
    if (g.o.json)
        n += (size_t)sprintf(t->msg + n, "\"}");
    return n;
}

/*
 * Sends what publisher c owes at time now (open loop: the schedule never
 * waits for the server).  Publisher k sends its message n (from 0) at
 * t0 + (n + k/P) / per_pub: the publishers are staggered evenly, so the
 * server sees a smooth stream at the total rate, not P messages at once
 * every 1/per_pub seconds (bursts that would measure the time a server
 * takes to drain a burst instead of its latency).
 */
static void publish(bench_thread_t *t, bench_conn_t *c, uint64_t t0,
                    uint64_t end, uint64_t now)
{
    double per_pub = g.o.rate / g.o.publishers;
    double phase = (double)c->pub / g.o.publishers;
    uint64_t until = now < end ? now : end;
    double x = (double)(until - t0) / 1e9 * per_pub - phase;
    uint64_t due = x < 0 ? 0 : (uint64_t)x + 1;
    while (c->sent < due && c->alive && c->ready) {
        uint64_t sched =
            t0 + (uint64_t)(((double)c->sent + phase) / per_pub * 1e9);
        if (now > sched && now - sched > t->max_lag_ns &&
            sched >= t0 + (uint64_t)(g.o.warmup * 1e9))
            t->max_lag_ns = now - sched;
        size_t n = build_msg(t, c, c->sent + 1, now);
        if (wsc_send(&c->ws, WS_OP_TEXT, t->msg, n) != 0) {
            t->errors++;
            break;
        }
        c->sent++;
        atomic_store_explicit(&g.pub_sent[c->pub], c->sent,
                              memory_order_relaxed);
        size_t q = c->ws.out_len - c->ws.out_off;
        if (q > t->max_queue)
            t->max_queue = q;
        if (q > MAX_QUEUE)
            break; /* the server stopped reading: lag shows it */
    }
    watch(c);
}

static void publish_phase(bench_thread_t *t)
{
    uint64_t t0 = atomic_load(&g.t0);
    uint64_t end = t0 + (uint64_t)((g.o.warmup + g.o.duration) * 1e9);
    for (unsigned i = 0; i < t->n; i++)
        t->conns[i]->at_start = t->conns[i]->ready && t->conns[i]->alive;
    uint64_t wstart = t0 + (uint64_t)(g.o.warmup * 1e9);
    for (uint64_t now = bench_now(); now < end; now = bench_now()) {
        for (unsigned i = 0; i < t->npubs; i++)
            publish(t, t->pubs[i], t0, end, now);
        loop_once(t, 1);
        sample_window(t, now, wstart, false);
    }
    sample_window(t, bench_now(), wstart, true);
}

/* Deliveries this thread's receivers should get (after the sends end). */
static uint64_t expected_of(bench_thread_t *t)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < t->n; i++) {
        bench_conn_t *c = t->conns[i];
        if (!c->at_start)
            continue;
        for (unsigned p = c->room; p < g.o.publishers; p += g.o.rooms)
            sum += atomic_load(&g.pub_sent[p]);
    }
    return sum;
}

static void drain_phase(bench_thread_t *t)
{
    uint64_t want = expected_of(t);
    uint64_t deadline = bench_now() + (uint64_t)(g.o.drain * 1e9);
    while (t->distinct < want && bench_now() < deadline)
        loop_once(t, 5);
}

/* Handshake mode: keeps the slots busy until the end. */
static void handshake_phase(bench_thread_t *t)
{
    uint64_t t0 = atomic_load(&g.t0);
    uint64_t end = t0 + (uint64_t)((g.o.warmup + g.o.duration) * 1e9);
    uint64_t next_scan = 0;
    for (uint64_t now = bench_now(); now < end; now = bench_now()) {
        for (unsigned i = 0; i < t->n; i++) {
            bench_conn_t *c = t->conns[i];
            if (c->alive && now - c->start_ns > HS_TIMEOUT_NS &&
                now > next_scan) {
                t->hs_timeout++;
                conn_drop(c);
            }
            if (!c->alive && conn_open(c, now) != 0)
                t->hs_err++;
        }
        if (now > next_scan)
            next_scan = now + 100000000ull;
        loop_once(t, 1);
        sample_window(t, now, t0 + (uint64_t)(g.o.warmup * 1e9), false);
    }
    sample_window(t, bench_now(), t0 + (uint64_t)(g.o.warmup * 1e9), true);
}

static void hold_phase(bench_thread_t *t)
{
    uint64_t end = atomic_load(&g.t0) + (uint64_t)(g.o.duration * 1e9);
    while (bench_now() < end)
        loop_once(t, 50);
}

static void announce_ready(void)
{
    unsigned ready = 0;
    for (unsigned i = 0; i < g.o.threads; i++)
        ready += g.threads[i].ready;
    fprintf(stderr, "READY %u\n", ready);
    fflush(stderr);
    set_t0();
}

static void *thread_main(void *arg)
{
    bench_thread_t *t = arg;
    if (g.o.mode != MODE_HANDSHAKE)
        connect_all(t);
    meet(t, 0, g.o.mode == MODE_IDLE ? announce_ready : set_t0);
    if (g.o.mode == MODE_FANOUT) {
        publish_phase(t);
        meet(t, 1, NULL);
        drain_phase(t);
    } else if (g.o.mode == MODE_HANDSHAKE) {
        handshake_phase(t);
    } else {
        hold_phase(t);
    }
    return NULL;
}

/* ---- options ------------------------------------------------------------- */

static void usage(void)
{
    printf(
        "usage: parley-bench --mode fanout|handshake|idle --url "
        "ws://HOST:PORT/ws/ [options]\n\n"
        "  --conns N          connections (fanout, idle; default 1000)\n"
        "  --rooms R          rooms; connection i is in room i %% R (1)\n"
        "  --publishers P     publishers: connections 0..P-1 (1)\n"
        "  --rate M           messages per second, all publishers (100)\n"
        "  --size B           text bytes per message (64)\n"
        "  --duration S       measured seconds (5); idle: hold time\n"
        "  --warmup S         seconds before measuring (1)\n"
        "  --drain S          longest wait for late messages (2)\n"
        "  --json             parley.v1 mode (join/say) instead of plain\n"
        "  --deflate          offer permessage-deflate\n"
        "  --threads T        load threads, one epoll set each (1)\n"
        "  --inflight K       connects in flight (256; handshake: 64)\n"
        "  --sources K        loopback source addresses 127.0.0.1..K (auto)\n"
        "  --connect-timeout S  (60)\n"
        "  --label TEXT       copied into the JSON result\n\n"
        "Prints one JSON line.  Plain mode sends to URL + \"b<run>-<room>\";\n"
        "every text carries \"~B<run>:<publisher>:<seq>:<send ns>:\".\n");
}

static void parse_url(const char *url)
{
    if (strncmp(url, "ws://", 5) != 0)
        die("only ws:// URLs: %s", url);
    const char *h = url + 5, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof(g.o.host))
        die("bad URL %s", url);
    memcpy(g.o.host, h, hl);
    g.o.host[hl] = '\0';
    snprintf(g.o.path, sizeof(g.o.path), "%s", slash ? slash : "/");
    char *colon = strrchr(g.o.host, ':');
    char ip[256];
    snprintf(ip, sizeof(ip), "%.*s", colon ? (int)(colon - g.o.host) : (int)hl,
             g.o.host);
    g.o.dst.sin_family = AF_INET;
    g.o.dst.sin_port = htons(colon ? (uint16_t)atoi(colon + 1) : 80);
    if (strcmp(ip, "localhost") == 0)
        snprintf(ip, sizeof(ip), "127.0.0.1");
    if (inet_pton(AF_INET, ip, &g.o.dst.sin_addr) != 1)
        die("need an IPv4 address in %s", url);
}

static double num_arg(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || v < 0)
        die("bad number: %s", s);
    return v;
}

static void set_mode(const char *m)
{
    if (strcmp(m, "fanout") == 0)
        g.o.mode = MODE_FANOUT;
    else if (strcmp(m, "handshake") == 0)
        g.o.mode = MODE_HANDSHAKE;
    else if (strcmp(m, "idle") == 0)
        g.o.mode = MODE_IDLE;
    else
        die("unknown mode %s", m);
}

static void defaults(void)
{
    g.o.mode = MODE_FANOUT;
    g.o.conns = 1000;
    g.o.rooms = g.o.publishers = g.o.threads = 1;
    g.o.rate = 100;
    g.o.size = 64;
    g.o.duration = 5;
    g.o.warmup = 1;
    g.o.drain = 2;
    g.o.connect_timeout = 60;
    g.o.label = "";
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"mode", 1, 0, 'm'},       {"url", 1, 0, 'u'},
        {"conns", 1, 0, 'n'},      {"rooms", 1, 0, 'r'},
        {"publishers", 1, 0, 'p'}, {"rate", 1, 0, 'R'},
        {"size", 1, 0, 's'},       {"duration", 1, 0, 'd'},
        {"warmup", 1, 0, 'w'},     {"drain", 1, 0, 'D'},
        {"json", 0, 0, 'j'},       {"deflate", 0, 0, 'z'},
        {"threads", 1, 0, 't'},    {"inflight", 1, 0, 'k'},
        {"sources", 1, 0, 'S'},    {"connect-timeout", 1, 0, 'T'},
        {"label", 1, 0, 'l'},      {"help", 0, 0, 'h'},
        {"version", 0, 0, 'V'},    {0, 0, 0, 0}};
    const char *url = NULL;
    int ch;
    defaults();
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            set_mode(optarg);
            break;
        case 'u':
            url = optarg;
            break;
        case 'n':
            g.o.conns = (unsigned)num_arg(optarg);
            break;
        case 'r':
            g.o.rooms = (unsigned)num_arg(optarg);
            break;
        case 'p':
            g.o.publishers = (unsigned)num_arg(optarg);
            break;
        case 'R':
            g.o.rate = num_arg(optarg);
            break;
        case 's':
            g.o.size = (unsigned)num_arg(optarg);
            break;
        case 'd':
            g.o.duration = num_arg(optarg);
            break;
        case 'w':
            g.o.warmup = num_arg(optarg);
            break;
        case 'D':
            g.o.drain = num_arg(optarg);
            break;
        case 'j':
            g.o.json = true;
            break;
        case 'z':
            g.o.deflate = true;
            break;
        case 't':
            g.o.threads = (unsigned)num_arg(optarg);
            break;
        case 'k':
            g.o.inflight = (unsigned)num_arg(optarg);
            break;
        case 'S':
            g.o.sources = (unsigned)num_arg(optarg);
            break;
        case 'T':
            g.o.connect_timeout = num_arg(optarg);
            break;
        case 'l':
            g.o.label = optarg;
            break;
        case 'h':
            usage();
            exit(0);
        case 'V':
            printf("parley-bench %s\n", PACKAGE_VERSION);
            exit(0);
        default:
            usage();
            exit(2);
        }
    }
    if (url == NULL)
        die("%s", "--url is required (see --help)");
    parse_url(url);
}

static void check_opts(void)
{
    bench_opts_t *o = &g.o;
    if (o->mode == MODE_HANDSHAKE) {
        o->inflight = o->inflight ? o->inflight : 64;
        o->conns = o->inflight;
        o->publishers = 0;
    } else {
        o->inflight = o->inflight ? o->inflight : 256;
    }
    if (o->mode == MODE_IDLE)
        o->publishers = 0;
    if (o->conns == 0 || o->rooms == 0 || o->rooms > o->conns ||
        o->publishers > o->conns || o->threads == 0 || o->threads > 64 ||
        o->threads > o->conns || o->size > (1u << 24) ||
        (o->mode == MODE_FANOUT && (o->publishers == 0 || o->rate <= 0)))
        die("%s", "inconsistent options (see --help)");
    if (o->sources == 0) {
        bool loop = (ntohl(o->dst.sin_addr.s_addr) >> 24) == 127;
        unsigned want = o->mode == MODE_HANDSHAKE ? 8 : o->conns / 20000 + 1;
        o->sources = loop ? want : 1;
    }
}

/* ---- setup and results --------------------------------------------------- */

static void raise_nofile(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_max < need) {
        struct rlimit want = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            return;
    }
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        fprintf(stderr, "parley-bench: RLIMIT_NOFILE %lu < %lu needed\n",
                (unsigned long)rl.rlim_cur, (unsigned long)need);
}

/* Text-like filler: lowercase words and spaces (compressible about like
   chat, and JSON-safe). */
static char *make_padding(size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        die("%s", "out of memory");
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (x % 6 == 0) ? ' ' : (char)('a' + (x >> 8) % 16);
    }
    p[n] = '\0';
    return p;
}

static void setup(void)
{
    g.run_id = (uint32_t)(bench_now() ^ ((uint64_t)getpid() << 16));
    g.ppr = g.o.publishers ? (g.o.publishers + g.o.rooms - 1) / g.o.rooms : 0;
    g.wo = (wsc_opts_t){.host = g.o.host,
                        .protocol = g.o.json ? "parley.v1" : NULL,
                        .deflate = g.o.deflate,
                        .max_message = (size_t)g.o.size * 2 + 65536};
    g.padding = make_padding(g.o.size);
    g.conns = calloc(g.o.conns, sizeof(*g.conns));
    g.threads = calloc(g.o.threads, sizeof(*g.threads));
    g.pub_sent = calloc(g.o.publishers + 1, sizeof(*g.pub_sent));
    pair_t *pairs =
        calloc((size_t)g.o.conns * (g.ppr ? g.ppr : 1), sizeof(pair_t));
    if (!g.conns || !g.threads || !g.pub_sent || !pairs)
        die("%s", "out of memory");
    for (unsigned i = 0; i < g.o.conns; i++) {
        bench_conn_t *c = &g.conns[i];
        c->idx = i;
        c->room = i % g.o.rooms;
        c->pub = i < g.o.publishers ? (int32_t)i : -1;
        c->pairs = pairs + (size_t)i * g.ppr;
        c->ws.fd = -1;
        c->ws.rng = 0x9e3779b9u * (i + 1) ^ g.run_id;
    }
}

static void setup_threads(void)
{
    for (unsigned k = 0; k < g.o.threads; k++) {
        bench_thread_t *t = &g.threads[k];
        t->id = k;
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->conns = calloc(g.o.conns / g.o.threads + 1, sizeof(*t->conns));
        t->pubs = calloc(g.o.publishers / g.o.threads + 1, sizeof(*t->pubs));
        t->scratch = malloc(SCRATCH_SIZE);
        t->msg = malloc((size_t)g.o.size + 256);
        if (t->epfd < 0 || !t->conns || !t->pubs || !t->scratch || !t->msg)
            die("%s", "cannot set up a thread");
        hist_init(&t->lat);
        hist_init(&t->hs_lat);
    }
    for (unsigned i = 0; i < g.o.conns; i++) {
        bench_thread_t *t = &g.threads[i % g.o.threads];
        g.conns[i].t = t;
        t->conns[t->n++] = &g.conns[i];
        if (g.conns[i].pub >= 0)
            t->pubs[t->npubs++] = &g.conns[i];
    }
}

/* Sum of a thread counter over every thread. */
#define SUM(field)                                                             \
    ({                                                                         \
        uint64_t s_ = 0;                                                       \
        for (unsigned k_ = 0; k_ < g.o.threads; k_++)                          \
            s_ += g.threads[k_].field;                                         \
        s_;                                                                    \
    })
#define MAXOF(field)                                                           \
    ({                                                                         \
        uint64_t m_ = 0;                                                       \
        for (unsigned k_ = 0; k_ < g.o.threads; k_++)                          \
            if (g.threads[k_].field > m_)                                      \
                m_ = g.threads[k_].field;                                      \
        m_;                                                                    \
    })

static void print_hist(const char *name, const hist_t *h)
{
    printf("\"%s\":{\"count\":%" PRIu64 ",\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
           ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "}",
           name, h->total, hist_percentile(h, 50), hist_percentile(h, 90),
           hist_percentile(h, 99), hist_percentile(h, 99.9), h->max);
}

static void print_cpu(const struct rusage *a, const struct rusage *b,
                      double wall)
{
    double u = (double)(b->ru_utime.tv_sec - a->ru_utime.tv_sec) +
               (double)(b->ru_utime.tv_usec - a->ru_utime.tv_usec) / 1e6;
    double s = (double)(b->ru_stime.tv_sec - a->ru_stime.tv_sec) +
               (double)(b->ru_stime.tv_usec - a->ru_stime.tv_usec) / 1e6;
    printf("\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_pct\":%.1f,"
           "\"max_rss_kib\":%ld",
           u, s, wall > 0 ? (u + s) / wall * 100 : 0, b->ru_maxrss);
}

static void print_fanout(void)
{
    hist_t lat;
    hist_init(&lat);
    uint64_t expected = 0, sent = 0;
    for (unsigned k = 0; k < g.o.threads; k++) {
        hist_merge(&lat, &g.threads[k].lat);
        expected += expected_of(&g.threads[k]);
    }
    for (unsigned p = 0; p < g.o.publishers; p++)
        sent += atomic_load(&g.pub_sent[p]);
    uint64_t distinct = SUM(distinct);
    printf("\"rate\":%.1f,\"size\":%u,\"sent\":%" PRIu64
           ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64
           ",\"lost\":%" PRIu64 ",\"dup\":%" PRIu64 ",\"reordered\":%" PRIu64
           ",\"foreign\":%" PRIu64 ",\"misrouted\":%" PRIu64
           ",\"closed\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"deliveries_per_s\":%.0f,\"max_send_lag_ms\":%.1f,"
           "\"max_send_queue\":%" PRIu64 ",",
           g.o.rate, g.o.size, sent, expected, distinct,
           expected > distinct ? expected - distinct : 0, SUM(dup),
           SUM(reordered), SUM(foreign), SUM(misrouted), SUM(closed),
           SUM(errors), (double)SUM(window_rx) / g.o.duration,
           (double)MAXOF(max_lag_ns) / 1e6, MAXOF(max_queue));
    print_hist("latency_us", &lat);
    printf(",\"close_codes\":{");
    const char *sep = "";
    for (unsigned i = 0; i < 16; i++) {
        uint64_t n = 0;
        for (unsigned k = 0; k < g.o.threads; k++)
            n += g.threads[k].close_codes[i];
        if (n > 0) {
            printf("%s\"%u\":%" PRIu64, sep, i ? 1000 + i : 0, n);
            sep = ",";
        }
    }
    printf("},");
}

static void print_handshake(void)
{
    hist_t lat;
    hist_init(&lat);
    for (unsigned k = 0; k < g.o.threads; k++)
        hist_merge(&lat, &g.threads[k].hs_lat);
    printf("\"handshakes\":%" PRIu64 ",\"cycles\":%" PRIu64
           ",\"handshakes_per_s\":%.0f,\"errors\":%" PRIu64
           ",\"timeouts\":%" PRIu64 ",",
           SUM(hs_ok), SUM(cycles), (double)SUM(hs_window) / g.o.duration,
           SUM(hs_err), SUM(hs_timeout));
    print_hist("handshake_us", &lat);
    printf(",");
}

static void print_result(const struct rusage *ru0, const struct rusage *ru1,
                         double wall)
{
    static const char *names[] = {"fanout", "handshake", "idle"};
    printf("{\"mode\":\"%s\",\"label\":\"%s\",\"url\":\"ws://%s%s\","
           "\"json\":%s,\"deflate\":%s,\"threads\":%u,\"conns\":%u,"
           "\"connected\":%" PRIu64 ",\"connect_failed\":%" PRIu64
           ",\"rooms\":%u,\"publishers\":%u,\"inflight\":%u,"
           "\"duration\":%.1f,\"warmup\":%.1f,",
           names[g.o.mode], g.o.label, g.o.host, g.o.path,
           g.o.json ? "true" : "false", g.o.deflate ? "true" : "false",
           g.o.threads, g.o.conns, SUM(ready), SUM(failed), g.o.rooms,
           g.o.publishers, g.o.inflight, g.o.duration, g.o.warmup);
    if (g.o.mode == MODE_FANOUT)
        print_fanout();
    else if (g.o.mode == MODE_HANDSHAKE)
        print_handshake();
    print_cpu(ru0, ru1, wall);
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    check_opts();
    raise_nofile((rlim_t)g.o.conns + 1024);
    setup();
    setup_threads();
    for (unsigned k = 1; k < g.o.threads; k++)
        if (pthread_create(&g.threads[k].tid, NULL, thread_main,
                           &g.threads[k]) != 0)
            die("%s", "pthread_create failed");
    struct rusage ru1;
    thread_main(&g.threads[0]);
    for (unsigned k = 1; k < g.o.threads; k++)
        pthread_join(g.threads[k].tid, NULL);
    getrusage(RUSAGE_SELF, &ru1);
    if (ns_w1 > ns_w0 && ns_w0 != 0)
        print_result(&ru_w0, &ru_w1, (double)(ns_w1 - ns_w0) / 1e9);
    else
        print_result(&ru_t0, &ru1, (double)(bench_now() - g.t0) / 1e9);
    return 0;
}
