#!/usr/bin/python3
"""Per-connection rate limit (--rate-limit 5 --rate-burst 5): JSON requests
over the limit are answered rate_limited with their ref and dropped, a
client that keeps flooding is closed 1008 "flooding" (JSON and plain), a
well-behaved client in the same room keeps receiving, a client within the
limit is never refused, --rate-limit 0 turns the limit off, and a client
that floods pings without reading the pongs is closed as a slow
consumer."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import JsonClient, PlainClient  # noqa: E402

RATE = 5
BURST = 5
FLOOD = 40     # messages a flooder sends without waiting


def cluster():
    return h.Cluster(gateways=1, workers=2, gateway_args=[
        "--rate-limit", str(RATE), "--rate-burst", str(BURST)])


def is_msg(room):
    return lambda m: m.get("type") == "msg" and m.get("room") == room


async def refill():
    """Lets a bucket of BURST tokens at RATE per second fill up again."""
    await asyncio.sleep(BURST / RATE + 0.3)


async def test_over_limit_rate_limited_with_ref(cl):
    room = h.uniq("rl")
    c = await JsonClient.connect(cl.gw.port, label="bursty")
    await c.join(room, "bursty")
    await refill()
    n = BURST + 2
    for i in range(n):
        await c.say(room, "b%d" % i, ref="b%d" % i, wait_ack=False)
    # an invalid request over the limit is rate_limited too, with its ref
    await c.send('{"type":"nope","ref":"late"}')
    answers = {}
    while len(answers) < n + 1:
        m = await c.wait(lambda m: m.get("type") in ("ack", "error"),
                         what="answers to the burst (have %r)" % answers)
        assert m.get("ref") not in answers, "two answers for %r" % m
        answers[m.get("ref")] = m
    acked = [r for r, m in answers.items() if m["type"] == "ack"]
    limited = [r for r, m in answers.items() if m["type"] == "error"]
    assert all(answers[r]["code"] == "rate_limited" for r in limited), answers
    assert len(acked) >= BURST and limited, (acked, limited)
    assert "late" in limited, answers["late"]
    assert set(acked) | set(limited) == {"b%d" % i for i in range(n)} | {
        "late"}
    msgs = await c.msgs_until(room, len(acked))
    assert sorted(m["text"] for m in msgs) == sorted(acked), (msgs, acked)
    # still open: after a pause, requests pass again
    await refill()
    ack = await c.say(room, "again", ref="again")
    assert ack["type"] == "ack", ack
    assert not c.closed.is_set()


async def test_json_flooder_closed_1008(cl):
    room = h.uniq("flood")
    good = await JsonClient.connect(cl.gw.port, label="good")
    await good.join(room, "good")
    bad = await JsonClient.connect(cl.gw.port, label="flooder")
    await bad.join(room, "bad")
    await refill()
    refs = ["f%d" % i for i in range(FLOOD)]
    for r in refs:
        try:
            await bad.say(room, "flood " + r, ref=r, wait_ack=False)
        except Exception:
            break   # closed under our feet
    code = await bad.wait_closed(10)
    assert code == 1008, "flooder closed with %s %r" % (code, bad.close_reason)
    assert bad.close_reason == "flooding", bad.close_reason
    errors = [m for m in bad.log if m.get("type") == "error"]
    assert errors and all(m["code"] == "rate_limited" for m in errors), errors
    # the first requests passed (their acks may be lost with the close),
    # then every one was refused until the close: at most BURST of them
    k = refs.index(errors[0]["ref"])
    assert k >= 1, errors
    assert [m["ref"] for m in errors] == refs[k:k + len(errors)], errors
    assert len(errors) <= BURST, errors
    # the well-behaved client got the flooder's accepted lines, and more
    got = await good.msgs_until(room, k)
    assert [m["text"] for m in got] == ["flood " + r for r in refs[:k]], got
    for i in range(3):
        ack = await good.say(room, "calm %d" % i, ref="c%d" % i)
        assert ack["type"] == "ack", ack
        m = await good.wait(is_msg(room), what="calm %d" % i)
        assert m["text"] == "calm %d" % i, m
        await asyncio.sleep(1.0 / RATE)
    assert not good.closed.is_set()


async def test_plain_flooder_closed_1008(cl):
    room = h.uniq("pflood")
    listener = await PlainClient.connect(cl.gw.port, "/ws/" + room,
                                         label="listener")
    bad = await PlainClient.connect(cl.gw.port, "/ws/" + room, label="flooder")
    await refill()
    sent = []
    for i in range(FLOOD):
        try:
            await bad.send("line %02d" % i)
        except Exception:
            break
        sent.append("line %02d" % i)
    code = await bad.wait_closed(10)
    assert code == 1008, "plain flooder closed with %s" % code
    assert bad.close_reason == "flooding", bad.close_reason
    got = await listener.drain(1.0)
    assert got, "no line of the flooder arrived"
    assert len(got) <= BURST + 1, "%d lines passed the limit" % len(got)
    assert got == sent[:len(got)], got   # the first ones, in order
    await listener.send("listener still here")
    assert await listener.next() == "listener still here"


async def test_within_limit_never_refused(cl):
    room = h.uniq("calm")
    c = await JsonClient.connect(cl.gw.port, label="calm")
    await c.join(room, "calm")
    for burst in range(3):
        await refill()
        for i in range(BURST):
            ack = await c.say(room, "m%d-%d" % (burst, i),
                              ref="r%d-%d" % (burst, i))
            assert ack["type"] == "ack", ack
    assert not [m for m in c.log if m.get("type") == "error"], c.log


async def test_rate_limit_off():
    async with h.Cluster(gateways=1, workers=1, gateway_args=[
            "--rate-limit", "0", "--rate-burst", "1"]) as cl:
        room = h.uniq("off")
        c = await JsonClient.connect(cl.gw.port)
        await c.join(room, "fast")
        for i in range(FLOOD):
            await c.say(room, "x%d" % i, ref="x%d" % i, wait_ack=False)
        acks = []
        while len(acks) < FLOOD:
            m = await c.wait(lambda m: m.get("type") in ("ack", "error"),
                             what="ack %d" % len(acks))
            assert m["type"] == "ack", m
            acks.append(m["ref"])
        p = await PlainClient.connect(cl.gw.port, "/ws/" + room)
        for i in range(FLOOD):
            await p.send("p%d" % i)
        got = [await p.next() for _ in range(FLOOD)]
        assert got == ["p%d" % i for i in range(FLOOD)], got


async def slow_count(port):
    r = await h.http_get(port, "/metrics")
    v = h.metric_sum(r.body.decode(), "slow_consumer")
    assert v is not None, "no *slow_consumer* metric"
    return v


async def test_ping_flood_without_reading():
    """Pings are not rate-limited, but a client that pings and never reads
    its pongs is closed once they exceed send_queue."""
    async with h.Cluster(gateways=1, workers=1, gateway_args=[
            "--send-queue", "64k"]) as cl:
        port = cl.gw.port
        before = await slow_count(port)
        raw = await h.RawWs.connect(port, "/ws", rcvbuf=4096)
        chunk = h.ws_frame(h.OP_PING, b"p" * 125) * 1000
        closed = False
        for _ in range(160):             # 20 MiB of pings at most
            try:
                raw.w.write(chunk)
                await asyncio.wait_for(raw.w.drain(), 5)
            except (OSError, asyncio.TimeoutError):
                break                   # the gateway stopped reading
            if await slow_count(port) > before:
                closed = True
                break
        deadline = asyncio.get_running_loop().time() + 10
        while not closed and asyncio.get_running_loop().time() < deadline:
            closed = await slow_count(port) > before
            await asyncio.sleep(0.1)
        assert closed, "a ping flooder that never reads was not closed"


if __name__ == "__main__":
    h.run(globals(), shared=cluster, timeout=60)
