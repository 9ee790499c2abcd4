/* Unit tests of gateway/zmq_event.c: a ZeroMQ socket inside a libevent
 * loop must never stall.  ZMQ_FD is edge-triggered: a burst larger than the
 * per-callback budget, messages that arrive while the callback sends on the
 * same socket, and messages queued before the watcher exists must all be
 * delivered without any further wake-up of the fd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <zmq.h>

#include "zmq_event.h"

typedef struct {
    struct event_base *base;
    zev_t *z;
    size_t got;
    size_t want;
    uint32_t next; /* expected counter of the next message */
    bool in_order;
    bool echo; /* send a reply from inside the callback */
} rx_t;

static void on_message(const wire_buf_t *frames, size_t n, void *arg)
{
    rx_t *rx = arg;
    uint32_t v = 0;
    if (n == 2 && frames[1].len == sizeof v)
        memcpy(&v, frames[1].p, sizeof v);
    if (n != 2 || v != rx->next)
        rx->in_order = false;
    rx->next = v + 1;
    rx->got++;
    if (rx->echo) {
        wire_buf_t f[1] = {{(const uint8_t *)"ack", 3}};
        assert_int_equal(zev_send(rx->z, f, 1), 0);
    }
    if (rx->got == rx->want)
        event_base_loopexit(rx->base, NULL);
}

static void send_burst(void *sock, uint32_t from, uint32_t count)
{
    for (uint32_t i = from; i < from + count; i++) {
        assert_int_equal(zmq_send(sock, "m", 1, ZMQ_SNDMORE), 1);
        assert_int_equal(zmq_send(sock, &i, sizeof i, 0), (int)sizeof i);
    }
}

typedef struct {
    void *ctx, *a, *b;
} pair_t;

static void pair_open(pair_t *p, int type_a, int type_b, const char *ep)
{
    p->ctx = zmq_ctx_new();
    p->a = zmq_socket(p->ctx, type_a);
    p->b = zmq_socket(p->ctx, type_b);
    int hwm = 0, linger = 0;
    zmq_setsockopt(p->a, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->b, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->a, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->b, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(p->a, ep), 0);
    assert_int_equal(zmq_connect(p->b, ep), 0);
}

static void pair_close(pair_t *p)
{
    zmq_close(p->a);
    zmq_close(p->b);
    zmq_ctx_term(p->ctx);
}

/* Runs the loop until rx has what it wants, or 5 s at most (a stall). */
static void run(rx_t *rx)
{
    struct timeval limit = {5, 0};
    event_base_loopexit(rx->base, &limit);
    event_base_dispatch(rx->base);
}

/* A burst of 10 budgets' worth queued before the loop runs: one edge of
 * the fd, then only self-activation can deliver the rest. */
static void test_burst_beyond_budget(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, ZMQ_PULL, ZMQ_PUSH, "inproc://burst");
    rx_t rx = {
        .base = event_base_new(), .want = 10 * ZEV_BUDGET, .in_order = true};
    rx.z = zev_new(rx.base, p.a, on_message, &rx);
    assert_non_null(rx.z);
    send_burst(p.b, 0, (uint32_t)rx.want);
    run(&rx);
    assert_int_equal(rx.got, rx.want);
    assert_true(rx.in_order);
    zev_free(rx.z);
    event_base_free(rx.base);
    pair_close(&p);
}

/* Messages queued before the watcher exists (their edge came and went). */
static void test_queued_before_watch(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, ZMQ_PULL, ZMQ_PUSH, "inproc://early");
    send_burst(p.b, 0, 7);
    /* let ZeroMQ move them into the receiving pipe and fire its edge */
    zmq_pollitem_t it = {.socket = p.a, .events = ZMQ_POLLIN};
    assert_int_equal(zmq_poll(&it, 1, 1000), 1);
    rx_t rx = {.base = event_base_new(), .want = 7, .in_order = true};
    rx.z = zev_new(rx.base, p.a, on_message, &rx);
    run(&rx);
    assert_int_equal(rx.got, 7);
    zev_free(rx.z);
    event_base_free(rx.base);
    pair_close(&p);
}

/* Sending on the socket from the message callback consumes ZMQ_FD's edge
 * state (ZMQ_EVENTS is read inside zmq_send): messages that arrived in
 * between must still be delivered. */
static void test_send_inside_callback(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, ZMQ_DEALER, ZMQ_DEALER, "inproc://echo");
    rx_t rx = {.base = event_base_new(),
               .want = 3 * ZEV_BUDGET + 5,
               .in_order = true,
               .echo = true};
    rx.z = zev_new(rx.base, p.a, on_message, &rx);
    send_burst(p.b, 0, (uint32_t)rx.want);
    run(&rx);
    assert_int_equal(rx.got, rx.want);
    assert_true(rx.in_order);
    /* every echo went out */
    size_t acks = 0;
    char buf[8];
    while (zmq_recv(p.b, buf, sizeof buf, ZMQ_DONTWAIT) == 3)
        acks++;
    assert_int_equal(acks, rx.want);
    zev_free(rx.z);
    event_base_free(rx.base);
    pair_close(&p);
}

/* A second burst after the loop went idle wakes it again. */
static void test_second_burst_after_idle(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, ZMQ_PULL, ZMQ_PUSH, "inproc://idle");
    rx_t rx = {.base = event_base_new(), .want = 300, .in_order = true};
    rx.z = zev_new(rx.base, p.a, on_message, &rx);
    send_burst(p.b, 0, 300);
    run(&rx);
    assert_int_equal(rx.got, 300);
    rx.want = 600;
    send_burst(p.b, 300, 300);
    run(&rx);
    assert_int_equal(rx.got, 600);
    assert_true(rx.in_order);
    zev_free(rx.z);
    event_base_free(rx.base);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_beyond_budget),
        cmocka_unit_test(test_queued_before_watch),
        cmocka_unit_test(test_send_inside_callback),
        cmocka_unit_test(test_second_burst_after_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
