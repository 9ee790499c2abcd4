#!/usr/bin/python3
"""The HTTP API of a gateway (PROTOCOL.md section 1): POST a message, read
history, authentication, the errors, and a broker that is gone or mute."""

import asyncio
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

TOKEN = "s3cret-token"
MAX_TEXT = 100
MAX_BODY = 1024


def cluster():
    return h.Cluster(gateways=1, workers=2, gateway_args=[
        "--api-token", TOKEN, "--api-max-body", str(MAX_BODY),
        "--max-text", str(MAX_TEXT), "--header-timeout", "2s"])


def raw(port, method, path, body=None, token=TOKEN, headers=(), close=True,
        length=True):
    """Bytes of one request; body (str/bytes/obj) gets a Content-Length
    unless length is False."""
    s = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (method, path, port)
    if close:
        s += "Connection: close\r\n"
    if token is not None:
        s += "Authorization: Bearer %s\r\n" % token
    for k, v in headers:
        s += "%s: %s\r\n" % (k, v)
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is not None and length:
        s += "Content-Length: %d\r\n" % len(body)
    return (s + "\r\n").encode("latin-1") + (body or b"")


async def call(port, method, path, body=None, **kw):
    return await h.http_exchange(port, raw(port, method, path, body, **kw),
                                 method)


async def post(port, room, nick="bot", text="hi", **kw):
    return await call(port, "POST", "/api/rooms/%s/messages" % room,
                      {"nick": nick, "text": text}, **kw)


async def history(port, room, query=""):
    r = await call(port, "GET", "/api/rooms/%s/history%s" % (room, query))
    assert r.status == 200, r
    assert (r.header("content-type") or "").startswith("application/json"), r
    return json.loads(r.body)


def assert_error(r, status, fragment=None):
    assert r.status == status, "want %d, got %r" % (status, r)
    if fragment is not None:
        assert fragment in r.body.decode("utf-8", "replace"), \
            "%r not in %r" % (fragment, r.body)


async def test_post_reaches_websocket_clients(cl):
    room = h.uniq("api")
    j = cl.track(await h.JsonClient.connect(cl.gw.port, label="j"))
    await j.join(room, "alice")
    r = await post(cl.gw.port, room, "bot", "hello from a backend")
    assert r.status == 200, r
    doc = json.loads(r.body)
    assert doc == {"room": room, "seq": 1}, doc
    m = await j.wait(lambda m: m.get("type") == "msg", 5, "the posted msg")
    assert (m["room"], m["seq"], m["nick"], m["text"]) == (
        room, 1, "bot", "hello from a backend"), m
    assert isinstance(m["ts"], int), m


async def test_history_since_and_limit(cl):
    room = h.uniq("hist")
    seqs = []
    for i in range(5):
        r = await post(cl.gw.port, room, "bot", "m%d" % i)
        assert r.status == 200, r
        seqs.append(json.loads(r.body)["seq"])
    assert seqs == [1, 2, 3, 4, 5], seqs
    doc = await history(cl.gw.port, room)
    assert doc["room"] == room and doc["seq"] == 5, doc
    assert isinstance(doc["epoch"], str) and doc["epoch"], doc
    msgs = doc["messages"]
    assert [m["seq"] for m in msgs] == seqs, msgs
    assert [m["text"] for m in msgs] == ["m%d" % i for i in range(5)], msgs
    for m in msgs:
        assert m["type"] == "msg" and m["room"] == room and m["nick"] == "bot"
        assert set(m) == {"type", "room", "seq", "ts", "nick", "text"}, m
    first = await history(cl.gw.port, room, "?since=2&limit=2")
    assert [m["seq"] for m in first["messages"]] == [3, 4], first
    last = await history(cl.gw.port, room, "?limit=2")
    assert [m["seq"] for m in last["messages"]] == [4, 5], last
    after = await history(cl.gw.port, room, "?since=5")
    assert after["messages"] == [] and after["seq"] == 5, after
    assert after["epoch"] == doc["epoch"], after
    empty = await history(cl.gw.port, h.uniq("none"))
    assert empty["messages"] == [] and empty["seq"] == 0, empty


async def test_keep_alive_post_then_get(cl):
    room = h.uniq("ka")
    port = cl.gw.port
    r, w = await h.open_conn(port)
    try:
        w.write(raw(port, "POST", "/api/rooms/%s/messages" % room,
                    {"nick": "bot", "text": "one"}, close=False))
        await w.drain()
        a = await h.read_response(r)
        assert a.status == 200, a
        assert "close" not in (a.header("connection") or "").lower(), a
        w.write(raw(port, "GET", "/api/rooms/%s/history" % room, close=False))
        await w.drain()
        b = await h.read_response(r)
    finally:
        w.close()
    assert b.status == 200, b
    assert [m["text"] for m in json.loads(b.body)["messages"]] == ["one"], b


async def test_body_in_pieces_and_expect_continue(cl):
    room = h.uniq("split")
    port = cl.gw.port
    body = json.dumps({"nick": "bot", "text": "split body"}).encode()
    r, w = await h.open_conn(port)
    try:
        head = raw(port, "POST", "/api/rooms/%s/messages" % room, body,
                   headers=[("Expect", "100-continue")])[:-len(body)]
        w.write(head)
        await w.drain()
        cont = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert cont.startswith(b"HTTP/1.1 100"), cont
        for i in range(0, len(body), 7):
            w.write(body[i:i + 7])
            await w.drain()
            await asyncio.sleep(0.02)
        a = await h.read_response(r)
    finally:
        w.close()
    assert a.status == 200, a
    assert json.loads(a.body) == {"room": room, "seq": 1}, a


async def test_authentication(cl):
    port = cl.gw.port
    room = h.uniq("auth")
    for token in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
        for method, path, body in (
                ("POST", "/api/rooms/%s/messages" % room,
                 {"nick": "bot", "text": "x"}),
                ("GET", "/api/rooms/%s/history" % room, None)):
            r = await call(port, method, path, body, token=token)
            assert_error(r, 401)
            auth = r.header("www-authenticate") or ""
            assert auth.startswith("Bearer"), r.headers
    r = await call(port, "GET", "/api/rooms/%s/history" % room, token=None,
                   headers=[("Authorization", "Basic Ym90OnMzY3JldA==")])
    assert_error(r, 401)
    r = await call(port, "GET", "/api/rooms/%s/history" % room, token=None,
                   headers=[("Authorization", "bearer " + TOKEN)])
    assert r.status == 200, r     # the scheme is case-insensitive
    doc = await history(port, room)
    assert doc["messages"] == [], "a refused POST was sequenced: %r" % doc


async def test_bad_bodies(cl):
    port = cl.gw.port
    room = h.uniq("bad")
    path = "/api/rooms/%s/messages" % room
    cases = [
        ("{not json", 400, "body is not JSON"),
        ('["nick","text"]', 400, "JSON object"),
        ({"text": "x"}, 400, "nick must be a string"),
        ({"nick": 5, "text": "x"}, 400, "nick must be a string"),
        ({"nick": "", "text": "x"}, 400, "nick"),
        ({"nick": "n" * 33, "text": "x"}, 400, "nick"),
        ({"nick": "bad\u0007nick", "text": "x"}, 400, "nick"),
        ({"nick": "bot"}, 400, "text must be a string"),
        ({"nick": "bot", "text": ["x"]}, 400, "text must be a string"),
        ({"nick": "bot", "text": ""}, 400, "text is empty"),
        ({"nick": "bot", "text": "t" * (MAX_TEXT + 1)}, 413, "text too long"),
        ('{"nick":"bot","text":"\\ud800"}', 400, "body is not JSON"),
    ]
    for body, status, frag in cases:
        assert_error(await call(port, "POST", path, body), status, frag)
    ok = await call(port, "POST", path,
                    {"nick": "b\u00f6t", "text": "t" * MAX_TEXT})
    assert ok.status == 200 and json.loads(ok.body)["seq"] == 1, ok


async def test_body_framing_errors(cl):
    port = cl.gw.port
    path = "/api/rooms/%s/messages" % h.uniq("frame")
    big = {"nick": "bot", "text": "x" * MAX_BODY}
    assert_error(await call(port, "POST", path, big), 413, "too large")
    assert_error(await call(port, "POST", path, {"nick": "bot", "text": "x"},
                            length=False), 411)
    chunked = b'13\r\n{"nick":"b","text":1}\r\n0\r\n\r\n'
    assert_error(await call(port, "POST", path, chunked, length=False,
                            headers=[("Transfer-Encoding", "chunked")]), 501)
    assert_error(await call(port, "POST", path, b""), 400, "body is not JSON")


async def test_paths_methods_and_queries(cl):
    port = cl.gw.port
    room = h.uniq("paths")
    assert_error(await call(port, "POST", "/api/rooms/bad!room/messages",
                            {"nick": "bot", "text": "x"}), 404, "invalid room")
    assert_error(await call(port, "GET", "/api/rooms/%s/history" % ("r" * 65)),
                 404, "invalid room")
    for p in ("/api", "/api/", "/api/rooms", "/api/rooms/%s" % room,
              "/api/rooms/%s/other" % room, "/api/rooms/%s/messages/x" % room,
              "/api/v2/rooms/%s/messages" % room):
        assert_error(await call(port, "GET", p), 404)
    r = await call(port, "GET", "/api/rooms/%s/messages" % room)
    assert_error(r, 405)
    assert "POST" in (r.header("allow") or ""), r.headers
    r = await call(port, "POST", "/api/rooms/%s/history" % room,
                   {"nick": "bot", "text": "x"})
    assert_error(r, 405)
    assert "GET" in (r.header("allow") or ""), r.headers
    for q in ("?limit=abc", "?limit=0", "?since=-1", "?since=",
              "?since=99999999999999999999999"):
        assert_error(await call(port, "GET", "/api/rooms/%s/history%s"
                                % (room, q)), 400)
    doc = await history(port, room, "?limit=100000&other=1")
    assert doc["messages"] == [], doc


async def test_client_gone_while_waiting(cl):
    """Connections that close right after their request: the late broker
    answers must find nothing (no crash, no sanitizer report)."""
    port = cl.gw.port
    room = h.uniq("gone")
    for i in range(20):
        r, w = await h.open_conn(port)
        w.write(raw(port, "POST", "/api/rooms/%s/messages" % room,
                    {"nick": "bot", "text": "gone %d" % i}))
        w.write(raw(port, "GET", "/api/rooms/%s/history" % room))
        await w.drain()
        w.transport.abort()
    r = await post(port, room, "bot", "still here")
    assert r.status == 200, r


async def test_disabled_without_token():
    async with h.Cluster(gateways=1, workers=1) as c:
        port = c.gw.port
        for method, path, body in (
                ("POST", "/api/rooms/lobby/messages",
                 {"nick": "bot", "text": "x"}),
                ("GET", "/api/rooms/lobby/history", None),
                ("GET", "/api/nothing", None)):
            r = await call(port, method, path, body)
            assert_error(r, 404, "HTTP API disabled")


async def test_broker_gone_or_mute():
    async with h.Cluster(gateways=1, workers=1, gateway_args=[
            "--api-token", TOKEN, "--request-timeout", "300ms"]) as c:
        port = c.gw.port
        room = h.uniq("down")
        assert (await post(port, room)).status == 200
        # mute: the link is still up for a moment, the request goes out and
        # gets no answer (or the link is seen down first: 503 either way)
        os.kill(c.broker.pid, signal.SIGSTOP)
        try:
            r = await post(port, room, text="to a mute broker")
            assert_error(r, 503)
            assert any(s in r.body for s in (b"broker did not answer",
                                             b"broker unavailable")), r
            await h.wait_healthz(port, 503, time.monotonic() + 10, c.gw)
            assert_error(await post(port, room), 503, "broker unavailable")
            assert_error(await call(port, "GET", "/api/rooms/%s/history"
                                    % room), 503, "broker unavailable")
        finally:
            os.kill(c.broker.pid, signal.SIGCONT)
        await h.wait_healthz(port, 200, time.monotonic() + 10, c.gw)
        c.broker.kill_hard()
        await h.wait_healthz(port, 503, time.monotonic() + 10, c.gw)
        assert_error(await post(port, room), 503, "broker unavailable")


if __name__ == "__main__":
    h.run(globals(), shared=cluster)
