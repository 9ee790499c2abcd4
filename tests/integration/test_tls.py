#!/usr/bin/python3
"""Hardening of the gateway's connection side: TLS listeners (wss:// chat
across gateways, HTTPS, ALPN, versions and ciphers, session resumption,
handshake failures, certificate checks at startup, reload on SIGHUP), the
Origin policy of WebSocket upgrades, the per-address connection limit, and
running as root (refusal, --user).

Certificates are made here with the openssl command: a root CA, an
intermediate CA and a server certificate for 127.0.0.1 (the gateway serves
the chain server + intermediate; clients trust only the root), plus an
expired and a not-yet-valid certificate signed with "openssl ca", whose
-startdate/-enddate can lie in the past."""

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import JsonClient, PlainClient  # noqa: E402

import websockets  # noqa: E402

HEADER_TIMEOUT_S = 2

# --------------------------------------------------------------------------
# certificates

OPENSSL_CNF = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca]
default_ca = testca
[testca]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = pol_any
unique_subject = no
[pol_any]
commonName = supplied
"""


class Certs:
    """Every certificate and key of the tests, in a private directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="parley-tls-")
        os.chmod(self.dir, 0o755)
        os.makedirs(self.p("newcerts"))
        open(self.p("index.txt"), "w").close()
        with open(self.p("serial"), "w") as f:
            f.write("1000\n")
        with open(self.p("openssl.cnf"), "w") as f:
            f.write(OPENSSL_CNF.format(dir=self.dir))
        self.cnf = self.p("openssl.cnf")
        self.make_ca("root", None)
        self.make_ca("inter", "root")
        self.server("server")
        self.server("server2")       # another certificate, for reloads
        self.dated("expired", "20200101000000Z", "20200102000000Z")
        self.dated("future", "20991231000000Z", "21000101000000Z")

    def p(self, name):
        return os.path.join(self.dir, name)

    def run(self, *args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True,
                           timeout=60)
        if r.returncode != 0:
            raise h.HarnessError("openssl %s failed: %s" % (
                args[0], r.stderr.decode("utf-8", "replace")[-800:]))

    def new_key_csr(self, name, cn):
        self.run("req", "-new", "-config", self.cnf, "-newkey", "ec",
                 "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.p(name + ".key"), "-out",
                 self.p(name + ".csr"), "-subj", "/CN=" + cn)
        os.chmod(self.p(name + ".key"), 0o600)

    def make_ca(self, name, parent):
        if parent is None:
            self.run("req", "-x509", "-config", self.cnf, "-extensions",
                     "v3_ca", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                     self.p(name + ".key"), "-out", self.p(name + ".pem"),
                     "-days", "3", "-subj", "/CN=Parley test " + name)
            return
        self.new_key_csr(name, "Parley test " + name)
        self.sign(name, parent, "v3_ca")

    def sign(self, name, ca, ext):
        self.run("x509", "-req", "-in", self.p(name + ".csr"), "-CA",
                 self.p(ca + ".pem"), "-CAkey", self.p(ca + ".key"),
                 "-CAcreateserial", "-out", self.p(name + ".pem"), "-days",
                 "3", "-extfile", self.cnf, "-extensions", ext)

    def server(self, name):
        """name.pem signed by the intermediate, name.chain = it + inter."""
        self.new_key_csr(name, "127.0.0.1")
        self.sign(name, "inter", "v3_server")
        with open(self.p(name + ".chain"), "w") as out:
            for part in (name + ".pem", "inter.pem"):
                with open(self.p(part)) as f:
                    out.write(f.read())

    def dated(self, name, start, end):
        """A server certificate valid from start to end, signed by root."""
        self.new_key_csr(name, "127.0.0.1")
        self.run("ca", "-batch", "-config", self.cnf, "-cert",
                 self.p("root.pem"), "-keyfile", self.p("root.key"), "-in",
                 self.p(name + ".csr"), "-out", self.p(name + ".pem"),
                 "-startdate", start, "-enddate", end, "-extensions",
                 "v3_server", "-extfile", self.cnf, "-notext")

    def client_ctx(self, alpn=None):
        ctx = ssl.create_default_context(cafile=self.p("root.pem"))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def fingerprint(self, name):
        r = subprocess.run(["openssl", "x509", "-in", self.p(name + ".pem"),
                            "-outform", "DER"], capture_output=True,
                           timeout=30)
        return hashlib.sha256(r.stdout).hexdigest()


CERTS = None


def certs():
    global CERTS
    if CERTS is None:
        CERTS = Certs()
    return CERTS


def tls_args(port, cert="server.chain", key="server.key", extra=()):
    c = certs()
    return ["--tls-listen", "127.0.0.1:%d" % port, "--tls-cert", c.p(cert),
            "--tls-key", c.p(key)] + list(extra)


def with_tls(cluster, extra=()):
    """Gives every gateway of cluster (not started yet) a TLS listener on a
    port of its own: g.tls_port."""
    for g in cluster.gateways:
        g.tls_port = h.free_port()
        g.argv += tls_args(g.tls_port, extra=extra)
    return cluster


def cluster():
    return with_tls(h.Cluster(gateways=2, workers=2, gateway_args=[
        "--header-timeout", "%ds" % HEADER_TIMEOUT_S]))


# --------------------------------------------------------------------------
# clients


async def wss_client(cls, port, path="/ws", subprotocols=None, label=None):
    ws = await websockets.connect(
        "wss://127.0.0.1:%d%s" % (port, path), ssl=certs().client_ctx(),
        subprotocols=subprotocols, open_timeout=5, ping_interval=None,
        close_timeout=2, max_size=1 << 24, max_queue=None)
    c = cls(ws, label or "wss:%d%s" % (port, path))
    if cls is JsonClient:
        c.welcome = await c.next()
        assert c.welcome.get("type") == "welcome", c.welcome
    return c


async def https_exchange(port, data, ctx=None, method="GET"):
    """Sends raw bytes over TLS; returns (response, ssl object)."""
    r, w = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx or certs().client_ctx(),
        server_hostname="127.0.0.1"), 5)
    try:
        w.write(data)
        await w.drain()
        resp = await h.read_response(r, method)
        return resp, w.get_extra_info("ssl_object")
    finally:
        w.close()


def get_req(path, port, close=True):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n" % (
        path, port, "Connection: close\r\n" if close else "")).encode()


def tls_handshake_sync(port, ctx, session=None):
    """A blocking TLS connection that sends one request; returns (status
    line, ssl socket attributes) and closes."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
    try:
        s.sendall(get_req("/healthz", port))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return (data.split(b"\r\n", 1)[0], s.session, s.session_reused,
                hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest())
    finally:
        s.close()


def client_hello():
    """The bytes of a real ClientHello (from Python's ssl, in memory)."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


async def metric(port, fragment):
    r = await h.http_get(port, "/metrics")
    assert r.status == 200, r
    v = h.metric_sum(r.body.decode(), fragment)
    return v if v is not None else 0


async def wait_metric(port, fragment, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = await metric(port, fragment)
        if v >= want or time.monotonic() > deadline:
            return v
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------
# TLS on the shared cluster


async def test_wss_plain_chat_across_gateways(cl):
    a, b = cl.gateways
    path = "/ws/" + h.uniq("tls")
    ca = await wss_client(PlainClient, a.tls_port, path)
    cb = await wss_client(PlainClient, b.tls_port, path)
    plain = await PlainClient.connect(b.port, path)   # ws:// meets wss://
    line = "over TLS \u00e9\U0001F512"
    await ca.send(line)
    for c in (ca, cb, plain):
        got = await c.next()
        assert got == line, "%s got %r" % (c.label, got)
    await cb.send("back")
    assert await ca.next() == "back"


async def test_wss_json_chat_across_gateways(cl):
    a, b = cl.gateways
    room = h.uniq("tlsj")
    s = await wss_client(JsonClient, a.tls_port, subprotocols=["parley.v1"])
    r = await wss_client(JsonClient, b.tls_port, subprotocols=["parley.v1"])
    assert s.ws.subprotocol == "parley.v1"
    await s.join(room, "alice")
    await r.join(room, "bob")
    ack = await s.say(room, "secret hello", ref="t1")
    assert ack["type"] == "ack", ack
    m = await r.wait(lambda m: m.get("type") == "msg" and m.get("room") == room)
    assert m["text"] == "secret hello" and m["nick"] == "alice", m


async def test_https_get_and_alpn(cl):
    port = cl.gw.tls_port
    resp, so = await https_exchange(port, get_req("/", port),
                                    certs().client_ctx(["h2", "http/1.1"]))
    assert resp.status == 200 and b"<" in resp.body, resp
    assert so.selected_alpn_protocol() == "http/1.1", so.selected_alpn_protocol()
    assert so.version() in ("TLSv1.2", "TLSv1.3"), so.version()
    # only h2 offered: no ALPN selected, the handshake still succeeds
    resp, so = await https_exchange(port, get_req("/healthz", port),
                                    certs().client_ctx(["h2"]))
    assert resp.status == 200 and so.selected_alpn_protocol() is None, \
        so.selected_alpn_protocol()
    # no ALPN at all
    resp, so = await https_exchange(port, get_req("/healthz", port))
    assert resp.status == 200, resp


async def test_tls12_ciphers_and_old_versions(cl):
    port = cl.gw.tls_port
    ctx = certs().client_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    resp, so = await https_exchange(port, get_req("/healthz", port), ctx)
    assert resp.status == 200 and so.version() == "TLSv1.2", so.version()
    name = so.cipher()[0]
    assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA" in name), \
        name
    before = await metric(cl.gw.port, "tls_handshake_failures")
    cbc = certs().client_ctx()
    cbc.maximum_version = ssl.TLSVersion.TLSv1_2
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    try:
        await https_exchange(port, get_req("/healthz", port), cbc)
        raise AssertionError("a CBC-only TLS 1.2 client was accepted")
    except (ssl.SSLError, ConnectionError):
        pass
    got = await wait_metric(cl.gw.port, "tls_handshake_failures", before + 1)
    assert got >= before + 1, (before, got)


async def test_session_resumption(cl):
    port = cl.gw.tls_port
    ctx = certs().client_ctx()
    first = await asyncio.to_thread(tls_handshake_sync, port, ctx)
    assert first[0].startswith(b"HTTP/1.1 200"), first[0]
    assert not first[2] and first[1] is not None
    # tickets: any worker of the gateway can resume (same ticket keys)
    resumed = 0
    for _ in range(4):
        r = await asyncio.to_thread(tls_handshake_sync, port, ctx, first[1])
        assert r[0].startswith(b"HTTP/1.1 200"), r[0]
        resumed += r[2]
    assert resumed == 4, "resumed %d of 4" % resumed


async def test_plain_http_on_tls_port(cl):
    g = cl.gw
    before = await metric(g.port, "tls_handshake_failures")
    other = await wss_client(PlainClient, g.tls_port, "/ws/" + h.uniq("o"))
    for _ in range(3):
        r, w = await h.open_conn(g.tls_port)
        w.write(get_req("/", g.tls_port))
        await w.drain()
        data = await h.read_until_eof(r, 5)
        w.close()
        assert not data.startswith(b"HTTP/"), data[:80]
    got = await wait_metric(g.port, "tls_handshake_failures", before + 3)
    assert got >= before + 3, (before, got)
    # the gateway and its other clients carry on
    await other.send("still here")
    assert await other.next() == "still here"
    resp, _ = await https_exchange(g.tls_port, get_req("/healthz", g.tls_port))
    assert resp.status == 200, resp
    assert "tls_handshake_failed" in g.log_text()


async def test_truncated_handshakes(cl):
    g = cl.gw
    hello = client_hello()
    assert len(hello) > 100 and hello[0] == 0x16, hello[:8]
    before = await metric(g.port, "tls_handshake_failures")
    # half a ClientHello, then close
    r, w = await h.open_conn(g.tls_port)
    w.write(hello[:len(hello) // 2])
    await w.drain()
    w.close()
    # half a ClientHello, then silence: the header timeout closes it
    r, w = await h.open_conn(g.tls_port)
    w.write(hello[:len(hello) // 2])
    await w.drain()
    data = await h.read_until_eof(r, HEADER_TIMEOUT_S + 5)
    w.close()
    assert data == b"" or data[0] == 0x15, data[:20]   # nothing, or an alert
    # a connection that sends nothing at all is closed the same way
    r, w = await h.open_conn(g.tls_port)
    await h.read_until_eof(r, HEADER_TIMEOUT_S + 5)
    w.close()
    got = await wait_metric(g.port, "tls_handshake_failures", before + 3)
    assert got >= before + 3, (before, got)
    resp, _ = await https_exchange(g.tls_port, get_req("/healthz", g.tls_port))
    assert resp.status == 200, resp


# --------------------------------------------------------------------------
# the Origin policy


def origin_headers(origin):
    return [("Origin", origin)] if origin is not None else []


async def upgrade_status(port, origin, host=None):
    extra = origin_headers(origin)
    r, w = await h.open_conn(port)
    try:
        w.write(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n%s\r\n" % (
                     host or "127.0.0.1:%d" % port, h.new_key(),
                     "".join("%s: %s\r\n" % kv for kv in extra))).encode())
        await w.drain()
        resp = await h.read_response(r)
        return resp
    finally:
        w.close()


async def test_origin_default_policy(cl):
    port = cl.gw.port
    before = await labeled(port, "handshake_failures_total", "origin")
    r = await upgrade_status(port, "http://evil.example")
    assert r.status == 403 and b"origin not allowed" in r.body, r
    r = await upgrade_status(port, "http://127.0.0.1:%d" % port)
    assert r.status == 101, r
    r = await upgrade_status(port, None)
    assert r.status == 101, r
    r = await upgrade_status(port, "http://localhost:3000")
    assert r.status == 101, r
    r = await upgrade_status(port, "https://chat.example.com",
                             host="chat.example.com")
    assert r.status == 101, r
    r = await upgrade_status(port, "https://chat.example.com:8443",
                             host="chat.example.com")
    assert r.status == 403, r
    r = await upgrade_status(port, "null")
    assert r.status == 403, r
    # over TLS too, through websockets' own Origin header
    try:
        ws = await websockets.connect(
            "wss://127.0.0.1:%d/ws" % cl.gw.tls_port, ssl=certs().client_ctx(),
            origin="https://evil.example", open_timeout=5)
        await ws.close()
        raise AssertionError("evil origin accepted over TLS")
    except websockets.exceptions.InvalidStatusCode as e:
        assert e.status_code == 403, e
    after = await labeled(port, "handshake_failures_total", "origin")
    assert after == before + 4, (before, after)


async def test_origin_configured():
    c = h.Cluster(gateways=2, workers=1)
    c.gateways[0].argv += ["--allowed-origins", "*"]
    c.gateways[1].argv += ["--allowed-origins",
                           "https://chat.example.com, http://other.example:81"]
    async with c:
        star, listed = c.gateways
        r = await upgrade_status(star.port, "http://evil.example")
        assert r.status == 101, r
        r = await upgrade_status(star.port, "null")
        assert r.status == 101, r
        for origin, want in (("http://evil.example", 403),
                             ("https://chat.example.com", 101),
                             ("https://CHAT.example.com:443", 101),
                             ("http://other.example:81", 101),
                             ("http://other.example", 403),
                             # an explicit list replaces the default rule
                             ("http://127.0.0.1:%d" % listed.port, 403),
                             (None, 101)):
            r = await upgrade_status(listed.port, origin)
            assert r.status == want, (origin, r)


# --------------------------------------------------------------------------
# the per-address limit


async def test_per_ip_limit():
    c = with_tls(h.Cluster(gateways=1, workers=1,
                           gateway_args=["--max-connections-per-ip", "5"]))
    async with c:
        g = c.gw
        held = [await h.open_conn(g.port) for _ in range(5)]
        r = await h.http_get(g.port, "/healthz")
        assert r.status == 503 and \
            b"too many connections from your address" in r.body, r
        # the answer comes through TLS on a TLS listener
        resp, _ = await https_exchange(g.tls_port,
                                       get_req("/healthz", g.tls_port))
        assert resp.status == 503, resp
        # one closes: room for exactly one more
        held.pop()[1].close()
        r = await poll_status(g.port, "/healthz", 200)
        held.append(await h.open_conn(g.port))
        r = await h.http_get(g.port, "/healthz")
        assert r.status == 503, r
        for _, w in held:
            w.close()
        await poll_status(g.port, "/metrics", 200)
        assert await limit_failures(g.port) >= 3


async def poll_status(port, path, want, timeout=5.0):
    """GET path until it answers want (the server notices closes late)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await h.http_get(port, path)
        if r.status == want:
            return r
        assert time.monotonic() < deadline, "%s never answered %d: %r" % (
            path, want, r)
        await asyncio.sleep(0.05)


async def limit_failures(port):
    return await labeled(port, "handshake_failures_total", "limit")


async def labeled(port, name_end, label):
    """The value of the sample name_end{reason="label"}."""
    r = await h.http_get(port, "/metrics")
    assert r.status == 200, r
    for (name, labels), v in h.parse_metrics(r.body.decode()).items():
        if name.endswith(name_end) and '"%s"' % label in labels:
            return v
    raise AssertionError("no %s{reason=%s} sample" % (name_end, label))


async def test_per_ip_unlimited():
    c = h.Cluster(gateways=1, workers=1, gateway_args=[
        "--max-connections-per-ip", "0"])
    async with c:
        held = [await h.open_conn(c.gw.port) for _ in range(20)]
        r = await h.http_get(c.gw.port, "/healthz")
        assert r.status == 200, r
        for _, w in held:
            w.close()


# --------------------------------------------------------------------------
# startup checks (the gateway must refuse to start)


async def refused(args, want, broker_args=None):
    """Starts a gateway that must exit non-zero with want in its log."""
    tmp = tempfile.mkdtemp(prefix="parley-itest-")
    broker = h.Broker(tmp)
    g = h.Gateway(tmp, broker, tmp, workers=1, args=args)
    try:
        g.start()
        try:
            await asyncio.to_thread(g.proc.wait, 15)
        except subprocess.TimeoutExpired:
            raise AssertionError("gateway did not refuse to start (%s)"
                                 % " ".join(args))
        g.expect_exit = True
        log = g.log_text()
        assert g.proc.returncode in (1, 2), (g.proc.returncode, log[-500:])
        assert want in log, "want %r in:\n%s" % (want, log[-800:])
        rep = g.sanitizer_reports()
        assert not rep, "\n".join(rep)
        return log
    finally:
        g.kill_group()
        shutil.rmtree(tmp, ignore_errors=True)


async def test_refuses_expired_certificate():
    log = await refused(tls_args(h.free_port(), "expired.pem", "expired.key"),
                        "certificate expired on 2020-01-02")
    assert "expired.pem" in log


async def test_refuses_not_yet_valid_certificate():
    await refused(tls_args(h.free_port(), "future.pem", "future.key"),
                  "not valid before 2099-12-31")


async def test_refuses_mismatched_key():
    await refused(tls_args(h.free_port(), "server.chain", "server2.key"),
                  "does not match the certificate")


async def test_refuses_missing_files():
    await refused(tls_args(h.free_port(), "nonexistent.pem", "server.key"),
                  "tls_cert: cannot read")
    await refused(tls_args(h.free_port(), "server.chain", "nonexistent.key"),
                  "tls_key: cannot read")
    await refused(["--tls-listen", "127.0.0.1:%d" % h.free_port()],
                  "tls_cert and tls_key are required")
    # a key file that is not a key
    c = certs()
    shutil.copy(c.p("server.chain"), c.p("notakey.pem"))
    os.chmod(c.p("notakey.pem"), 0o600)
    await refused(tls_args(h.free_port(), "server.chain", "notakey.pem"),
                  "cannot load a PEM private key")
    # a certificate file that is not a certificate
    await refused(tls_args(h.free_port(), "server.key", "server.key"),
                  "cannot load a PEM certificate chain")


async def test_key_permissions():
    c = certs()
    loose = c.p("loose.key")
    shutil.copy(c.p("server.key"), loose)
    os.chmod(loose, 0o644)
    log = await refused(tls_args(h.free_port(), key="loose.key"),
                        "insecure permissions 0644")
    assert "tls_key_insecure_ok" in log
    os.chmod(loose, 0o640)
    await refused(tls_args(h.free_port(), key="loose.key"),
                  "insecure permissions 0640")
    # ... unless the operator says so
    os.chmod(loose, 0o644)
    cl = h.Cluster(gateways=1, workers=1)
    cl.gw.tls_port = h.free_port()
    cl.gw.argv += tls_args(cl.gw.tls_port, key="loose.key",
                           extra=["--tls-key-insecure-ok", "yes"])
    async with cl:
        resp, _ = await https_exchange(cl.gw.tls_port,
                                       get_req("/healthz", cl.gw.tls_port))
        assert resp.status == 200, resp
        assert "tls_key_insecure" in cl.gw.log_text()


# --------------------------------------------------------------------------
# reload


async def test_sighup_rereads_certificate():
    c = certs()
    d = tempfile.mkdtemp(prefix="parley-tls-live-")
    try:
        shutil.copy(c.p("server.chain"), os.path.join(d, "chain.pem"))
        shutil.copy(c.p("server.key"), os.path.join(d, "key.pem"))
        cl = h.Cluster(gateways=1, workers=2)
        g = cl.gw
        g.tls_port = h.free_port()
        g.argv += ["--tls-listen", "127.0.0.1:%d" % g.tls_port,
                   "--tls-cert", os.path.join(d, "chain.pem"),
                   "--tls-key", os.path.join(d, "key.pem")]
        async with cl:
            ctx = c.client_ctx()
            first = await asyncio.to_thread(tls_handshake_sync, g.tls_port,
                                            ctx)
            assert first[3] == c.fingerprint("server"), "not the first cert"
            shutil.copy(c.p("server2.chain"), os.path.join(d, "chain.pem"))
            shutil.copy(c.p("server2.key"), os.path.join(d, "key.pem"))
            await reload_and_wait(g)
            got = await asyncio.to_thread(tls_handshake_sync, g.tls_port, ctx)
            assert got[3] == c.fingerprint("server2"), "old cert after reload"
            # a broken pair on reload: logged, the running one stays
            shutil.copy(c.p("server.key"), os.path.join(d, "key.pem"))
            await reload_and_wait(g)
            assert "tls_reload_failed" in g.log_text()
            got = await asyncio.to_thread(tls_handshake_sync, g.tls_port, ctx)
            assert got[0].startswith(b"HTTP/1.1 200"), got[0]
            assert got[3] == c.fingerprint("server2"), "cert changed"
    finally:
        shutil.rmtree(d, ignore_errors=True)


async def reload_and_wait(g, timeout=20.0):
    n = g.log_text().count("master_reload_done")
    g.killed_workers.update(g.worker_pids())   # retired by the reload
    g.signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while g.log_text().count("master_reload_done") <= n:
        assert time.monotonic() < deadline, "reload did not finish"
        await asyncio.sleep(0.1)
    await g.wait_ready()


# --------------------------------------------------------------------------
# privileges


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid for %d" % pid)


async def test_root_without_user_refused():
    if os.geteuid() != 0:
        # not root: nothing to refuse, the gateway starts without the flag
        cl = h.Cluster(gateways=1, workers=1, gateway_args=[
            "--allow-root", "no"])
        async with cl:
            assert uid_of(cl.gw.pid)[1] == os.geteuid()
        return
    log = await refused(["--allow-root", "no"], "refusing to run as root")
    assert "--user" in log


async def test_user_nobody():
    if os.geteuid() != 0:
        return await test_root_without_user_refused()
    import pwd
    nobody = pwd.getpwnam("nobody").pw_uid
    cl = with_tls(h.Cluster(gateways=1, workers=2,
                            gateway_args=["--user", "nobody",
                                          "--allow-root", "no"],
                            broker_args=["--user", "nobody",
                                         "--allow-root", "no"]))
    os.chmod(cl.tmpdir, 0o755)       # the web client, readable by nobody
    async with cl:
        g = cl.gw
        pids = [g.pid] + g.worker_pids()
        assert len(pids) == 3, pids
        for pid in pids + [cl.broker.pid]:
            assert uid_of(pid) == [nobody] * 4, (pid, uid_of(pid))
        r = await h.http_get(g.port, "/")
        assert r.status == 200, r
        # the key was read as root, before the switch
        resp, _ = await https_exchange(g.tls_port, get_req("/", g.tls_port))
        assert resp.status == 200, resp
        assert "privileges_dropped user=nobody" in g.log_text()


if __name__ == "__main__":
    try:
        h.run(globals(), shared=cluster, timeout=60.0)
    finally:
        if CERTS is not None:
            shutil.rmtree(CERTS.dir, ignore_errors=True)
