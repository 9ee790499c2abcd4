#!/usr/bin/python3
"""permessage-deflate (RFC 7692): negotiation (server_no_context_takeover
always, nothing with --deflate no), compressing and plain clients of both
modes chatting across gateways, the shared compressed broadcast frame (one
compression per message: identical bytes for every compressing client),
deflate_min_size and a client's smaller window, and the failures: a zip
bomb (close 1009, memory stays small), RSV1 without negotiation (1002),
invalid deflate data and compressed invalid UTF-8 (1007)."""

import asyncio
import json
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import JsonClient, PlainClient, RawWs  # noqa: E402

MIN_SIZE = 256
RSV1 = 4  # harness.ws_frame's rsv is shifted by 4: 4 is RSV1 (0x40)


def cluster():
    return h.Cluster(gateways=2, workers=2, gateway_args=[
        "--deflate-min-size", str(MIN_SIZE)])


def deflate(data, wbits=15):
    """A message compressed as RFC 7692 7.2.1 says (sync flush, the
    trailing 00 00 ff ff removed)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload):
    d = zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


async def raw_frame(raw, timeout=5.0):
    """(first byte, payload) of the next server frame, pings answered."""
    async def inner():
        while True:
            b0, b1 = await raw.r.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await raw.r.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await raw.r.readexactly(8))[0]
            assert not b1 & 0x80, "server frame is masked"
            payload = await raw.r.readexactly(n)
            if b0 & 0x0F == h.OP_PING:
                await raw.send_frame(h.OP_PONG, payload)
                continue
            return b0, payload
    return await asyncio.wait_for(inner(), timeout)


async def raw_text(raw, timeout=5.0):
    """(compressed?, text) of the next text message from the server."""
    b0, payload = await raw_frame(raw, timeout)
    assert b0 & 0x8F == 0x81, "not a single text frame: %#x" % b0
    if b0 & 0x40:
        return True, inflate(payload).decode("utf-8")
    return False, payload.decode("utf-8")


async def raw_deflate_client(port, path, offer="permessage-deflate"):
    raw = await RawWs.connect(port, path, extra=[
        ("Sec-WebSocket-Extensions", offer)])
    ext = raw.response.header("sec-websocket-extensions")
    assert ext is not None and ext.startswith("permessage-deflate"), ext
    return raw


async def expect_close(raw, code, what):
    try:
        got = await raw.recv_close(10)
    except EOFError:
        got = "EOF without a close frame"
    assert got == code, "%s: close %s, want %s" % (what, got, code)


def ext_params(value):
    return [p.strip() for p in value.split(";")]


# ----------------------------------------------------------------------------

async def test_negotiation(cl):
    g = cl.gateways[0]
    c = await PlainClient.connect(g.port, "/ws/" + h.uniq("neg"),
                                  compression="deflate")
    ext = c.ws.response_headers.get("Sec-WebSocket-Extensions")
    assert ext is not None, "no extension negotiated: %r" % (
        c.ws.response_headers,)
    params = ext_params(ext)
    assert params[0] == "permessage-deflate", ext
    assert "server_no_context_takeover" in params, ext
    assert len(c.ws.extensions) == 1, c.ws.extensions
    # the answer to a bare offer: server_no_context_takeover, nothing else
    raw = await raw_deflate_client(g.port, "/ws")
    assert ext_params(raw.response.header("sec-websocket-extensions")) == [
        "permessage-deflate", "server_no_context_takeover"], raw.response
    # an offer the server declines (unknown parameter) then one it accepts
    raw2 = await raw_deflate_client(
        g.port, "/ws", "permessage-deflate; foo=1, permessage-deflate; "
        "client_max_window_bits")
    assert ext_params(raw2.response.header("sec-websocket-extensions")) == [
        "permessage-deflate", "server_no_context_takeover",
        "client_max_window_bits=15"], raw2.response
    # no offer, no extension
    raw3 = await RawWs.connect(g.port, "/ws")
    assert raw3.response.header("sec-websocket-extensions") is None


def texts_of(n, tag):
    """n texts of mixed sizes: small ones (sent uncompressed) and larger
    ones, some very compressible, some long."""
    out = []
    for i in range(n):
        head = "%s-%03d " % (tag, i)
        if i % 4 == 0:
            out.append(head)
        elif i % 4 == 1:
            out.append(head + "lorem ipsum dolor sit amet " * 20)
        elif i % 4 == 2:
            out.append(head + "".join(chr(0x41 + (i * j) % 57)
                                      for j in range(3000)))
        else:
            out.append(head + "\u00e9\u20ac\U0001F600 " * 100)
    return out


async def test_mixed_clients_across_gateways(cl):
    a, b = cl.gateways
    room = h.uniq("mix")
    zj = await JsonClient.connect(a.port, label="json+deflate",
                                  compression="deflate")
    pj = await JsonClient.connect(b.port, label="json")
    assert zj.ws.extensions and not pj.ws.extensions
    zp = await PlainClient.connect(b.port, "/ws/" + room, label="plain+deflate",
                                   compression="deflate")
    pp = await PlainClient.connect(a.port, "/ws/" + room, label="plain")
    assert zp.ws.extensions and not pp.ws.extensions
    await zj.join(room, "zj")
    await pj.join(room, "pj")
    n = 12
    sent = []
    for i, (c, t) in enumerate(((zj, "zj"), (pj, "pj"), (zp, "zp"),
                                (pp, "pp"))):
        for text in texts_of(n, t):
            if isinstance(c, JsonClient):
                await c.say(room, text, ref="%s" % len(sent), wait_ack=False)
            else:
                await c.send(text)
            sent.append(text)
    total = len(sent)
    msgs = {}
    for c in (zj, pj):
        got = await c.msgs_until(room, total, timeout=30)
        assert len(got) == total, "%s: %d msgs" % (c.label, len(got))
        h.assert_contiguous([m["seq"] for m in got], 1, total)
        msgs[c.label] = [m["text"] for m in got]
    assert msgs["json+deflate"] == msgs["json"], "JSON clients differ"
    order = msgs["json"]
    assert sorted(order) == sorted(sent), "texts altered on the way"
    for tag in ("zj", "pj", "zp", "pp"):   # one sender's lines stay in order
        mine = [t for t in order if t.startswith(tag + "-")]
        assert mine == [t for t in sent if t.startswith(tag + "-")], tag
    for c in (zp, pp):
        got = []
        while len(got) < total:
            got.append(await c.next(30))
        assert got == order, "%s: lines differ from the JSON order" % c.label


async def test_shared_compressed_frames(cl):
    """Every compressing client gets the same compressed bytes (compressed
    once per message), small messages go uncompressed, and a client with a
    9-bit server window gets the compressed frame only for messages that
    fit its window."""
    g = cl.gateways[0]
    room = h.uniq("share")
    r1 = await raw_deflate_client(g.port, "/ws/" + room)
    r2 = await raw_deflate_client(g.port, "/ws/" + room)
    r9 = await raw_deflate_client(g.port, "/ws/" + room,
                                  "permessage-deflate; server_max_window_bits=9")
    assert "server_max_window_bits=9" in ext_params(
        r9.response.header("sec-websocket-extensions"))
    sender = await PlainClient.connect(cl.gateways[1].port, "/ws/" + room)
    small = "tiny"
    mid = "m" + "abcdefgh" * 50           # 401 bytes: fits a 512-byte window
    big = "b" + "0123456789" * 300        # 3001 bytes
    for text in (small, mid, big):
        await sender.send(text)
    frames = {}
    for name, raw in (("r1", r1), ("r2", r2), ("r9", r9)):
        frames[name] = [await raw_frame(raw) for _ in range(3)]
    assert frames["r1"] == frames["r2"], "compressed frames differ"
    got = []
    for b0, payload in frames["r1"]:
        z = bool(b0 & 0x40)
        got.append((z, (inflate(payload) if z else payload).decode()))
    assert got == [(False, small), (True, mid), (True, big)], [
        (z, t[:20]) for z, t in got]
    assert len(frames["r1"][2][1]) < len(big) // 4, "big text not compressed"
    got9 = []
    for b0, payload in frames["r9"]:
        z = bool(b0 & 0x40)
        got9.append((z, (inflate(payload) if z else payload).decode()))
    assert got9 == [(False, small), (True, mid), (False, big)], [
        (z, t[:20]) for z, t in got9]
    assert frames["r9"][1] == frames["r1"][1], "mid not the shared frame"


async def test_compressed_requests_with_context_takeover(cl):
    """A raw JSON client compressing with context takeover (one zlib
    stream for all its messages): its requests are understood."""
    g = cl.gateways[1]
    room = h.uniq("ctx")
    raw = await RawWs.connect(g.port, "/ws", protocols="parley.v1", extra=[
        ("Sec-WebSocket-Extensions", "permessage-deflate")])
    assert raw.response.header("sec-websocket-extensions")
    z = zlib.compressobj(6, zlib.DEFLATED, -15)

    async def send(obj):
        data = z.compress(json.dumps(obj).encode()) + z.flush(zlib.Z_SYNC_FLUSH)
        await raw.send_frame(h.OP_TEXT, data[:-4], rsv=RSV1)

    _, w = await raw_text(raw)
    assert json.loads(w)["type"] == "welcome", w
    await send({"type": "join", "room": room, "nick": "zed", "ref": "j"})
    text = "said " * 100
    for i in range(3):
        await send({"type": "say", "room": room, "text": text + str(i),
                    "ref": "s%d" % i})
    acks, msgs = [], []
    while len(acks) < 3 or len(msgs) < 3:
        _, t = await raw_text(raw)
        m = json.loads(t)
        assert m["type"] in ("msg", "ack", "joined"), m
        if m["type"] == "ack":
            acks.append(m["ref"])
        elif m["type"] == "msg":
            msgs.append(m["text"])
    assert acks == ["s0", "s1", "s2"], acks
    assert msgs == [text + str(i) for i in range(3)], [m[-3:] for m in msgs]


async def test_zip_bomb_closed_1009(cl):
    g = cl.gateways[0]
    raw = await raw_deflate_client(g.port, "/ws/" + h.uniq("bomb"))
    worker = None
    for _ in range(50):
        worker = h.worker_of_connection(g, raw.w.get_extra_info("sockname")[1])
        if worker:
            break
        await asyncio.sleep(0.05)
    assert worker, "no worker holds the connection"
    rss0 = h.vm_rss_kib(worker)
    bomb = deflate(b"a" * (10 << 20))
    assert len(bomb) < 64 << 10, len(bomb)   # fits max_message compressed
    await raw.send_frame(h.OP_TEXT, bomb, rsv=RSV1)
    await expect_close(raw, 1009, "zip bomb")
    rss1 = h.vm_rss_kib(worker)
    assert rss1 - rss0 < 8192, "worker RSS grew from %d to %d KiB" % (rss0,
                                                                    rss1)
    # the worker still serves
    c = await PlainClient.connect(g.port, "/ws/" + h.uniq("after"),
                                  compression="deflate")
    await c.send("still here")
    assert await c.next() == "still here"


async def test_rsv1_without_negotiation_1002(cl):
    raw = await RawWs.connect(cl.gateways[1].port, "/ws")
    assert raw.response.header("sec-websocket-extensions") is None
    await raw.send_frame(h.OP_TEXT, deflate(b"hello"), rsv=RSV1)
    await expect_close(raw, 1002, "RSV1 without permessage-deflate")


async def test_invalid_deflate_data_1007(cl):
    g = cl.gateways[0]
    raw = await raw_deflate_client(g.port, "/ws")
    # BFINAL=1, BTYPE=11 (reserved): not deflate data
    await raw.send_frame(h.OP_TEXT, b"\xff\xff\xff\xff", rsv=RSV1)
    await expect_close(raw, 1007, "invalid deflate data")
    raw = await raw_deflate_client(g.port, "/ws", "permessage-deflate; "
                                   "client_no_context_takeover")
    await raw.send_frame(h.OP_TEXT, b"\x07\x00\x00", rsv=RSV1)
    await expect_close(raw, 1007, "invalid deflate data (shared inflater)")


async def test_compressed_invalid_utf8_1007(cl):
    raw = await raw_deflate_client(cl.gateways[1].port, "/ws")
    await raw.send_frame(h.OP_TEXT, deflate(b"ok \xc3\x28 no"), rsv=RSV1)
    await expect_close(raw, 1007, "compressed invalid UTF-8")


async def test_control_frame_rsv1_1002(cl):
    raw = await raw_deflate_client(cl.gateways[0].port, "/ws")
    await raw.send_frame(h.OP_PING, b"", rsv=RSV1)
    await expect_close(raw, 1002, "compressed ping")


async def test_deflate_disabled():
    async with h.Cluster(gateways=1, workers=1,
                         gateway_args=["--deflate", "no"]) as cl:
        g = cl.gw
        room = h.uniq("off")
        c = await PlainClient.connect(g.port, "/ws/" + room,
                                      compression="deflate")
        assert c.ws.response_headers.get("Sec-WebSocket-Extensions") is None
        assert not c.ws.extensions, c.ws.extensions
        text = "x" * 1000
        await c.send(text)
        assert await c.next() == text
        raw = await RawWs.connect(g.port, "/ws", extra=[
            ("Sec-WebSocket-Extensions", "permessage-deflate")])
        assert raw.response.header("sec-websocket-extensions") is None
        await raw.send_frame(h.OP_TEXT, deflate(b"hello"), rsv=RSV1)
        await expect_close(raw, 1002, "RSV1 with deflate off")


if __name__ == "__main__":
    h.run(globals(), shared=cluster, timeout=90)
