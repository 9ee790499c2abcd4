/*
 * zmq_event.c - a ZeroMQ socket in a libevent loop (zmq_event.h).
 */
#include "zmq_event.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>
#include <zmq.h>

#include "log.h"

struct zev {
    void *sock;
    struct event *ev;
    zev_message_cb on_message;
    void *arg;
    zmq_msg_t *msgs;    /* received parts, reused between messages */
    size_t cap;         /* initialized entries of msgs */
    wire_buf_t *frames; /* views of msgs handed to on_message */
};

/* ZMQ_EVENTS of z's socket; 0 when it cannot be read. */
static int zev_events(zev_t *z)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &events, &len) != 0)
        return 0;
    return events;
}

/* Edge-triggered fd: if input is pending now, nobody will tell us again. */
static void zev_recheck(zev_t *z)
{
    if (zev_events(z) & ZMQ_POLLIN)
        event_active(z->ev, EV_READ, 0);
}

/* Makes room for part i of a message; false when the bound is reached. */
static bool zev_grow(zev_t *z, size_t i)
{
    if (i < z->cap)
        return true;
    if (i >= ZEV_MAX_FRAMES)
        return false;
    size_t ncap = z->cap == 0 ? 64 : z->cap * 2;
    if (ncap > ZEV_MAX_FRAMES)
        ncap = ZEV_MAX_FRAMES;
    zmq_msg_t *m = realloc(z->msgs, ncap * sizeof *m);
    if (m == NULL)
        return false;
    z->msgs = m;
    wire_buf_t *f = realloc(z->frames, ncap * sizeof *f);
    if (f == NULL)
        return false;
    z->frames = f;
    for (size_t j = z->cap; j < ncap; j++)
        zmq_msg_init(&z->msgs[j]);
    z->cap = ncap;
    return true;
}

/* Discards the remaining parts of a message that was too large to keep. */
static void zev_skip_rest(zev_t *z)
{
    zmq_msg_t scratch;
    zmq_msg_init(&scratch);
    while (zmq_msg_recv(&scratch, z->sock, ZMQ_DONTWAIT) >= 0 &&
           zmq_msg_more(&scratch))
        ;
    zmq_msg_close(&scratch);
}

/*
 * Receives one whole multipart message.  Returns the number of parts,
 * 0 when nothing was pending, -1 when a message was dropped.
 */
static long zev_recv(zev_t *z)
{
    size_t n = 0;
    for (;;) {
        if (!zev_grow(z, n)) {
            log_warn("zmq_message_dropped", "reason=\"more than %d frames\"",
                     ZEV_MAX_FRAMES);
            zev_skip_rest(z);
            return -1;
        }
        if (zmq_msg_recv(&z->msgs[n], z->sock, ZMQ_DONTWAIT) < 0) {
            if (n == 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
            log_warn("zmq_recv_failed", "error=\"%s\"", zmq_strerror(errno));
            return n == 0 ? 0 : -1;
        }
        n++;
        if (!zmq_msg_more(&z->msgs[n - 1]))
            break;
    }
    /* views last: growing msgs moves small parts, whose data is inline */
    for (size_t i = 0; i < n; i++) {
        z->frames[i].p = zmq_msg_data(&z->msgs[i]);
        z->frames[i].len = zmq_msg_size(&z->msgs[i]);
    }
    return (long)n;
}

static void zev_on_fd(evutil_socket_t fd, short what, void *arg)
{
    zev_t *z = arg;
    (void)fd;
    (void)what;
    for (int budget = ZEV_BUDGET; budget > 0; budget--) {
        if (!(zev_events(z) & ZMQ_POLLIN))
            return;
        long n = zev_recv(z);
        if (n == 0)
            break;
        if (n > 0)
            z->on_message(z->frames, (size_t)n, z->arg);
    }
    zev_recheck(z);
}

zev_t *zev_new(struct event_base *base, void *zsock, zev_message_cb on_message,
               void *arg)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(zsock, ZMQ_FD, &fd, &len) != 0)
        return NULL;
    zev_t *z = calloc(1, sizeof *z);
    if (z == NULL)
        return NULL;
    z->sock = zsock;
    z->on_message = on_message;
    z->arg = arg;
    z->ev = event_new(base, fd, EV_READ | EV_PERSIST, zev_on_fd, z);
    if (z->ev == NULL || event_add(z->ev, NULL) != 0) {
        zev_free(z);
        errno = ENOMEM;
        return NULL;
    }
    zev_recheck(z);
    return z;
}

int zev_send(zev_t *z, const wire_buf_t *frames, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
        if (zmq_send(z->sock, frames[i].p, frames[i].len, flags) < 0) {
            if (i > 0)
                log_error("zmq_send_partial", "part=%zu error=\"%s\"", i,
                          zmq_strerror(errno));
            rc = -1;
            break;
        }
    }
    int saved = errno;
    zev_recheck(z);
    errno = saved;
    return rc;
}

void zev_free(zev_t *z)
{
    if (z == NULL)
        return;
    if (z->ev != NULL)
        event_free(z->ev);
    for (size_t i = 0; i < z->cap; i++)
        zmq_msg_close(&z->msgs[i]);
    free(z->msgs);
    free(z->frames);
    free(z);
}
