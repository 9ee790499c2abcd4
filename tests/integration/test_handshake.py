#!/usr/bin/python3
"""The WebSocket opening handshake over raw sockets (RFC 6455 section 4),
checked against values computed here, independently of Parley's code."""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def cluster():
    return h.Cluster(gateways=1, workers=2)


def upgrade(port, path="/ws", method="GET", version="HTTP/1.1", key=None,
            drop=(), extra=(), replace=None):
    """A handshake request; drop: header names to leave out; replace:
    {name: value} overrides."""
    key = key if key is not None else h.new_key()
    hdrs = [("Host", "127.0.0.1:%d" % port), ("Upgrade", "websocket"),
            ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13")]
    replace = replace or {}
    out = "%s %s %s\r\n" % (method, path, version)
    for k, v in hdrs:
        if k in drop:
            continue
        out += "%s: %s\r\n" % (k, replace.get(k, v))
    for k, v in extra:
        out += "%s: %s\r\n" % (k, v)
    return (out + "\r\n").encode("latin-1"), key


async def exchange(port, data):
    return await h.http_exchange(port, data)


async def test_rfc_sample_accept_value(cl):
    """The sample key of RFC 6455 section 1.3 gives the RFC's accept value,
    from the server too."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert h.ws_accept(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    data, _ = upgrade(cl.gw.port, key=key)
    r = await exchange(cl.gw.port, data)
    assert r.status == 101, r
    assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", \
        r.header("sec-websocket-accept")


async def test_valid_handshake(cl):
    port = cl.gw.port
    data, key = upgrade(port, "/ws/hs-room")
    r, w = await h.open_conn(port)
    try:
        w.write(data)
        await w.drain()
        resp = await h.read_response(r)
        assert resp.status == 101, resp
        assert (resp.header("upgrade") or "").lower() == "websocket", \
            resp.header("upgrade")
        conn = [t.strip().lower() for t in (resp.header("connection") or "").split(",")]
        assert "upgrade" in conn, resp.header("connection")
        assert resp.header("sec-websocket-accept") == h.ws_accept(key)
        assert resp.header("sec-websocket-protocol") is None
        ws = h.RawWs(r, w, resp)
        await ws.send_frame(h.OP_CLOSE, h.close_payload(1000))
        code = await ws.recv_close()
        assert code == 1000, "close answered with %s" % code
    finally:
        w.close()


async def test_handshake_header_variants(cl):
    """Header names and the Upgrade token are case-insensitive; Connection
    is a token list."""
    port = cl.gw.port
    key = h.new_key()
    data = ("GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nUPGRADE: WebSocket\r\n"
            "connection: keep-alive, Upgrade\r\nsec-websocket-key: %s\r\n"
            "SEC-WEBSOCKET-VERSION: 13\r\nUser-Agent: test\r\n\r\n" % key)
    r = await exchange(port, data.encode())
    assert r.status == 101, r
    assert r.header("sec-websocket-accept") == h.ws_accept(key)


async def test_upgrade_paths(cl):
    port = cl.gw.port
    for path in ("/", "/ws", "/ws/a", "/ws/A-z_0.9", "/ws/" + "r" * 64):
        data, key = upgrade(port, path)
        r = await exchange(port, data)
        assert r.status == 101, "%s: %r" % (path, r)


async def test_bad_version_426(cl):
    port = cl.gw.port
    for v in ("8", "12", "14", "abc"):
        data, _ = upgrade(port, replace={"Sec-WebSocket-Version": v})
        r = await exchange(port, data)
        assert r.status == 426, "version %s: %r" % (v, r)
        versions = [x.strip() for val in r.header_all("sec-websocket-version")
                    for x in val.split(",")]
        assert "13" in versions, "426 without Sec-WebSocket-Version: 13 (%r)" \
            % r.headers
    data, _ = upgrade(port, drop=("Sec-WebSocket-Version",))
    r = await exchange(port, data)
    assert r.status in (400, 426), "no version: %r" % r


async def test_bad_key_400(cl):
    port = cl.gw.port
    keys = {"short": "abc",
            "bad base64": "!!!!!!!!!!!!!!!!!!!!!!==",
            "15 bytes": base64.b64encode(b"x" * 15).decode(),
            "17 bytes": base64.b64encode(b"x" * 17).decode(),
            "empty": ""}
    bad = []
    for what, key in keys.items():
        data, _ = upgrade(port, key=key)
        r = await exchange(port, data)
        if r.status != 400:
            bad.append("%s key %r: %d" % (what, key, r.status))
    data, _ = upgrade(port, drop=("Sec-WebSocket-Key",))
    r = await exchange(port, data)
    if r.status != 400:
        bad.append("no key: %d" % r.status)
    assert not bad, "; ".join(bad)


async def test_missing_upgrade_connection_host(cl):
    port = cl.gw.port
    bad = []
    for drop, allowed in ((("Upgrade",), (400, 426)),
                          (("Connection",), (400, 426)),
                          (("Host",), (400,))):
        data, _ = upgrade(port, "/ws/hs-x", drop=drop)
        r = await exchange(port, data)
        if r.status not in allowed:
            bad.append("without %s: %d (want %s)" % (drop[0], r.status, allowed))
    for name, value in (("Upgrade", "h2c"), ("Connection", "keep-alive")):
        data, _ = upgrade(port, "/ws/hs-x", replace={name: value})
        r = await exchange(port, data)
        if r.status not in (400, 426):
            bad.append("%s: %s -> %d" % (name, value, r.status))
    assert not bad, "; ".join(bad)


async def test_post_upgrade_refused(cl):
    data, _ = upgrade(cl.gw.port, method="POST",
                      extra=[("Content-Length", "0")])
    r = await exchange(cl.gw.port, data)
    assert r.status in (400, 405), r


async def test_http10_upgrade_refused(cl):
    data, _ = upgrade(cl.gw.port, version="HTTP/1.0")
    r = await exchange(cl.gw.port, data)
    assert r.status in (400, 426, 505), r


async def test_invalid_rooms(cl):
    port = cl.gw.port
    bad = []
    for path in ("/ws/bad!room", "/ws/" + "r" * 65, "/ws/", "/ws/a/b",
                 "/ws/sp%20ace", "/ws/%00", "/ws/caf%C3%A9", "/wsx",
                 "/ws/a b"):
        data, _ = upgrade(port, path)
        try:
            r = await exchange(port, data)
        except h.HttpError as e:
            bad.append("%s: no reply (%s)" % (path, e))
            continue
        if r.status not in (400, 404):
            bad.append("%s: %d" % (path, r.status))
    assert not bad, "invalid rooms not refused with 400/404: " + "; ".join(bad)


async def test_subprotocol_without_parley_is_plain(cl):
    port = cl.gw.port
    data, key = upgrade(port, "/ws/hs-plain",
                        extra=[("Sec-WebSocket-Protocol", "chat")])
    r, w = await h.open_conn(port)
    try:
        w.write(data)
        await w.drain()
        resp = await h.read_response(r)
        assert resp.status == 101, resp
        assert resp.header("sec-websocket-protocol") is None, \
            "selected %r" % resp.header("sec-websocket-protocol")
        ws = h.RawWs(r, w, resp)
        await ws.send_frame(h.OP_TEXT, "plain line")
        op, payload = await ws.recv_message()
        assert (op, payload) == (h.OP_TEXT, b"plain line"), (op, payload)
    finally:
        w.close()


async def test_subprotocol_parley_selected(cl):
    port = cl.gw.port
    for extra in ([("Sec-WebSocket-Protocol", "chat, parley.v1")],
                  [("Sec-WebSocket-Protocol", "chat"),
                   ("Sec-WebSocket-Protocol", "parley.v1")],
                  [("Sec-WebSocket-Protocol", "parley.v1,chat")]):
        data, key = upgrade(port, "/ws", extra=extra)
        r, w = await h.open_conn(port)
        try:
            w.write(data)
            await w.drain()
            resp = await h.read_response(r)
            assert resp.status == 101, (extra, resp)
            assert resp.header("sec-websocket-protocol") == "parley.v1", \
                (extra, resp.header("sec-websocket-protocol"))
            ws = h.RawWs(r, w, resp)
            op, payload = await ws.recv_message()
            assert op == h.OP_TEXT, op
            assert json.loads(payload)["type"] == "welcome", payload
        finally:
            w.close()


async def test_frame_pipelined_with_handshake(cl):
    """A frame sent in the same write as the handshake is not lost."""
    port = cl.gw.port
    data, key = upgrade(port, "/ws/" + h.uniq("hs"))
    r, w = await h.open_conn(port)
    try:
        w.write(data + h.ws_frame(h.OP_TEXT, "early bird"))
        await w.drain()
        resp = await h.read_response(r)
        assert resp.status == 101, resp
        ws = h.RawWs(r, w, resp)
        op, payload = await ws.recv_message()
        assert (op, payload) == (h.OP_TEXT, b"early bird"), (op, payload)
    finally:
        w.close()


async def test_deflate_offer_answer_valid(cl):
    """An offer of permessage-deflate is either declined (no header) or
    accepted with a valid permessage-deflate answer."""
    data, key = upgrade(cl.gw.port, extra=[
        ("Sec-WebSocket-Extensions",
         "permessage-deflate; client_max_window_bits")])
    r = await exchange(cl.gw.port, data)
    assert r.status == 101, r
    ext = r.header("sec-websocket-extensions")
    if ext is not None:
        assert ext.split(";")[0].strip() == "permessage-deflate", ext
    unknown, _ = upgrade(cl.gw.port, extra=[
        ("Sec-WebSocket-Extensions", "x-unknown-ext")])
    r = await exchange(cl.gw.port, unknown)
    assert r.status == 101 and r.header("sec-websocket-extensions") is None, \
        (r, r.header("sec-websocket-extensions"))


if __name__ == "__main__":
    h.run(globals(), shared=cluster)
