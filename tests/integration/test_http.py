#!/usr/bin/python3
"""HTTP side of a gateway: static files, conditional requests, errors,
path traversal, limits, keep-alive, /healthz and /metrics."""

import asyncio
import email.utils
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SECRET = b"SECRET-OUTSIDE-WWW-7f3a"
CSS = b"body { color: #123456; }\n"
JS = b"console.log('parley test');\n"


def make_www():
    """A temp www copy plus files to serve, a secret file beside www, and
    symlinks inside www that point outside it."""
    tmp = tempfile.mkdtemp(prefix="parley-itest-http-")
    www = h.default_www(tmp)
    with open(os.path.join(tmp, "secret.txt"), "wb") as f:
        f.write(SECRET)
    with open(os.path.join(www, "t.css"), "wb") as f:
        f.write(CSS)
    with open(os.path.join(www, "t.js"), "wb") as f:
        f.write(JS)
    os.makedirs(os.path.join(www, "sub"))
    with open(os.path.join(www, "sub", "page.html"), "wb") as f:
        f.write(b"<p>sub page</p>\n")
    os.symlink(os.path.join(tmp, "secret.txt"), os.path.join(www, "escape"))
    os.symlink(tmp, os.path.join(www, "escape_dir"))
    os.symlink("/etc/passwd", os.path.join(www, "passwd"))
    return tmp, www


def cluster():
    tmp, www = make_www()
    c = h.Cluster(gateways=1, workers=2, www=www, tmpdir=tmp, gateway_args=[
        "--max-head", "16k", "--max-request-line", "2k", "--max-headers", "32",
        "--header-timeout", "1s", "--idle-timeout", "5s"])
    c.own_tmpdir = True
    return c


def req(port, path, method="GET", headers=(), close=True):
    s = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (method, path, port)
    if close:
        s += "Connection: close\r\n"
    for k, v in headers:
        s += "%s: %s\r\n" % (k, v)
    return (s + "\r\n").encode("latin-1")


def index_bytes(cl):
    with open(os.path.join(cl.www, "index.html"), "rb") as f:
        return f.read()


async def test_get_index(cl):
    r = await h.http_get(cl.gw.port, "/")
    want = index_bytes(cl)
    assert r.status == 200, r
    ctype = r.header("content-type") or ""
    assert ctype.startswith("text/html"), "Content-Type %r" % ctype
    assert r.header("content-length") == str(len(want)), \
        "Content-Length %r, file has %d bytes" % (r.header("content-length"),
                                                   len(want))
    assert r.body == want, "body differs from www/index.html"
    assert r.header("etag"), "no ETag"
    lm = r.header("last-modified")
    assert lm, "no Last-Modified"
    assert email.utils.parsedate_to_datetime(lm) is not None


async def test_get_index_html_same_as_root(cl):
    a = await h.http_get(cl.gw.port, "/")
    b = await h.http_get(cl.gw.port, "/index.html")
    assert b.status == 200 and b.body == a.body, (a, b)
    assert a.header("etag") == b.header("etag")


async def test_content_types(cl):
    for path, body, types in (("/t.css", CSS, ("text/css",)),
                              ("/t.js", JS, ("text/javascript",
                                             "application/javascript")),
                              ("/sub/page.html", b"<p>sub page</p>\n",
                               ("text/html",))):
        r = await h.http_get(cl.gw.port, path)
        assert r.status == 200 and r.body == body, (path, r)
        ct = (r.header("content-type") or "").split(";")[0].strip()
        assert ct in types, "%s: Content-Type %r" % (path, ct)


async def test_head_same_headers_no_body(cl):
    port = cl.gw.port
    g = await h.http_get(port, "/")
    r, w = await h.open_conn(port)
    try:
        w.write(req(port, "/", "HEAD"))
        await w.drain()
        resp = await h.read_response(r, "HEAD")
        rest = await h.read_until_eof(r)
    finally:
        w.close()
    assert resp.status == 200, resp
    for name in ("content-type", "content-length", "etag", "last-modified"):
        assert resp.header(name) == g.header(name), \
            "HEAD %s %r vs GET %r" % (name, resp.header(name), g.header(name))
    assert rest == b"", "HEAD response has a body: %r" % rest[:80]


async def test_if_none_match_304(cl):
    port = cl.gw.port
    g = await h.http_get(port, "/")
    etag = g.header("etag")
    r, w = await h.open_conn(port)
    try:
        w.write(req(port, "/", headers=[("If-None-Match", etag)]))
        await w.drain()
        resp = await h.read_response(r)
        rest = await h.read_until_eof(r)
    finally:
        w.close()
    assert resp.status == 304, resp
    assert rest == b"", "304 has a body: %r" % rest[:80]
    other = await h.http_get(port, "/", headers=[("If-None-Match", '"nope"')])
    assert other.status == 200 and other.body == g.body, other
    star = await h.http_get(port, "/", headers=[("If-None-Match", "*")])
    assert star.status == 304, "If-None-Match: * answered %d" % star.status
    listed = await h.http_get(port, "/", headers=[
        ("If-None-Match", '"zzz", %s' % etag)])
    assert listed.status == 304, "etag in a list answered %d" % listed.status


async def test_if_modified_since_304(cl):
    g = await h.http_get(cl.gw.port, "/")
    r = await h.http_get(cl.gw.port, "/", headers=[
        ("If-Modified-Since", g.header("last-modified"))])
    assert r.status == 304, r
    old = await h.http_get(cl.gw.port, "/", headers=[
        ("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")])
    assert old.status == 200 and old.body == g.body, old


async def test_404_missing_file(cl):
    r = await h.http_get(cl.gw.port, "/no-such-file.html")
    assert r.status == 404, r
    assert r.body, "404 without a text body"
    r = await h.http_get(cl.gw.port, "/sub/nope/deeper.css")
    assert r.status == 404, r


async def test_405_post_root(cl):
    port = cl.gw.port
    data = ("POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
            "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
            % port).encode()
    r = await h.http_exchange(port, data)
    assert r.status == 405, r


async def test_path_traversal(cl):
    paths = ["/../etc/passwd", "/%2e%2e/etc/passwd", "/%2e%2e%2fetc%2fpasswd",
             "/..%2f..%2fetc/passwd", "/../../../../../../../../etc/passwd",
             "/sub/../../etc/passwd", "/.%2e/etc/passwd", "/%2E%2E/%2E%2E/etc/passwd",
             "/..%5c..%5cetc%5cpasswd", "/..\\..\\etc\\passwd",
             "/../secret.txt", "/%2e%2e/secret.txt", "/%2e%2e%2fsecret.txt",
             "/sub/..%2f..%2fsecret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
             "/%252e%252e/secret.txt", "/%c0%ae%c0%ae/secret.txt",
             "/index.html%00", "/%00", "/index.html%00.css", "/t.css%00/../../secret.txt",
             "//etc/passwd", "/escape", "/escape_dir/secret.txt",
             "/passwd", "/sub/../escape"]
    bad = []
    for p in paths:
        try:
            r = await h.http_exchange(cl.gw.port, req(cl.gw.port, p))
        except h.HttpError as e:
            bad.append("%s: no reply (%s)" % (p, e))
            continue
        leaked = SECRET in r.body or b"root:" in r.body
        if leaked or r.status not in (400, 403, 404):
            bad.append("%s: %d %r" % (p, r.status, r.body[:60]))
    assert not bad, "traversal not refused with 400/403/404:\n  " + \
        "\n  ".join(bad)


async def test_431_oversized_header(cl):
    port = cl.gw.port
    data = req(port, "/", headers=[("X-Big", "a" * 20000)])
    r = await h.http_exchange(port, data)
    assert r.status == 431, r
    many = req(port, "/", headers=[("X-H%d" % i, "v") for i in range(40)])
    r = await h.http_exchange(port, many)
    assert r.status == 431, "40 headers (max 32): %r" % r


async def test_414_request_line_too_long(cl):
    port = cl.gw.port
    r = await h.http_exchange(port, req(port, "/" + "a" * 4000))
    assert r.status == 414, r


async def test_400_malformed_request_line(cl):
    port = cl.gw.port
    bad = []
    for line in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
                 b"GET / FOO/1.1\r\nHost: x\r\n\r\n",
                 b"GET\r\nHost: x\r\n\r\n",
                 b"GET /\x01x HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"):
        try:
            r = await h.http_exchange(port, line)
            if r.status != 400:
                bad.append("%r: %d" % (line[:30], r.status))
        except h.HttpError as e:
            bad.append("%r: no reply (%s)" % (line[:30], e))
    assert not bad, "not answered 400: " + "; ".join(bad)


async def test_tls_hello_refused(cl):
    """A TLS ClientHello on the plain port (no line end in sight) gets a
    400 at once or a 408 at the header timeout, never a hang or a 200."""
    hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(32)
    r, w = await h.open_conn(cl.gw.port)
    try:
        w.write(hello)
        await w.drain()
        data = await h.read_until_eof(r, timeout=10)
    finally:
        w.close()
    assert data[:12] in (b"HTTP/1.1 400", b"HTTP/1.1 408"), data[:60]


async def test_400_http11_without_host(cl):
    r = await h.http_exchange(cl.gw.port,
                              b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert r.status == 400, "HTTP/1.1 request without Host: %r" % r


async def test_unknown_method(cl):
    r = await h.http_exchange(cl.gw.port, req(cl.gw.port, "/", "BREW"))
    assert r.status in (400, 405, 501), r


async def test_keepalive_pipelined(cl):
    port = cl.gw.port
    r, w = await h.open_conn(port)
    try:
        w.write(req(port, "/t.css", close=False) + req(port, "/t.js", close=False)
                + req(port, "/sub/page.html", close=True))
        await w.drain()
        a = await h.read_response(r)
        b = await h.read_response(r)
        c = await h.read_response(r)
        rest = await h.read_until_eof(r)
    finally:
        w.close()
    assert (a.status, a.body) == (200, CSS), a
    assert (b.status, b.body) == (200, JS), b
    assert (c.status, c.body) == (200, b"<p>sub page</p>\n"), c
    assert rest == b"", "data after the last response: %r" % rest[:80]


async def test_keepalive_sequential(cl):
    port = cl.gw.port
    r, w = await h.open_conn(port)
    try:
        for path, body in (("/t.css", CSS), ("/t.js", JS), ("/t.css", CSS)):
            w.write(req(port, path, close=False))
            await w.drain()
            resp = await h.read_response(r)
            assert (resp.status, resp.body) == (200, body), (path, resp)
            assert "close" not in (resp.header("connection") or "").lower()
    finally:
        w.close()


async def test_http10_closes(cl):
    r, w = await h.open_conn(cl.gw.port)
    try:
        w.write(b"GET /t.css HTTP/1.0\r\n\r\n")
        await w.drain()
        resp = await h.read_response(r)
        rest = await h.read_until_eof(r)
    finally:
        w.close()
    assert (resp.status, resp.body) == (200, CSS), resp
    assert rest == b""


async def test_healthz(cl):
    r = await h.http_get(cl.gw.port, "/healthz")
    assert r.status == 200, r
    assert (r.header("content-type") or "").startswith("application/json"), \
        r.header("content-type")
    doc = json.loads(r.body)
    assert isinstance(doc, dict) and doc.get("status") == "ok", doc


async def test_metrics(cl):
    await h.http_get(cl.gw.port, "/t.css")
    r = await h.http_get(cl.gw.port, "/metrics")
    assert r.status == 200, r
    assert (r.header("content-type") or "").startswith("text/plain"), \
        r.header("content-type")
    text = r.body.decode("utf-8")
    samples = h.parse_metrics(text)
    names = {n for n, _ in samples}
    assert any(n.startswith("parley_") for n in names), sorted(names)[:10]
    bad = [n for n in names if not n.startswith("parley_")
           and not n.startswith("process_")]
    assert not bad, "metrics without the parley_ prefix: %s" % bad


async def test_byte_at_a_time(cl):
    port = cl.gw.port
    r, w = await h.open_conn(port)
    w.transport.get_extra_info("socket").setsockopt(6, 1, 1)   # TCP_NODELAY
    try:
        for b in req(port, "/t.css"):
            w.write(bytes([b]))
            await w.drain()
            await asyncio.sleep(0.002)
        resp = await h.read_response(r)
    finally:
        w.close()
    assert (resp.status, resp.body) == (200, CSS), resp


async def test_header_timeout_408(cl):
    r, w = await h.open_conn(cl.gw.port)
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await w.drain()
        data = await h.read_until_eof(r, timeout=10)
    finally:
        w.close()
    assert data.startswith(b"HTTP/1.1 408"), \
        "partial head after header timeout: %r" % data[:60]


async def test_error_then_keepalive_404(cl):
    """After a 404 the connection either says Connection: close and closes,
    or stays usable: the next request is served."""
    port = cl.gw.port
    r, w = await h.open_conn(port)
    try:
        w.write(req(port, "/nope", close=False))
        await w.drain()
        a = await h.read_response(r)
        assert a.status == 404, a
        if "close" in (a.header("connection") or "").lower():
            rest = await h.read_until_eof(r)
            assert rest == b"", rest[:60]
            return
        w.write(req(port, "/t.css"))
        await w.drain()
        b = await h.read_response(r)
    finally:
        w.close()
    assert (b.status, b.body) == (200, CSS), b


if __name__ == "__main__":
    h.run(globals(), shared=cluster)
