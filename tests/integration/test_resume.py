#!/usr/bin/python3
"""Resume: a join with since/epoch replays exactly what was missed, says
recovered true or false correctly, and meets the live stream with no gap
and no duplicate."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import JsonClient  # noqa: E402


def cluster():
    return h.Cluster(gateways=2, workers=2)


async def client(gw, label=None):
    return await JsonClient.connect(gw.port, label=label or gw.name)


async def say_n(c, room, n, prefix):
    """Sends n messages and waits for every ack; returns the acks' seqs."""
    seqs = []
    for i in range(n):
        ack = await c.say(room, "%s-%d" % (prefix, i), ref="%s-%d" % (prefix, i))
        assert ack["type"] == "ack", ack
        seqs.append(ack["seq"])
    return seqs


async def test_resume_exact(cl):
    a, b = cl.gateways
    room = h.uniq("res")
    s = await client(a, "sender")
    await s.join(room, "sender")
    r = await client(a, "reader")
    _, j = await r.join(room, "reader")
    epoch = j["epoch"]
    await say_n(s, room, 5, "early")
    got = await r.msgs_until(room, 5)
    last = got[-1]["seq"]
    assert [m["seq"] for m in got] == [1, 2, 3, 4, 5], got
    await r.close()
    missed = await say_n(s, room, 7, "missed")
    r2 = await client(b, "reader2")
    msgs, j2 = await r2.join(room, "reader", since=last, epoch=epoch)
    assert [m["seq"] for m in msgs] == missed, \
        "replayed %s, want %s" % ([m["seq"] for m in msgs], missed)
    assert [m["text"] for m in msgs] == ["missed-%d" % i for i in range(7)]
    assert j2["recovered"] is True, j2
    assert j2["seq"] == missed[-1] and j2["epoch"] == epoch, j2
    ack = await s.say(room, "after", ref="after")
    m = await r2.wait(h_is_msg(room), what="live msg")
    assert m["seq"] == ack["seq"] == missed[-1] + 1 and m["text"] == "after", m
    dup = [x for x in r2.log if x.get("type") == "msg" and x["seq"] <= last]
    assert not dup, "old messages again: %r" % dup


def h_is_msg(room):
    return lambda m: m.get("type") == "msg" and m.get("room") == room


async def test_resume_long_gap(cl):
    """A replay larger than a handful of messages (100 missed) arrives
    whole and in order."""
    a, b = cl.gateways
    room = h.uniq("gap")
    s = await client(a, "sender")
    _, j = await s.join(room, "sender")
    missed = await say_n(s, room, 100, "g")
    r = await client(b, "late")
    msgs, j2 = await r.join(room, "late", since=0, epoch=j["epoch"])
    assert [m["seq"] for m in msgs] == missed, (
        "replayed %d messages (%s..%s), want %d" % (
            len(msgs), msgs[:1] and msgs[0]["seq"], msgs[-1:] and msgs[-1]["seq"],
            len(missed)))
    assert j2["recovered"] is True and j2["seq"] == missed[-1], j2


async def test_resume_nothing_missed(cl):
    a, b = cl.gateways
    room = h.uniq("res0")
    s = await client(a)
    _, j = await s.join(room, "s")
    seqs = await say_n(s, room, 3, "x")
    r = await client(b)
    msgs, j2 = await r.join(room, "r", since=seqs[-1], epoch=j["epoch"])
    assert msgs == [] and j2["recovered"] is True and j2["seq"] == seqs[-1], \
        (msgs, j2)


async def test_resume_wrong_epoch(cl):
    a, b = cl.gateways
    room = h.uniq("ep")
    s = await client(a)
    _, j = await s.join(room, "s")
    seqs = await say_n(s, room, 6, "e")
    r = await client(b)
    wrong = "0123456789abcdef" if j["epoch"] != "0123456789abcdef" else "fedcba9876543210"
    msgs, j2 = await r.join(room, "r", since=3, epoch=wrong)
    assert j2["recovered"] is False, j2
    assert j2["epoch"] == j["epoch"], j2
    got = [m["seq"] for m in msgs]
    if got:
        h.assert_contiguous(got, last=seqs[-1], what="replay")
    ack = await s.say(room, "next", ref="n")
    m = await r.wait(h_is_msg(room), what="live msg")
    assert m["seq"] == ack["seq"], m


async def test_resume_since_without_epoch(cl):
    """since without an epoch: whatever the server decides, the replay is
    contiguous up to joined.seq and the live stream follows it."""
    a, b = cl.gateways
    room = h.uniq("noep")
    s = await client(a)
    await s.join(room, "s")
    seqs = await say_n(s, room, 5, "n")
    r = await client(b)
    msgs, j = await r.join(room, "r", since=2)
    got = [m["seq"] for m in msgs]
    if got:
        h.assert_contiguous(got, last=j["seq"], what="replay")
    assert j["seq"] == seqs[-1], j


async def test_history_ring_wrap():
    async with h.Cluster(gateways=1, workers=2,
                         broker_args=["--history-size", "20"]) as cl:
        room = h.uniq("wrap")
        s = await client(cl.gw)
        _, j = await s.join(room, "s")
        epoch = j["epoch"]
        await say_n(s, room, 50, "w")
        cases = ((5, False, list(range(31, 51))),
                 (29, False, list(range(31, 51))),
                 (30, True, list(range(31, 51))),
                 (45, True, list(range(46, 51))))
        bad = []
        for since, rec, want in cases:
            r = await client(cl.gw)
            msgs, j2 = await r.join(room, "r%d" % since, since=since, epoch=epoch)
            got = [m["seq"] for m in msgs]
            if j2["recovered"] is not rec or got != want:
                bad.append("since %d: recovered %r (want %r), replay %s..%s "
                           "(%d, want %d..%d)" % (
                               since, j2["recovered"], rec, got[:1], got[-1:],
                               len(got), want[0], want[-1]))
            texts = [m["text"] for m in msgs]
            if texts != ["w-%d" % (q - 1) for q in got]:
                bad.append("since %d: texts %r" % (since, texts[:3]))
            await r.close()
        assert not bad, "\n  ".join([""] + bad)


async def test_live_during_replay(cl):
    """A sender blasts while a client rejoins with since: the client's seqs
    after since are contiguous and unique up to the last one sent."""
    a, b = cl.gateways
    room = h.uniq("live")
    s = await client(a, "blaster")
    _, j = await s.join(room, "blaster")
    epoch = j["epoch"]
    await say_n(s, room, 100, "pre")
    next_seq = 101
    for rnd in range(3):
        n = 200
        since = next_seq - 60 - rnd * 10
        r = await client(b if rnd % 2 == 0 else a, "rejoin%d" % rnd)

        async def blast():
            for i in range(n):
                await s.send_json({"type": "say", "room": room,
                                   "text": "live%d-%d" % (rnd, i),
                                   "ref": "l%d-%d" % (rnd, i)})
                if i % 20 == 0:
                    await asyncio.sleep(0)
        task = asyncio.ensure_future(blast())
        msgs, j2 = await r.join(room, "rejoin%d" % rnd, since=since, epoch=epoch)
        await task
        assert j2["recovered"] is True, j2
        final = next_seq + n - 1
        seqs = [m["seq"] for m in msgs]
        assert all(q <= j2["seq"] for q in seqs), (seqs[-3:], j2)
        rest = await r.msgs_until(room, final, timeout=20) if j2["seq"] < final else []
        seqs += [m["seq"] for m in rest]
        h.assert_contiguous(seqs, since + 1, final, "round %d seqs" % rnd)
        more = await r.drain(0.3)
        extra = [m for m in more if m.get("type") == "msg"]
        assert not extra, "after the last seq: %r" % extra[:3]
        await r.close()
        next_seq = final + 1
        s.log.clear()


async def test_resume_two_rooms(cl):
    a, b = cl.gateways
    r1, r2 = h.uniq("t1"), h.uniq("t2")
    s = await client(a)
    _, j1 = await s.join(r1, "s")
    _, j2 = await s.join(r2, "s")
    await say_n(s, r1, 4, "a")
    await say_n(s, r2, 2, "b")
    c = await client(b)
    m1, k1 = await c.join(r1, "c", since=1, epoch=j1["epoch"])
    m2, k2 = await c.join(r2, "c", since=0, epoch=j2["epoch"])
    assert [m["seq"] for m in m1] == [2, 3, 4] and k1["recovered"] is True, (m1, k1)
    assert [m["seq"] for m in m2] == [1, 2] and k2["recovered"] is True, (m2, k2)


if __name__ == "__main__":
    h.run(globals(), shared=cluster)
