#!/usr/bin/python3
"""JSON mode (parley.v1): welcome, join/replay/joined, say/ack/msg,
presence, who, leave, every error code, and ordering under concurrent
senders on different gateways."""

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import JsonClient  # noqa: E402

REPLAY = 10
MAX_TEXT = 4096


def cluster():
    return h.Cluster(gateways=2, workers=2, gateway_args=[
        "--history-replay", str(REPLAY), "--max-text", str(MAX_TEXT)])


async def client(gw, label=None):
    return await JsonClient.connect(gw.port, label=label or gw.name)


def is_type(t, room=None):
    return lambda m: m.get("type") == t and (room is None or m.get("room") == room)


async def test_welcome_first(cl):
    c = await client(cl.gateways[0])
    w = c.welcome
    assert isinstance(w.get("server"), str) and w["server"], w
    assert isinstance(w.get("session"), str) and w["session"], w
    assert w.get("max_message") == 65536, w
    d = await client(cl.gateways[0])
    assert d.welcome["session"] != w["session"], "two sessions with one id"


async def test_join_replays_last_then_joined(cl):
    a, b = cl.gateways
    room = h.uniq("hist")
    s = await client(a, "sender")
    _, j0 = await s.join(room, "sender")
    assert j0["seq"] == 0 and j0["members"] == 1, j0
    assert isinstance(j0["epoch"], str) and j0["epoch"], j0
    for i in range(15):
        ack = await s.say(room, "m%d" % i, ref="s%d" % i)
        assert ack["type"] == "ack" and ack["seq"] == i + 1, ack
    c = await client(b, "joiner")
    msgs, joined = await c.join(room, "joiner")
    assert [m["seq"] for m in msgs] == list(range(16 - REPLAY, 16)), \
        [m["seq"] for m in msgs]
    assert [m["text"] for m in msgs] == ["m%d" % i for i in range(15 - REPLAY, 15)]
    assert all(m["nick"] == "sender" and m["room"] == room for m in msgs), msgs
    assert joined["seq"] == 15 and joined["epoch"] == j0["epoch"], joined
    assert joined["members"] == 2 and joined["nick"] == "joiner", joined
    assert "recovered" in joined, joined
    assert not [m for m in c.pending if m.get("room") == room], c.pending


async def test_say_ack_and_msg_to_all(cl):
    a, b = cl.gateways
    room = h.uniq("say")
    x = await client(a, "x")
    y = await client(b, "y")
    z = await client(a, "z")
    for c, n in ((x, "xn"), (y, "yn"), (z, "zn")):
        await c.join(room, n)
    ack = await x.say(room, "hello \u00e9\U0001F600", ref="ref-1")
    assert (ack["type"], ack.get("ref"), ack.get("room")) == (
        "ack", "ref-1", room) and isinstance(ack.get("seq"), int), ack
    now = time.time() * 1000
    for c in (x, y, z):
        m = await c.wait(is_type("msg", room), what="msg")
        assert m["seq"] == ack["seq"] and m["nick"] == "xn", m
        assert m["text"] == "hello \u00e9\U0001F600", m
        assert abs(m["ts"] - now) < 3600 * 1000, "ts %r not ms since epoch" % m["ts"]


async def test_presence_and_who(cl):
    a, b = cl.gateways
    room = h.uniq("pres")
    x = await client(a, "x")
    await x.join(room, "alice")
    y = await client(b, "y")
    _, jy = await y.join(room, "bob")
    assert jy["members"] == 2, jy
    p = await x.wait(is_type("presence", room), what="presence join")
    assert (p["event"], p["nick"], p["members"]) == ("join", "bob", 2), p
    who = await y.request({"type": "who", "room": room, "ref": "w1"})
    assert who["type"] == "who" and who["room"] == room, who
    assert sorted(who["members"]) == ["alice", "bob"], who
    # y never hears of its own join: sync with a message from x
    await x.say(room, "sync", ref="k")
    await y.wait(is_type("msg", room), what="sync msg")
    own = [m for m in y.log if m.get("type") == "presence"
           and m.get("nick") == "bob"]
    assert not own, "presence for own join: %r" % own
    z = await client(a, "z")
    await z.join(room, "carol")
    for c in (x, y):
        p = await c.wait(is_type("presence", room), what="presence carol")
        assert (p["event"], p["nick"], p["members"]) == ("join", "carol", 3), p
    await z.close()
    for c in (x, y):
        p = await c.wait(is_type("presence", room), what="presence leave")
        assert (p["event"], p["nick"], p["members"]) == ("leave", "carol", 2), p
    left = await y.request({"type": "leave", "room": room, "ref": "l"})
    assert left["type"] == "left" and left["room"] == room, left
    p = await x.wait(is_type("presence", room), what="presence leave bob")
    assert (p["event"], p["nick"], p["members"]) == ("leave", "bob", 1), p


async def test_broker_figures_in_metrics(cl):
    """The broker's figures ride on its heartbeat into every gateway's
    /metrics: rooms, memberships, messages sequenced."""
    a, b = cl.gateways
    room = h.uniq("figs")
    x = await client(a, "x")
    await x.join(room, "fig1")
    y = await client(b, "y")
    await y.join(room, "fig2")
    for i in range(3):
        await x.say(room, "m%d" % i, ref="f%d" % i)
    deadline = time.monotonic() + 10
    while True:
        r = await h.http_get(b.port, "/metrics")
        m = h.parse_metrics(r.body.decode())
        got = {k: m.get((k, ""), -1) for k in (
            "parley_broker_rooms", "parley_broker_members",
            "parley_broker_messages_total", "parley_broker_journal_bytes")}
        if (got["parley_broker_rooms"] >= 1 and
                got["parley_broker_members"] >= 2 and
                got["parley_broker_messages_total"] >= 3):
            break
        assert time.monotonic() < deadline, "broker figures: %r" % got
        await asyncio.sleep(0.2)
    assert got["parley_broker_journal_bytes"] == 0, got  # no journal here
    await x.close()
    await y.close()


async def test_leave_then_not_joined(cl):
    c = await client(cl.gateways[0])
    room = h.uniq("lv")
    await c.join(room, "lee")
    await c.send_json({"type": "leave", "room": room})
    left = await c.wait(is_type("left"), what="left")
    assert left["room"] == room, left
    for req in ({"type": "say", "room": room, "text": "x", "ref": "a"},
                {"type": "who", "room": room, "ref": "b"},
                {"type": "leave", "room": room, "ref": "c"}):
        e = await c.request(req)
        assert e["type"] == "error" and e["code"] == "not_joined", (req, e)
        assert isinstance(e.get("message"), str), e


async def expect_error(c, payload, code, ref=None):
    if isinstance(payload, str):
        await c.send(payload)
    else:
        await c.send_json(payload)
    e = await c.wait(lambda m: m.get("type") in ("error", "ack", "joined",
                                                 "left", "who"),
                     what="error %s for %r" % (code, payload))
    assert e["type"] == "error", "%r answered %r, want error %s" % (
        payload, e, code)
    assert e["code"] == code, "%r: error %r, want %s" % (payload, e, code)
    if ref is not None:
        assert e.get("ref") == ref, "%r: error without its ref: %r" % (payload, e)
    return e


async def test_error_bad_json(cl):
    c = await client(cl.gateways[0])
    for text in ("{not json", "", "{\"type\":\"who\"", "nul", "\"unterminated"):
        await expect_error(c, text, "bad_json")


async def test_error_bad_request(cl):
    c = await client(cl.gateways[1])
    room = h.uniq("br")
    await c.join(room, "br")
    for text in ("[1,2]", "42", "\"str\"", "null", "true"):
        await expect_error(c, text, "bad_request")
    cases = [
        {"room": room, "ref": "r1"},
        {"type": 5, "ref": "r2"},
        {"type": None, "ref": "r3"},
        {"type": "say", "room": room, "text": 5, "ref": "r4"},
        {"type": "say", "room": room, "ref": "r5"},
        {"type": "say", "room": room, "text": "", "ref": "r6"},
        {"type": "say", "text": "no room", "ref": "r7"},
        {"type": "join", "room": room, "ref": "r8"},
        {"type": "join", "room": 5, "nick": "x", "ref": "r9"},
        {"type": "join", "room": room, "nick": "x", "since": "abc", "ref": "r10"},
        {"type": "join", "room": room, "nick": "x", "since": 1.5, "ref": "r11"},
        {"type": "join", "room": room, "nick": "x", "epoch": 7, "ref": "r12"},
        {"type": "who", "ref": "r13"},
        {"type": "leave", "room": ["x"], "ref": "r14"},
    ]
    bad = []
    for req in cases:
        try:
            await expect_error(c, req, "bad_request", ref=req["ref"])
        except AssertionError as e:
            bad.append(str(e))
    try:
        await expect_error(c, {"type": "who", "room": room, "ref": "q" * 65},
                           "bad_request")
    except AssertionError as e:
        bad.append("ref of 65 bytes: " + str(e))
    assert not bad, "\n  ".join([""] + bad)
    ok = await c.say(room, "still open", ref="fine")
    assert ok["type"] == "ack", ok


async def test_error_unknown_type(cl):
    c = await client(cl.gateways[0])
    await expect_error(c, {"type": "dance", "ref": "u1"}, "unknown_type", "u1")
    await expect_error(c, {"type": "JOIN", "room": "x", "nick": "y",
                           "ref": "u2"}, "unknown_type", "u2")


async def test_error_room_invalid(cl):
    c = await client(cl.gateways[1])
    for i, room in enumerate(("bad!room", "r" * 65, "sp ace", "caf\u00e9",
                              "a/b")):
        await expect_error(c, {"type": "join", "room": room, "nick": "n",
                               "ref": "ri%d" % i}, "room_invalid", "ri%d" % i)
    await c.send_json({"type": "join", "room": "", "nick": "n", "ref": "re"})
    e = await c.wait(lambda m: m.get("ref") == "re", what="answer to empty room")
    assert e["type"] == "error" and e["code"] in ("room_invalid", "bad_request"), e
    _, j = await c.join("r" * 64, "n")
    assert j["room"] == "r" * 64


async def test_error_nick_invalid(cl):
    c = await client(cl.gateways[0])
    room = h.uniq("nick")
    for i, nick in enumerate(("a\x01b", "x" * 33, "tab\there", "\x7f",
                              "c1\u0085", "\u00e9" * 17, "")):
        await expect_error(c, {"type": "join", "room": room, "nick": nick,
                               "ref": "n%d" % i}, "nick_invalid", "n%d" % i)
    _, j = await c.join(room, "\u00e9" * 16)
    assert j["nick"] == "\u00e9" * 16, j
    _, j = await c.join(room, "x" * 32)
    assert j["nick"] == "x" * 32, j


async def test_error_not_joined(cl):
    c = await client(cl.gateways[1])
    room = h.uniq("nj")
    await expect_error(c, {"type": "say", "room": room, "text": "x",
                           "ref": "nj1"}, "not_joined", "nj1")
    await expect_error(c, {"type": "who", "room": room, "ref": "nj2"},
                       "not_joined", "nj2")
    await expect_error(c, {"type": "leave", "room": room, "ref": "nj3"},
                       "not_joined", "nj3")


async def test_error_too_large(cl):
    c = await client(cl.gateways[0])
    room = h.uniq("tl")
    await c.join(room, "big")
    await expect_error(c, {"type": "say", "room": room, "text": "x" * (MAX_TEXT + 1),
                           "ref": "t1"}, "too_large", "t1")
    await expect_error(c, {"type": "say", "room": room,
                           "text": "\u00e9" * (MAX_TEXT // 2 + 1), "ref": "t2"},
                       "too_large", "t2")
    ack = await c.say(room, "x" * MAX_TEXT, ref="t3")
    assert ack["type"] == "ack", ack
    m = await c.wait(is_type("msg", room), what="msg of max size")
    assert len(m["text"]) == MAX_TEXT


async def test_errors_keep_connection_open(cl):
    c = await client(cl.gateways[1])
    room = h.uniq("keep")
    for payload in ("{bad", "[]", json.dumps({"type": "nope"}),
                    json.dumps({"type": "say", "room": room, "text": "x"})):
        await c.send(payload)
    answers = [await c.next() for _ in range(4)]
    assert [a["type"] for a in answers] == ["error"] * 4, answers
    assert [a["code"] for a in answers] == ["bad_json", "bad_request",
                                             "unknown_type", "not_joined"], answers
    _, j = await c.join(room, "k")
    ack = await c.say(room, "alive", ref="z")
    assert ack["type"] == "ack", ack
    assert not c.closed.is_set()


async def test_multiple_rooms_one_connection(cl):
    a, b = cl.gateways
    r1, r2 = h.uniq("m1"), h.uniq("m2")
    c = await client(a)
    await c.join(r1, "multi")
    await c.join(r2, "multi")
    o1 = await client(b)
    await o1.join(r1, "o1")
    o2 = await client(b)
    await o2.join(r2, "o2")
    await o1.say(r1, "to r1", ref="1")
    await o2.say(r2, "to r2", ref="2")
    got = []
    while len(got) < 2:
        m = await c.wait(is_type("msg"), what="msgs")
        got.append((m["room"], m["text"]))
    assert sorted(got) == sorted([(r1, "to r1"), (r2, "to r2")]), got
    m2 = await o2.wait(is_type("msg"), what="o2 msg")
    assert m2["room"] == r2 and m2["text"] == "to r2", m2
    who1 = await c.request({"type": "who", "room": r1, "ref": "w1"})
    who2 = await c.request({"type": "who", "room": r2, "ref": "w2"})
    assert sorted(who1["members"]) == ["multi", "o1"], who1
    assert sorted(who2["members"]) == ["multi", "o2"], who2
    await c.send_json({"type": "leave", "room": r1})
    await c.wait(is_type("left", r1), what="left r1")
    await o2.say(r2, "still r2", ref="3")
    m = await c.wait(is_type("msg"), what="msg after leave")
    assert (m["room"], m["text"]) == (r2, "still r2"), m
    ack = await c.say(r2, "from multi", ref="4")
    assert ack["type"] == "ack" and ack["room"] == r2, ack


async def test_rejoin_new_nick(cl):
    a, b = cl.gateways
    room = h.uniq("rn")
    x = await client(a)
    await x.join(room, "watch")
    y = await client(b)
    await y.join(room, "bob")
    p = await x.wait(is_type("presence", room), what="join bob")
    assert (p["event"], p["nick"]) == ("join", "bob"), p
    await x.say(room, "before rename", ref="b")
    await y.wait(is_type("msg", room), what="msg before rename")
    msgs, j = await y.join(room, "robert")
    assert msgs == [], "re-join replayed %r" % msgs
    assert j["nick"] == "robert" and j["members"] == 2, j
    p1 = await x.wait(is_type("presence", room), what="leave bob")
    p2 = await x.wait(is_type("presence", room), what="join robert")
    assert (p1["event"], p1["nick"]) == ("leave", "bob"), p1
    assert (p2["event"], p2["nick"], p2["members"]) == ("join", "robert", 2), p2
    who = await x.request({"type": "who", "room": room, "ref": "w"})
    assert sorted(who["members"]) == ["robert", "watch"], who
    ack = await y.say(room, "renamed", ref="r")
    m = await x.wait(lambda m: m.get("type") == "msg" and m["text"] == "renamed",
                     what="msg from robert")
    assert m["nick"] == "robert" and m["seq"] == ack["seq"], m
    await y.wait(lambda m: m.get("type") == "msg" and m["text"] == "renamed",
                 what="own msg")    # a live message, not a replay
    # same nick again: joined, nothing for the others
    n0 = len(x.log)
    msgs, j = await y.join(room, "robert")
    assert msgs == [] and j["nick"] == "robert", (msgs, j)
    await y.say(room, "marker", ref="m")
    await x.wait(lambda m: m.get("type") == "msg" and m["text"] == "marker",
                 what="marker")
    extra = [m for m in x.log[n0:] if m.get("type") == "presence"]
    assert not extra, "same-nick re-join caused %r" % extra


async def test_concurrent_senders_order(cl):
    a, b = cl.gateways
    room = h.uniq("conc")
    senders = [await client(g, "s%d" % i)
               for i, g in enumerate((a, b, a, b))]
    listeners = [await client(g, "l%d" % i) for i, g in enumerate((a, b))]
    for i, c in enumerate(senders):
        await c.join(room, "s%d" % i)
    for i, c in enumerate(listeners):
        await c.join(room, "l%d" % i)
    n = 50

    async def blast(i, c):
        for k in range(n):
            await c.send_json({"type": "say", "room": room,
                               "text": "s%d-%d" % (i, k), "ref": "%d-%d" % (i, k)})
    await asyncio.gather(*(blast(i, c) for i, c in enumerate(senders)))
    total = 4 * n
    for c in senders + listeners:
        msgs = await c.msgs_until(room, total, timeout=20)
        seqs = [m["seq"] for m in msgs]
        h.assert_contiguous(seqs, 1, total, "%s seqs" % c.label)
        texts = [m["text"] for m in msgs]
        assert sorted(texts) == sorted("s%d-%d" % (i, k) for i in range(4)
                                       for k in range(n)), c.label
        for i in range(4):
            mine = [t for t in texts if t.startswith("s%d-" % i)]
            assert mine == ["s%d-%d" % (i, k) for k in range(n)], \
                "%s: sender %d out of order" % (c.label, i)
    for i, c in enumerate(senders):
        acks = [m for m in c.log if m.get("type") == "ack"]
        assert sorted(a["ref"] for a in acks) == sorted(
            "%d-%d" % (i, k) for k in range(n)), "%s acks" % c.label
        by_text = {m["text"]: m["seq"] for m in c.log if m.get("type") == "msg"}
        for ack in acks:
            k = ack["ref"].split("-")[1]
            assert by_text["s%d-%s" % (i, k)] == ack["seq"], ack


async def test_unavailable_when_broker_down():
    async with h.Cluster(gateways=1, workers=1) as cl:
        c = await JsonClient.connect(cl.gw.port)
        room = h.uniq("down")
        await c.join(room, "u")
        ack = await c.say(room, "before", ref="b")
        assert ack["type"] == "ack", ack
        cl.broker.kill_hard()
        await h.wait_healthz(cl.gw.port, 503, time.monotonic() + 15)
        e = await c.say(room, "while down", ref="d1")
        assert e["type"] == "error" and e["code"] == "unavailable", e
        assert e["ref"] == "d1", e
        assert not c.closed.is_set(), "connection closed"
        r = await h.http_get(cl.gw.port, "/healthz")
        assert r.status == 503 and r.body, r


if __name__ == "__main__":
    h.run(globals(), shared=cluster)
