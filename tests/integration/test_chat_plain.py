#!/usr/bin/python3
"""Plain mode (no subprotocol): lines broadcast verbatim across gateways,
rooms by URL, mixing with JSON clients, and RFC 6455 conformance of the
session (close codes for bad input, ping, the closing handshake)."""

import asyncio
import os
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import PlainClient, JsonClient, RawWs  # noqa: E402

MAX_TEXT = 1000
MAX_MESSAGE = 16384


def cluster():
    return h.Cluster(gateways=2, workers=2, gateway_args=[
        "--max-text", str(MAX_TEXT), "--max-message", str(MAX_MESSAGE)])


async def plain(gw, path):
    return await PlainClient.connect(gw.port, path, label="%s:%d%s" % (
        gw.name, gw.port, path))


async def expect_text(c, text, timeout=5.0):
    got = await c.next(timeout)
    assert got == text, "%s got %r, want %r" % (c.label, got[:100], text[:100])


async def expect_quiet(c, marker_sender, room_marker):
    """c receives nothing before the marker line (sent by marker_sender)."""
    await marker_sender.send(room_marker)
    got = await c.next()
    assert got == room_marker, "%s got %r before the marker" % (c.label, got)


async def test_line_reaches_all_gateways(cl):
    a, b = cl.gateways
    path = "/ws/" + h.uniq("p")
    clients_a = [await plain(a, path) for _ in range(3)]
    clients_b = [await plain(b, path) for _ in range(3)]
    line = "hello, w\u00f6rld \U0001F389 <b>&amp;</b> \"quoted\""
    await clients_a[0].send(line)
    for c in clients_a + clients_b:
        await expect_text(c, line)
    await clients_b[2].send("reply from b")
    for c in clients_a + clients_b:
        await expect_text(c, "reply from b")


async def test_order_one_sender(cl):
    a, b = cl.gateways
    path = "/ws/" + h.uniq("p")
    rx = [await plain(b, path), await plain(a, path)]
    tx = await plain(a, path)
    lines = ["line %04d" % i for i in range(300)]
    for l in lines:
        await tx.send(l)
    for c in rx + [tx]:
        got = [await c.next(10) for _ in lines]
        assert got == lines, "%s: order/content differs at %s" % (
            c.label, next(i for i, (x, y) in enumerate(zip(got, lines)) if x != y))


async def test_rooms_separate(cl):
    a, b = cl.gateways
    ra, rb = "/ws/" + h.uniq("a"), "/ws/" + h.uniq("b")
    ca, cb = await plain(a, ra), await plain(b, rb)
    ca2, cb2 = await plain(b, ra), await plain(a, rb)
    await ca.send("only in a")
    await expect_text(ca2, "only in a")
    await expect_text(ca, "only in a")
    await expect_quiet(cb, cb2, "marker b")


async def test_lobby_paths(cl):
    a, b = cl.gateways
    root = await plain(a, "/")
    ws = await plain(b, "/ws")
    named = await plain(a, "/ws/lobby")
    j = await JsonClient.connect(b.port)
    await j.join("lobby", h.uniq("n"))
    line = "lobby line " + h.uniq("x")
    await root.send(line)
    for c in (root, ws, named):
        got = await c.wait(lambda m: m == line, what=repr(line))
        assert got == line
    m = await j.wait(lambda m: m.get("type") == "msg" and m.get("text") == line,
                     what="msg %r" % line)
    assert m["room"] == "lobby" and m["nick"] == "anonymous", m


async def test_json_sees_plain_as_anonymous(cl):
    a, b = cl.gateways
    room = h.uniq("mix")
    j = await JsonClient.connect(a.port)
    _, joined = await j.join(room, "watcher")
    p = await plain(b, "/ws/" + room)
    await p.send("from plain")
    m = await j.wait(lambda m: m.get("type") == "msg", what="msg")
    assert (m["room"], m["nick"], m["text"]) == (room, "anonymous", "from plain"), m
    assert m["seq"] == joined["seq"] + 1, (m, joined)
    assert isinstance(m["ts"], int), m


async def test_plain_sees_json_text(cl):
    a, b = cl.gateways
    room = h.uniq("mix")
    p = await plain(a, "/ws/" + room)
    j = await JsonClient.connect(b.port)
    await j.join(room, "talker")
    ack = await j.say(room, "json says hi", ref="r1")
    assert ack["type"] == "ack", ack
    await expect_text(p, "json says hi")


async def test_plain_not_in_members(cl):
    a, b = cl.gateways
    room = h.uniq("mem")
    p = await plain(a, "/ws/" + room)
    j = await JsonClient.connect(b.port)
    _, joined = await j.join(room, "solo")
    assert joined["members"] == 1, joined
    who = await j.request({"type": "who", "room": room, "ref": "w"})
    assert who["type"] == "who" and who["members"] == ["solo"], who
    assert p.log == [], "plain client got %r" % p.log


async def test_binary_closed_1003(cl):
    c = await plain(cl.gateways[0], "/ws/" + h.uniq("bin"))
    await c.send(b"\x00\x01binary")
    code = await c.wait_closed()
    assert code == 1003, "close code %s, want 1003" % code


async def test_ping_pong(cl):
    c = await plain(cl.gateways[1], "/ws/" + h.uniq("ping"))
    waiter = await c.ws.ping(b"are you there")
    await asyncio.wait_for(waiter, 5)
    raw = await RawWs.connect(cl.gateways[0].port, "/ws/" + h.uniq("ping"))
    await raw.send_frame(h.OP_PING, b"raw-ping")
    fin, op, payload = await raw.recv_frame()
    assert (fin, op, payload) == (True, h.OP_PONG, b"raw-ping"), (op, payload)


async def test_close_handshake_1000(cl):
    c = await plain(cl.gateways[0], "/ws/" + h.uniq("cl"))
    await asyncio.wait_for(c.ws.close(1000, "bye"), 5)
    rcvd = c.ws.close_rcvd
    assert rcvd is not None and rcvd.code == 1000, rcvd
    raw = await RawWs.connect(cl.gateways[1].port, "/ws/" + h.uniq("cl"))
    await raw.send_frame(h.OP_CLOSE, h.close_payload(1000, b"done"))
    assert await raw.recv_close() == 1000
    rest = await h.read_until_eof(raw.r)
    assert rest == b"", "data after the close frame: %r" % rest[:40]


async def test_close_without_code(cl):
    raw = await RawWs.connect(cl.gateways[0].port, "/ws/" + h.uniq("cl"))
    await raw.send_frame(h.OP_CLOSE, b"")
    code = await raw.recv_close()
    assert code in (None, 1000), code


async def raw_expect_close(cl, frames, want, gw=0, what=""):
    raw = await RawWs.connect(cl.gateways[gw].port, "/ws/" + h.uniq("raw"))
    for f in frames:
        await raw.send(f)
    try:
        code = await raw.recv_close()
    except EOFError:
        code = "EOF without a close frame"
    wants = want if isinstance(want, tuple) else (want,)
    assert code in wants, "%s: close %s, want %s" % (what, code, want)


async def test_invalid_utf8_1007(cl):
    await raw_expect_close(cl, [h.ws_frame(h.OP_TEXT, b"ab\xff\xfecd")], 1007,
                           what="invalid byte")
    await raw_expect_close(cl, [h.ws_frame(h.OP_TEXT, b"\xed\xa0\x80")], 1007,
                           what="surrogate")
    await raw_expect_close(cl, [h.ws_frame(h.OP_TEXT, b"\xc0\xaf")], 1007,
                           what="overlong")
    await raw_expect_close(cl, [h.ws_frame(h.OP_TEXT, b"ok\xce", fin=False),
                                h.ws_frame(h.OP_CONT, b"\xbax\xff")], 1007,
                           what="invalid across fragments")
    await raw_expect_close(cl, [h.ws_frame(h.OP_TEXT, b"trunc\xe2\x82")], 1007,
                           what="truncated at end of message")


async def test_utf8_split_across_fragments_ok(cl):
    raw = await RawWs.connect(cl.gateways[0].port, "/ws/" + h.uniq("frag"))
    await raw.send(h.ws_frame(h.OP_TEXT, b"\xce", fin=False))
    await raw.send(h.ws_frame(h.OP_PING, b"mid"))
    await raw.send(h.ws_frame(h.OP_CONT, b"\xba\xe1\xbd", fin=False))
    await raw.send(h.ws_frame(h.OP_CONT, b"\xb9\xcf\x83\xce\xbc\xce\xb5"))
    fin, op, payload = await raw.recv_frame()
    assert (op, payload) == (h.OP_PONG, b"mid"), (op, payload)
    op, payload = await raw.recv_message()
    assert (op, payload) == (h.OP_TEXT, "\u03ba\u1f79\u03c3\u03bc\u03b5".encode()), \
        (op, payload)


async def test_unmasked_frame_1002(cl):
    await raw_expect_close(cl, [h.ws_frame(h.OP_TEXT, b"naked", mask=False)],
                           1002, what="unmasked")


async def test_protocol_errors_1002(cl):
    cases = {
        "rsv1 without extension": h.ws_frame(h.OP_TEXT, b"x", rsv=4),
        "reserved opcode 3": h.ws_frame(3, b"x"),
        "reserved control opcode 0xB": h.ws_frame(0xB, b""),
        "fragmented ping": h.ws_frame(h.OP_PING, b"x", fin=False),
        "ping over 125 bytes": h.ws_frame(h.OP_PING, b"p" * 126),
        "continuation first": h.ws_frame(h.OP_CONT, b"x"),
        "close with 1-byte payload": h.ws_frame(h.OP_CLOSE, b"\x03"),
        "close code 1005": h.ws_frame(h.OP_CLOSE, struct.pack("!H", 1005)),
        "close code 999": h.ws_frame(h.OP_CLOSE, struct.pack("!H", 999)),
    }
    bad = []
    for what, frame in cases.items():
        try:
            await raw_expect_close(cl, [frame], 1002, what=what)
        except AssertionError as e:
            bad.append(str(e))
    for what, frames in (("text inside a fragmented text",
                          [h.ws_frame(h.OP_TEXT, b"a", fin=False),
                           h.ws_frame(h.OP_TEXT, b"b")]),):
        try:
            await raw_expect_close(cl, frames, 1002, what=what)
        except AssertionError as e:
            bad.append(str(e))
    assert not bad, "\n  ".join([""] + bad)


async def test_close_invalid_utf8_reason(cl):
    await raw_expect_close(cl, [h.ws_frame(h.OP_CLOSE, h.close_payload(
        1000, b"\xff\xfe"))], (1002, 1007), what="close reason not UTF-8")


async def test_line_over_max_text_closed(cl):
    """A plain line longer than max_text (but within max_message) is
    refused by closing with 1009 (the message is too big for a line)."""
    c = await plain(cl.gateways[0], "/ws/" + h.uniq("big"))
    await c.send("x" * (MAX_TEXT + 1))
    code = await c.wait_closed()
    assert code == 1009, "close code %s, want 1009" % code


async def test_line_at_max_text_ok(cl):
    c = await plain(cl.gateways[0], "/ws/" + h.uniq("big"))
    line = "y" * MAX_TEXT
    await c.send(line)
    await expect_text(c, line)


async def test_message_over_max_message_1009(cl):
    raw = await RawWs.connect(cl.gateways[1].port, "/ws/" + h.uniq("huge"))
    await raw.send(h.ws_frame(h.OP_TEXT, b"z" * (MAX_MESSAGE + 1)))
    try:
        code = await raw.recv_close()
    except EOFError:
        code = "EOF"
    assert code == 1009, "close code %s, want 1009" % code
    raw = await RawWs.connect(cl.gateways[1].port, "/ws/" + h.uniq("huge"))
    await raw.send(h.ws_frame(h.OP_TEXT, b"z" * 9000, fin=False))
    await raw.send(h.ws_frame(h.OP_CONT, b"z" * 9000))
    try:
        code = await raw.recv_close()
    except EOFError:
        code = "EOF"
    assert code == 1009, "fragmented, close code %s, want 1009" % code


async def test_deflate_client(cl):
    """A client that offers permessage-deflate chats normally (whether the
    server accepts the extension or not)."""
    path = "/ws/" + h.uniq("defl")
    c = await PlainClient.connect(cl.gateways[0].port, path,
                                  compression="deflate")
    other = await plain(cl.gateways[1], path)
    line = "compress me " * 50
    await c.send(line)
    await expect_text(c, line)
    await expect_text(other, line)
    await other.send("and back")
    await expect_text(c, "and back")


async def test_frames_split_across_reads(cl):
    """A frame cut anywhere (header, mask, payload) arrives in several reads:
    the gateway keeps parser state only for such a connection, and the
    connection stays usable after each frame."""
    path = "/ws/" + h.uniq("split")
    listener = await plain(cl.gateways[0], path)
    raw = await RawWs.connect(cl.gateways[0].port, path)
    line = b"split " + b"x" * 300  # a 16-bit extended length
    frame = h.ws_frame(h.OP_TEXT, line)
    for cuts in ([1], [2, 4], [3, 8, 100], list(range(1, len(frame)))[::37]):
        bounds = [0] + cuts + [len(frame)]
        for i in range(len(bounds) - 1):
            await raw.send(frame[bounds[i]:bounds[i + 1]])
            await asyncio.sleep(0.02)  # separate reads, as far as possible
        await expect_text(listener, line.decode())
        fin, op, payload = await raw.recv_frame()
        assert (fin, op, payload) == (True, h.OP_TEXT, line), (op, payload[:20])
    ping = h.ws_frame(h.OP_PING, b"half")
    await raw.send(ping[:3])
    await asyncio.sleep(0.02)
    await raw.send(ping[3:])
    fin, op, payload = await raw.recv_frame()
    assert (fin, op, payload) == (True, h.OP_PONG, b"half"), (op, payload)


async def test_empty_line(cl):
    """An empty text message is not a chat line: it is dropped or echoed,
    and the connection stays usable."""
    path = "/ws/" + h.uniq("empty")
    c = await plain(cl.gateways[0], path)
    await c.send("")
    await c.send("after empty")
    got = await c.next()
    if got == "":
        got = await c.next()
    assert got == "after empty", got


async def test_close_with_data_after_it(cl):
    """Bytes after the client's close frame (a protocol violation) still let
    the client read the answer: the gateway lingers instead of resetting."""
    raw = await RawWs.connect(cl.gateways[0].port, "/ws/" + h.uniq("cl"))
    await raw.send(h.ws_frame(h.OP_CLOSE, h.close_payload(1000, b"")) +
                   h.ws_frame(h.OP_TEXT, b"too late") * 8)
    assert await raw.recv_close() == 1000
    rest = await h.read_until_eof(raw.r)
    assert rest == b"", "data after the close frame: %r" % rest[:40]


async def wait_marker(rx, tx, marker):
    """tx sends marker into its room and rx (same room, another gateway)
    receives it: every line sequenced before it reached rx's worker."""
    await tx.send(marker)
    got = await rx.next(10)
    assert got == marker, "%s got %r, want the marker" % (rx.label, got)


async def test_idle_room_follows_the_stream():
    """A room whose last local member left stays in sync (idle): lines
    sequenced meanwhile move its `last`, so a plain client that upgrades
    into it gets exactly the lines sequenced after its 101."""
    async with h.Cluster(gateways=2, workers=1) as cl:
        a, b = cl.gateways
        path, mpath = "/ws/" + h.uniq("idle"), "/ws/" + h.uniq("mark")
        a1, b1 = await plain(a, path), await plain(b, path)
        a_mark, b_mark = await plain(a, mpath), await plain(b, mpath)
        await a1.send("first")
        await expect_text(a1, "first")
        await expect_text(b1, "first")
        await a1.close()  # a's room has no member left: idle
        for i in range(3):
            await b1.send("while idle %d" % i)
            await expect_text(b1, "while idle %d" % i)
        await wait_marker(a_mark, b_mark, "marker 1")
        a2 = await plain(a, path)
        await b1.send("after")
        await expect_text(a2, "after")
        await expect_quiet(a2, b1, "marker 2")


async def test_idle_room_upgrade_needs_no_broker():
    """An upgrade into an idle room answers 101 without asking the broker
    (a cold room must wait for it: 503 once request_timeout passes)."""
    args = ["--link-timeout", "30s", "--request-timeout", "1s"]
    async with h.Cluster(gateways=1, workers=1, gateway_args=args) as cl:
        gw = cl.gateways[0]
        path = "/ws/" + h.uniq("idle")
        first = await plain(gw, path)
        await first.send("warm")
        await expect_text(first, "warm")
        await first.close()
        cl.broker.signal(signal.SIGSTOP)
        try:
            warm = await RawWs.connect(gw.port, path, expect=101)
            await RawWs.connect(gw.port, "/ws/" + h.uniq("cold"), expect=503)
        finally:
            cl.broker.signal(signal.SIGCONT)
        await warm.send_frame(h.OP_TEXT, b"after the pause", mask=True)
        op, payload = await warm.recv_message(10)
        assert (op, payload) == (h.OP_TEXT, b"after the pause"), (op, payload)


if __name__ == "__main__":
    h.run(globals(), shared=cluster)
