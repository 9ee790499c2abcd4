/*
 * broker.c - the broker's ZeroMQ loop (docs/wire.md, "The broker's side").
 *
 * One thread, two sockets: requests arrive on the ROUTER (first frame: the
 * sender's routing id, which is its node id), replies go back through it,
 * and everything every gateway must see goes out on the PUB, stamped with
 * gseq.  gseq counts published MSG and PRESENCE messages (each carries the
 * new value); HEARTBEAT, WELCOME and PONG carry the current value without
 * counting, so a gateway that saw gseq N and hears a heartbeat with a
 * larger one knows it lost something.
 *
 * The hot path (SAY) decodes frames in place, sequences into the store
 * (whose history ring reuses its memory) and sends from stack buffers with
 * zmq_send, which copies: nothing is allocated per message here.
 */
#include "broker.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "journal.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#define MAX_FRAMES 16   /* a request has at most 6 */
#define POLL_MAX_MS 250 /* how long a stop request may go unnoticed */
#define PUB_HWM 100000
#define ROUTER_HWM 10000
#define LINGER_MS 200
#define MAX_IN_FRAME (WIRE_MAX_TEXT + 4096)

struct broker {
    void *ctx, *router, *pub;
    store_t *store;
    journal_t *journal; /* NULL when history lives in memory only */
    char boot[STORE_EPOCH_LEN + 1];
    uint64_t gseq;
    uint64_t sequenced; /* messages sequenced since the start */
    uint64_t heartbeat_ms, link_timeout_ms;
    uint64_t next_beat;
    /* the request being handled */
    zmq_msg_t frames[MAX_FRAMES];
    size_t nframes;
    bool delimiter; /* the sender put an empty frame after its id: echo it */
    store_node_t *node;
    /* ipc:// socket files bound, removed at exit (ZeroMQ leaves them) */
    char *ipc_paths[2];
};

/* ---- small helpers ----------------------------------------------------- */

static wire_buf_t buf(const void *p, size_t len)
{
    return (wire_buf_t){.p = p, .len = len};
}

static wire_buf_t cstr(const char *s)
{
    return buf(s, strlen(s));
}

/* A printable copy of a routing id or string for logs (ids may be
 * binary: ZeroMQ's generated ones start with a zero byte). */
static const char *printable(const void *p, size_t len, char *out, size_t cap)
{
    const uint8_t *s = p;
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] > 0x20 && s[i] < 0x7f && s[i] != '"' ? (char)s[i] : '?';
    out[n] = '\0';
    return out;
}

static const char *node_name(const store_node_t *n, char *out, size_t cap)
{
    size_t len;
    const uint8_t *id = store_node_id(n, &len);
    return printable(id, len, out, cap);
}

/* ---- sending ----------------------------------------------------------- */

static int send_frame(void *sock, wire_buf_t f, bool more)
{
    int flags = ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0);
    for (;;) {
        if (zmq_send(sock, f.p, f.len, flags) >= 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* Sends m's header and string frames; more: items follow. */
static int send_msg(void *sock, const wire_msg_t *m, bool more)
{
    uint8_t hdr[WIRE_HDR_LEN];
    wire_buf_t fr[1 + WIRE_MAX_FIELDS];
    int n = wire_encode(m, hdr, fr, ARRAY_SIZE(fr));
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (send_frame(sock, fr[i], more || i < n - 1) < 0)
            return -1;
    return 0;
}

/* Starts a reply to the current sender: its routing id (and delimiter). */
static int reply_begin(broker_t *b)
{
    const zmq_msg_t *id = &b->frames[0];
    wire_buf_t f = buf(zmq_msg_data((zmq_msg_t *)id), zmq_msg_size(id));
    if (send_frame(b->router, f, true) < 0)
        return -1;
    if (b->delimiter && send_frame(b->router, buf("", 0), true) < 0)
        return -1;
    return 0;
}

static void reply_failed(broker_t *b, uint8_t type)
{
    char id[80];
    int e = errno;
    log_info("reply_dropped", "node=%s type=%s error=\"%s\"",
             node_name(b->node, id, sizeof id), wire_type_name(type),
             zmq_strerror(e));
}

/* Sends a reply without items to the current sender. */
static void reply(broker_t *b, const wire_msg_t *m)
{
    if (reply_begin(b) < 0 || send_msg(b->router, m, false) < 0)
        reply_failed(b, m->type);
}

static void reply_error(broker_t *b, uint64_t conn, wire_buf_t ref,
                        const char *code, const char *text)
{
    wire_msg_t m = {.type = WIRE_ERROR,
                    .conn = conn,
                    .ref = ref,
                    .nick = cstr(code),
                    .text = cstr(text)};
    char id[80];
    log_warn("request_refused", "node=%s conn=%llu code=%s reason=\"%s\"",
             node_name(b->node, id, sizeof id), (unsigned long long)conn, code,
             text);
    reply(b, &m);
}

static void reply_welcome(broker_t *b, uint8_t type)
{
    wire_msg_t m = {.type = type, .boot = cstr(b->boot), .gseq = b->gseq};
    reply(b, &m);
}

/* Publishes m to every gateway; MSG and PRESENCE count in gseq. */
static void publish(broker_t *b, wire_msg_t *m)
{
    if (m->type != WIRE_HEARTBEAT)
        m->gseq = ++b->gseq;
    else
        m->gseq = b->gseq;
    if (send_msg(b->pub, m, false) < 0)
        log_error("publish_failed", "type=%s gseq=%llu error=\"%s\"",
                  wire_type_name(m->type), (unsigned long long)m->gseq,
                  zmq_strerror(errno));
}

static void publish_presence(broker_t *b, const store_room_t *r,
                             const store_node_t *n, uint64_t conn,
                             const char *nick, size_t nick_len, size_t members,
                             bool leave)
{
    size_t id_len, room_len;
    const uint8_t *id = store_node_id(n, &id_len);
    const char *room = store_room_name(r, &room_len);
    wire_msg_t m = {.type = WIRE_PRESENCE,
                    .room = buf(room, room_len),
                    .nick = buf(nick, nick_len),
                    .node = buf(id, id_len),
                    .conn = conn,
                    .members = (uint32_t)members,
                    .flags = leave ? WIRE_F_LEAVE : 0};
    publish(b, &m);
}

/* store_leave_fn: a member removed with its node. */
static void on_member_gone(void *arg, const store_room_t *r,
                           const store_node_t *n, uint64_t conn,
                           const char *nick, size_t nick_len, size_t members)
{
    publish_presence(arg, r, n, conn, nick, nick_len, members, true);
}

/* ---- replays ----------------------------------------------------------- */

/* Sends the items first..last of r's history; the last frame ends the
 * message. */
static int send_items(broker_t *b, const store_room_t *r,
                      const store_replay_t *p)
{
    const history_t *h = store_room_history(r);
    for (uint64_t s = p->first; p->count > 0 && s <= p->last; s++) {
        const history_entry_t *e = history_get(h, s);
        uint8_t ih[WIRE_ITEM_HDR_LEN];
        if (e == NULL)
            return -1; /* cannot happen: the plan covers held entries */
        wire_item_header(e->seq, e->ts, ih);
        bool last = s == p->last;
        if (send_frame(b->router, buf(ih, sizeof ih), true) < 0 ||
            send_frame(b->router, buf(e->nick, e->nick_len), true) < 0 ||
            send_frame(b->router, buf(e->text, e->text_len), !last) < 0)
            return -1;
    }
    return 0;
}

/* Answers JOINED or HISTORY: header fields, then the planned items. */
static void reply_replay(broker_t *b, uint8_t type, uint64_t conn,
                         const store_room_t *r, const store_replay_t *p)
{
    size_t room_len;
    const char *room = store_room_name(r, &room_len);
    wire_msg_t m = {.type = type,
                    .conn = conn,
                    .room = buf(room, room_len),
                    .epoch = cstr(store_room_epoch(r)),
                    .seq = store_room_seq(r),
                    .members = (uint32_t)store_room_members(r),
                    .flags = p->recovered ? WIRE_F_RECOVERED : 0};
    if (reply_begin(b) < 0 || send_msg(b->router, &m, p->count > 0) < 0 ||
        send_items(b, r, p) < 0)
        reply_failed(b, type);
}

/* ---- requests ---------------------------------------------------------- */

/* The room of a request, created if needed; NULL after an ERROR reply. */
static store_room_t *open_room(broker_t *b, const wire_msg_t *m, bool answer)
{
    store_room_t *r =
        store_room_open(b->store, (const char *)m->room.p, m->room.len);
    if (r == NULL && answer)
        reply_error(b, m->conn, m->ref, "unavailable",
                    errno == ENOSPC ? "too many rooms" : "out of memory");
    else if (r == NULL)
        log_warn("room_refused", "reason=\"%s\"",
                 errno == ENOSPC ? "too many rooms" : "out of memory");
    return r;
}

/* Appends a sequenced message to the room's journal file.  A failure is
 * logged and the message still goes out: only its durability is lost. */
static void journal_say(broker_t *b, const store_room_t *r, const wire_msg_t *m,
                        uint64_t seq, uint64_t ts)
{
    if (b->journal == NULL)
        return;
    size_t len;
    const char *name = store_room_name(r, &len);
    const char *epoch = store_room_epoch(r);
    journal_room_t *jr = journal_room(b->journal, name, len);
    if (jr == NULL || journal_append(b->journal, jr, epoch, strlen(epoch), seq,
                                     ts, (const char *)m->nick.p, m->nick.len,
                                     (const char *)m->text.p, m->text.len) != 0)
        log_error("journal_write_failed", "room=%s seq=%llu error=\"%s\"", name,
                  (unsigned long long)seq, strerror(errno));
}

static void handle_say(broker_t *b, const wire_msg_t *m)
{
    bool ack = !(m->flags & WIRE_F_NOACK);
    store_room_t *r = open_room(b, m, ack);
    if (r == NULL)
        return;
    uint64_t ts = util_wall_ms(), seq;
    if (store_say(r, ts, (const char *)m->nick.p, m->nick.len,
                  (const char *)m->text.p, m->text.len, &seq) < 0) {
        if (ack)
            reply_error(b, m->conn, m->ref, "unavailable", "out of memory");
        else
            log_error("say_failed", "reason=\"out of memory\"");
        return;
    }
    b->sequenced++;
    journal_say(b, r, m, seq, ts);
    wire_msg_t out = {.type = WIRE_MSG,
                      .room = m->room,
                      .epoch = cstr(store_room_epoch(r)),
                      .nick = m->nick,
                      .text = m->text,
                      .seq = seq,
                      .ts = ts};
    publish(b, &out);
    if (ack) {
        wire_msg_t a = {.type = WIRE_ACK,
                        .conn = m->conn,
                        .room = m->room,
                        .ref = m->ref,
                        .seq = seq};
        reply(b, &a);
    }
}

static void join_presence(broker_t *b, const store_room_t *r,
                          const wire_msg_t *m, int rc, const char *old)
{
    size_t count = store_room_members(r);
    if (rc == STORE_JOIN_RENAMED)
        publish_presence(b, r, b->node, m->conn, old, strlen(old), count - 1,
                         true);
    publish_presence(b, r, b->node, m->conn, (const char *)m->nick.p,
                     m->nick.len, count, false);
}

static void handle_join(broker_t *b, const wire_msg_t *m)
{
    store_room_t *r = open_room(b, m, true);
    if (r == NULL)
        return;
    char old[STORE_MAX_NICK + 1];
    int rc = store_join(b->store, r, b->node, m->conn, (const char *)m->nick.p,
                        m->nick.len, old);
    if (rc < 0) {
        reply_error(b, m->conn, m->ref,
                    m->nick.len == 0 ? "nick_invalid" : "unavailable",
                    m->nick.len == 0 ? "empty nick" : "out of memory");
        return;
    }
    if (rc != STORE_JOIN_SAME && !(m->flags & WIRE_F_SILENT))
        join_presence(b, r, m, rc, old);
    /* A join with since but no epoch trusts since: the epoch is taken as
     * matching, as for HIST. */
    const char *epoch = (const char *)m->epoch.p;
    size_t epoch_len = m->epoch.len;
    if (epoch_len == 0) {
        epoch = store_room_epoch(r);
        epoch_len = strlen(epoch);
    }
    store_replay_t p;
    store_replay_plan(r, m->flags & WIRE_F_HAS_SINCE, m->since, epoch,
                      epoch_len, m->limit, &p);
    log_debug("join",
              "room=%.*s conn=%llu members=%zu replay=%zu "
              "recovered=%d",
              (int)m->room.len, (const char *)m->room.p,
              (unsigned long long)m->conn, store_room_members(r), p.count,
              p.recovered);
    reply_replay(b, WIRE_JOINED, m->conn, r, &p);
}

static void handle_leave(broker_t *b, const wire_msg_t *m)
{
    store_room_t *r =
        store_room_find(b->store, (const char *)m->room.p, m->room.len);
    char nick[STORE_MAX_NICK + 1];
    if (r == NULL || store_leave(b->store, r, b->node, m->conn, nick) == 0)
        return;
    if (!(m->flags & WIRE_F_SILENT))
        publish_presence(b, r, b->node, m->conn, nick, strlen(nick),
                         store_room_members(r), true);
}

static void handle_hist(broker_t *b, const wire_msg_t *m)
{
    store_room_t *r = open_room(b, m, true);
    if (r == NULL)
        return;
    bool has_since = (m->flags & WIRE_F_HAS_SINCE) || m->since > 0;
    store_replay_t p;
    store_replay_plan(r, has_since, m->since, NULL, 0, m->limit, &p);
    reply_replay(b, WIRE_HISTORY, m->conn, r, &p);
}

static int nick_cmp(const void *a, const void *b)
{
    const wire_buf_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c != 0)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* WHO_REPLY lists every member's nick, sorted (a nick used by two
 * connections appears twice). */
static void handle_who(broker_t *b, const wire_msg_t *m)
{
    store_room_t *r =
        store_room_find(b->store, (const char *)m->room.p, m->room.len);
    size_t n = r == NULL ? 0 : store_room_members(r);
    wire_buf_t *nicks = n == 0 ? NULL : malloc(n * sizeof *nicks);
    if (n > 0 && nicks == NULL) {
        reply_error(b, m->conn, m->ref, "unavailable", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *nick = store_room_member_nick(r, i, &nicks[i].len);
        nicks[i].p = (const uint8_t *)nick;
    }
    if (n > 1)
        qsort(nicks, n, sizeof *nicks, nick_cmp);
    wire_msg_t w = {.type = WIRE_WHO_REPLY,
                    .conn = m->conn,
                    .room = m->room,
                    .ref = m->ref};
    bool ok = reply_begin(b) == 0 && send_msg(b->router, &w, n > 0) == 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = send_frame(b->router, nicks[i], i + 1 < n) == 0;
    if (!ok)
        reply_failed(b, WIRE_WHO_REPLY);
    free(nicks);
}

static void handle_hello(broker_t *b, const wire_msg_t *m)
{
    char id[80], name[80];
    log_info("node_hello", "node=%s name=%s members=%zu",
             node_name(b->node, id, sizeof id),
             printable(m->node.p, m->node.len, name, sizeof name),
             store_node_members(b->node));
    reply_welcome(b, WIRE_WELCOME);
}

static void handle_bye(broker_t *b)
{
    char id[80];
    node_name(b->node, id, sizeof id);
    size_t gone = store_node_remove(b->store, b->node, on_member_gone, b);
    b->node = NULL;
    log_info("node_bye", "node=%s members=%zu", id, gone);
}

static void dispatch(broker_t *b, const wire_msg_t *m)
{
    switch (m->type) {
    case WIRE_HELLO:
        handle_hello(b, m);
        break;
    case WIRE_PING:
        reply_welcome(b, WIRE_PONG);
        break;
    case WIRE_JOIN:
        handle_join(b, m);
        break;
    case WIRE_SAY:
        handle_say(b, m);
        break;
    case WIRE_LEAVE:
        handle_leave(b, m);
        break;
    case WIRE_WHO:
        handle_who(b, m);
        break;
    case WIRE_HIST:
        handle_hist(b, m);
        break;
    case WIRE_BYE:
        handle_bye(b);
        break;
    default: {
        char id[80];
        log_warn("bad_request", "node=%s reason=\"not a request: %s\"",
                 node_name(b->node, id, sizeof id), wire_type_name(m->type));
    }
    }
}

/* ---- receiving --------------------------------------------------------- */

/*
 * Finds (or registers) the sender of the current request.  An unknown node
 * sending anything but HELLO is told WELCOME first, so it re-registers its
 * members (the broker restarted, or expired it).  Returns 0, or -1 when the
 * request must be dropped.
 */
static int identify(broker_t *b, uint8_t type, uint64_t now)
{
    const void *id = zmq_msg_data(&b->frames[0]);
    size_t len = zmq_msg_size(&b->frames[0]);
    char name[80];
    b->node = store_node_find(b->store, id, len);
    if (b->node != NULL) {
        store_node_touch(b->node, now);
        return 0;
    }
    if (len == 0 || len > WIRE_MAX_NODE) {
        log_warn("bad_request", "node=%s reason=\"node id of %zu bytes\"",
                 printable(id, len, name, sizeof name), len);
        return -1;
    }
    b->node = store_node_add(b->store, id, len, now);
    if (b->node == NULL) {
        log_error("node_refused", "reason=\"out of memory\"");
        return -1;
    }
    if (type != WIRE_HELLO && type != WIRE_BYE) {
        log_info("node_unknown", "node=%s type=%s",
                 printable(id, len, name, sizeof name), wire_type_name(type));
        reply_welcome(b, WIRE_WELCOME);
    }
    return 0;
}

static void handle_request(broker_t *b, uint64_t now)
{
    size_t start = 1;
    b->delimiter = false;
    if (b->nframes > 2 && zmq_msg_size(&b->frames[1]) == 0) {
        b->delimiter = true;
        start = 2;
    }
    wire_buf_t fr[MAX_FRAMES];
    for (size_t i = start; i < b->nframes; i++)
        fr[i - start] =
            buf(zmq_msg_data(&b->frames[i]), zmq_msg_size(&b->frames[i]));
    wire_msg_t m;
    const char *err;
    char id[80];
    if (b->nframes <= start ||
        wire_decode(fr, b->nframes - start, &m, &err) < 0) {
        log_warn("bad_request", "node=%s reason=\"%s\"",
                 printable(zmq_msg_data(&b->frames[0]),
                           zmq_msg_size(&b->frames[0]), id, sizeof id),
                 b->nframes <= start ? "no frames" : err);
        return;
    }
    if (identify(b, m.type, now) == 0)
        dispatch(b, &m);
}

static void close_frames(broker_t *b)
{
    for (size_t i = 0; i < b->nframes; i++)
        zmq_msg_close(&b->frames[i]);
    b->nframes = 0;
}

/*
 * Receives one whole multipart message into b->frames (the frames past
 * MAX_FRAMES are read and dropped).  Returns 1 with a message, 0 when none
 * is waiting, -1 on a fatal error.
 */
static int recv_request(broker_t *b, bool *truncated)
{
    *truncated = false;
    zmq_msg_t extra;
    for (;;) {
        zmq_msg_t *f =
            b->nframes < MAX_FRAMES ? &b->frames[b->nframes] : &extra;
        zmq_msg_init(f);
        if (zmq_msg_recv(f, b->router, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(f);
            if (e == EINTR && b->nframes > 0)
                continue; /* the rest of a message is already here */
            errno = e;
            return b->nframes > 0 ? -1 : (e == EAGAIN || e == EINTR) ? 0 : -1;
        }
        bool more = zmq_msg_more(f);
        if (f == &extra) {
            zmq_msg_close(f);
            *truncated = true;
        } else {
            b->nframes++;
        }
        if (!more)
            return 1;
    }
}

/* Handles up to BROKER_BATCH waiting requests.  Returns -1 on a fatal
 * error. */
static int drain(broker_t *b)
{
    for (int i = 0; i < BROKER_BATCH; i++) {
        bool truncated;
        int rc = recv_request(b, &truncated);
        if (rc <= 0) {
            close_frames(b);
            if (rc < 0)
                log_error("recv_failed", "error=\"%s\"", zmq_strerror(errno));
            return rc;
        }
        if (truncated)
            log_warn("bad_request", "reason=\"more than %d frames\"",
                     MAX_FRAMES);
        else
            handle_request(b, util_mono_ms());
        close_frames(b);
    }
    return 0;
}

/* ---- timers ------------------------------------------------------------ */

static void on_node_expired(void *arg, const store_node_t *n)
{
    char id[80];
    (void)arg;
    log_info("node_expired", "node=%s members=%zu", node_name(n, id, sizeof id),
             store_node_members(n));
}

static void heartbeat(broker_t *b, uint64_t now)
{
    /* The broker's figures ride on the heartbeat, so every gateway's
     * /metrics can show them (docs/wire.md). */
    wire_msg_t m = {
        .type = WIRE_HEARTBEAT,
        .boot = cstr(b->boot),
        .members = (uint32_t)store_member_count(b->store),
        .limit = (uint32_t)store_room_count(b->store),
        .seq = b->sequenced,
        .since = b->journal ? journal_bytes(b->journal) : 0,
    };
    publish(b, &m);
    store_node_expire(b->store, now, b->link_timeout_ms, on_node_expired,
                      on_member_gone, b);
    if (b->journal != NULL)
        journal_tick(b->journal);
    b->next_beat = now + b->heartbeat_ms;
}

int broker_run(broker_t *b, volatile sig_atomic_t *stop)
{
    zmq_pollitem_t item = {.socket = b->router, .events = ZMQ_POLLIN};
    b->next_beat = util_mono_ms();
    while (!*stop) {
        uint64_t now = util_mono_ms();
        if (now >= b->next_beat)
            heartbeat(b, now);
        uint64_t wait = b->next_beat - now;
        if (wait > POLL_MAX_MS)
            wait = POLL_MAX_MS;
        int rc = zmq_poll(&item, 1, (long)wait);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            log_error("poll_failed", "error=\"%s\"", zmq_strerror(errno));
            return -1;
        }
        if (rc > 0 && drain(b) < 0)
            return -1;
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------- */

/*
 * ZeroMQ replaces an ipc:// socket file when it binds, even one a running
 * broker still listens on.  Refuse that; remove only a stale file (one
 * nobody answers on).  Returns 0, or -1 with err set.
 */
static int check_ipc(const char *endpoint, char *err, size_t errlen)
{
    if (strncmp(endpoint, "ipc://", 6) != 0 || endpoint[6] == '@')
        return 0;
    const char *path = endpoint + 6;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "%s: socket path too long", endpoint);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "%s: in use by another process", endpoint);
        return -1;
    }
    if (e == ECONNREFUSED && unlink(path) == 0)
        log_info("ipc_stale_removed", "path=%s", path);
    return 0;
}

/* Remembers the file of an ipc:// endpoint now bound, to remove it at
 * exit. */
static void remember_ipc(broker_t *b, const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) != 0 || endpoint[6] == '@')
        return;
    for (size_t i = 0; i < ARRAY_SIZE(b->ipc_paths); i++)
        if (b->ipc_paths[i] == NULL) {
            b->ipc_paths[i] = strdup(endpoint + 6);
            return;
        }
}

static int set_int(void *sock, int opt, int value)
{
    return zmq_setsockopt(sock, opt, &value, sizeof value);
}

static void *open_socket(broker_t *b, int type, const char *endpoint, char *err,
                         size_t errlen)
{
    if (check_ipc(endpoint, err, errlen) < 0)
        return NULL;
    void *s = zmq_socket(b->ctx, type);
    int64_t max = MAX_IN_FRAME;
    bool router = type == ZMQ_ROUTER;
    if (s == NULL || set_int(s, ZMQ_LINGER, LINGER_MS) < 0 ||
        set_int(s, ZMQ_SNDHWM, router ? ROUTER_HWM : PUB_HWM) < 0 ||
        (router && (set_int(s, ZMQ_ROUTER_MANDATORY, 1) < 0 ||
                    set_int(s, ZMQ_ROUTER_HANDOVER, 1) < 0 ||
                    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max) < 0)) ||
        zmq_bind(s, endpoint) < 0) {
        snprintf(err, errlen, "%s %s: %s", router ? "ROUTER" : "PUB", endpoint,
                 zmq_strerror(errno));
        if (s != NULL)
            zmq_close(s);
        return NULL;
    }
    remember_ipc(b, endpoint);
    return s;
}

static int restore_record(void *arg, const journal_record_t *rec)
{
    broker_t *b = arg;
    return store_restore(b->store, rec->room, rec->room_len, rec->epoch,
                         rec->epoch_len, rec->seq, rec->ts, rec->nick,
                         rec->nick_len, rec->text, rec->text_len);
}

/* Opens the journal and loads it into the store: rooms come back with
 * their epoch, sequence number and history. */
static int open_journal(broker_t *b, const config_t *c, char *err,
                        size_t errlen)
{
    b->journal = journal_open(c->journal, c->fsync, (size_t)c->history_size,
                              err, errlen);
    if (b->journal == NULL)
        return -1;
    long n = journal_load(b->journal, restore_record, b, err, errlen);
    if (n < 0)
        return -1;
    log_info("journal_loaded",
             "dir=%s records=%ld rooms=%zu bytes=%llu "
             "fsync=%s",
             c->journal, n, store_room_count(b->store),
             (unsigned long long)journal_bytes(b->journal), c->fsync);
    return 0;
}

broker_t *broker_new(const config_t *c, char *err, size_t errlen)
{
    broker_t *b = calloc(1, sizeof *b);
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->heartbeat_ms = (uint64_t)c->heartbeat_ms;
    b->link_timeout_ms = (uint64_t)c->link_timeout_ms;
    b->store = store_new((size_t)c->history_size, BROKER_MAX_ROOMS);
    if (b->store == NULL || util_random_hex(b->boot, STORE_EPOCH_LEN / 2) < 0) {
        snprintf(err, errlen,
                 "cannot create the store (out of memory or "
                 "no randomness)");
        broker_free(b);
        return NULL;
    }
    if (c->journal[0] != '\0' && open_journal(b, c, err, errlen) != 0) {
        broker_free(b);
        return NULL;
    }
    b->ctx = zmq_ctx_new();
    if (b->ctx == NULL) {
        snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
        broker_free(b);
        return NULL;
    }
    b->router = open_socket(b, ZMQ_ROUTER, c->broker_router, err, errlen);
    if (b->router != NULL)
        b->pub = open_socket(b, ZMQ_PUB, c->broker_pub, err, errlen);
    if (b->pub == NULL) {
        broker_free(b);
        return NULL;
    }
    log_info("broker_start",
             "boot=%s router=%s pub=%s history_size=%lld "
             "heartbeat_ms=%lld link_timeout_ms=%lld",
             b->boot, c->broker_router, c->broker_pub,
             (long long)c->history_size, (long long)c->heartbeat_ms,
             (long long)c->link_timeout_ms);
    return b;
}

void broker_free(broker_t *b)
{
    if (b == NULL)
        return;
    close_frames(b);
    if (b->router != NULL)
        zmq_close(b->router);
    if (b->pub != NULL)
        zmq_close(b->pub);
    if (b->ctx != NULL)
        zmq_ctx_term(b->ctx);
    for (size_t i = 0; i < ARRAY_SIZE(b->ipc_paths); i++) {
        if (b->ipc_paths[i] != NULL)
            unlink(b->ipc_paths[i]);
        free(b->ipc_paths[i]);
    }
    journal_close(b->journal);
    store_free(b->store);
    free(b);
}
