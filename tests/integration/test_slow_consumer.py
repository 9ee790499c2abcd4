#!/usr/bin/python3
"""Slow consumers: a client that never reads is disconnected once its
bounded send queue overflows, while a reading client in the same room gets
every message in order and the worker's memory stays bounded."""

import asyncio
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import PlainClient, RawWs  # noqa: E402

SEND_QUEUE = 64 * 1024
LINE = 1024
WINDOW = 32              # lines in flight towards the reading client
MAX_LINES = 32768        # 32 MiB at most before giving up
RSS_BOUND_KIB = 64 * 1024


async def slow_counter(port):
    r = await h.http_get(port, "/metrics")
    assert r.status == 200, r
    v = h.metric_sum(r.body.decode(), "slow_consumer")
    assert v is not None, "no *slow_consumer* metric in /metrics"
    return v


async def metric(port, name):
    r = await h.http_get(port, "/metrics")
    assert r.status == 200, r
    v = h.parse_metrics(r.body.decode()).get((name, ""))
    assert v is not None, "no %s in /metrics" % name
    return v


async def json_raw_joined(port, room):
    """A raw parley.v1 connection joined to room, its reading done."""
    raw = await RawWs.connect(port, "/ws", protocols="parley.v1", rcvbuf=4096)
    assert raw.response.header("sec-websocket-protocol") == "parley.v1"
    op, payload = await raw.recv_message()
    assert json.loads(payload)["type"] == "welcome", payload
    await raw.send_frame(h.OP_TEXT, json.dumps(
        {"type": "join", "room": room, "nick": "sloth"}))
    while True:
        op, payload = await raw.recv_message()
        assert op == h.OP_TEXT, (op, payload)
        m = json.loads(payload)
        if m.get("type") == "joined":
            return raw


async def expect_closed(gw, raw, what, timeout=30):
    """The server ends the slow connection: its worker lets go of the
    socket (bounded by the close timeout), and once the client reads again
    the stream ends (EOF or reset) after whatever was still buffered."""
    port = raw.w.get_extra_info("sockname")[1]
    deadline = time.monotonic() + timeout
    while h.worker_of_connection(gw, port) is not None:
        assert time.monotonic() < deadline, (
            "%s: the gateway still holds the connection %d s after closing "
            "it as a slow consumer" % (what, timeout))
        await asyncio.sleep(0.1)
    sock = raw.w.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    try:
        await h.read_until_eof(raw.r, timeout)
    except asyncio.TimeoutError:
        raise AssertionError("%s: no EOF %d s after the gateway closed it"
                             % (what, timeout))


def small_quarantine_env():
    """Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
    default) and counts in RSS; a small one keeps the RSS bound meaningful
    in sanitizer builds (no effect on other builds)."""
    env = dict(os.environ)
    opts = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=8"
    return env


async def test_slow_consumer_disconnected():
    async with h.Cluster(gateways=1, workers=1, gateway_args=[
            "--send-queue", str(SEND_QUEUE), "--close-timeout", "2s"],
            env=small_quarantine_env()) as cl:
        g = cl.gw
        room = h.uniq("slow")
        worker = g.worker_pids()[0]
        reader = await PlainClient.connect(g.port, "/ws/" + room, label="reader")
        sender = await PlainClient.connect(g.port, "/ws/" + room, label="sender")
        slow_plain = await RawWs.connect(g.port, "/ws/" + room, rcvbuf=4096)
        slow_json = await json_raw_joined(g.port, room)
        before = await slow_counter(g.port)
        short0 = await metric(g.port, "parley_gateway_short_writes_total")
        rss0 = h.vm_rss_kib(worker)
        rss_max = rss0
        sent = 0
        closed = False
        while sent < MAX_LINES and not closed:
            head = "m-%06d " % sent
            await sender.send(head + "x" * (LINE - len(head)))
            sent += 1
            deadline = time.monotonic() + 10
            while len(reader.log) < sent - WINDOW:
                assert not reader.closed.is_set(), \
                    "reader closed (%s) after %d lines" % (reader.close_code,
                                                          len(reader.log))
                assert time.monotonic() < deadline, (
                    "reader stalled at %d of %d lines: delivery blocked "
                    "behind the slow consumers?" % (len(reader.log), sent))
                await asyncio.sleep(0.002)
            if sent % 512 == 0:
                rss_max = max(rss_max, h.vm_rss_kib(worker))
                closed = await slow_counter(g.port) >= before + 2
        after = await slow_counter(g.port)
        assert after >= before + 2, (
            "slow_consumer counter %s -> %s after %d lines of %d bytes" % (
                before, after, sent, LINE))
        # a queue only grows past what the socket takes: the direct write
        # left a tail for the bufferevent (docs/gateway.md, "Fan-out")
        short = await metric(g.port, "parley_gateway_short_writes_total")
        assert short > short0, "no short write counted (%s -> %s)" % (
            short0, short)
        got = await asyncio.wait_for(_all_lines(reader, sent), 30)
        want = ["m-%06d " % i for i in range(sent)]
        heads = [x[:9] for x in got]
        assert heads == want, "reader lines differ at %d" % next(
            i for i, (x, y) in enumerate(zip(heads, want)) if x != y)
        assert not reader.closed.is_set() and not sender.closed.is_set()
        await expect_closed(g, slow_plain, "plain slow consumer")
        await expect_closed(g, slow_json, "json slow consumer")
        rss_max = max(rss_max, h.vm_rss_kib(worker))
        assert rss_max - rss0 < RSS_BOUND_KIB, \
            "worker RSS grew from %d to %d KiB" % (rss0, rss_max)
        assert worker in g.worker_pids(), "the worker was replaced"


async def _all_lines(client, n):
    while len(client.log) < n:
        assert not client.closed.is_set(), "closed with %d of %d" % (
            len(client.log), n)
        await asyncio.sleep(0.01)
    return client.log[:n]


async def test_reading_client_sees_1013():
    """A client that reads, but far too late: once it reads, the last frame
    it finds is a close with 1013."""
    async with h.Cluster(gateways=1, workers=1, gateway_args=[
            "--send-queue", str(SEND_QUEUE)]) as cl:
        g = cl.gw
        room = h.uniq("late")
        before = await slow_counter(g.port)
        late = await RawWs.connect(g.port, "/ws/" + room, rcvbuf=4096)
        sender = await PlainClient.connect(g.port, "/ws/" + room)
        sent = 0
        while sent < MAX_LINES:
            head = "n-%06d " % sent
            await sender.send(head + "y" * (LINE - len(head)))
            sent += 1
            deadline = time.monotonic() + 10
            while len(sender.log) < sent - WINDOW:
                assert time.monotonic() < deadline, "sender's own lines stalled"
                await asyncio.sleep(0.002)
            if sent % 512 == 0 and await slow_counter(g.port) > before:
                break
        assert await slow_counter(g.port) > before, "never closed as slow"
        code = None
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                op, payload = await late.recv_message(
                    max(0.01, deadline - time.monotonic()))
                if op == h.OP_CLOSE:
                    code = int.from_bytes(payload[:2], "big") if payload else None
                    break
        except EOFError:
            code = "EOF without a close frame"
        assert code == 1013, "slow consumer close: %s" % code


if __name__ == "__main__":
    h.run(globals(), timeout=90)
