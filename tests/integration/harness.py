"""harness.py - shared helpers of Parley's integration tests.

The tests start the real parley-broker and parley-gateway binaries on ports
picked free, talk to them over sockets with independent clients (Debian's
python3-websockets 10.4 for well-formed traffic, raw sockets for malformed
HTTP and WebSocket input) and print TAP.

Rules kept here so every test file follows them:
- every server runs in its own session (process group) and is stopped by
  PID: SIGTERM to the group, SIGKILL after a bounded wait, always;
- every wait has a deadline; no assertion is about elapsed time;
- server stderr goes to files in a private temp dir, scanned on teardown
  for sanitizer reports (a report fails the test that was running);
- a server process that died without the test asking for it fails the test.

Environment: PARLEY_BUILDDIR (binaries) and PARLEY_SRCDIR (www/), set by
"make check"; for a manual run they default to the current directory when
it holds the binaries (else this file's ../..) and to this file's ../...
"""

import asyncio
import base64
import hashlib
import inspect
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import websockets
import websockets.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))


def _default_builddir():
    cwd = os.getcwd()
    if os.path.exists(os.path.join(cwd, "parley-gateway")):
        return cwd
    return TOP


BUILDDIR = os.environ.get("PARLEY_BUILDDIR") or _default_builddir()
SRCDIR = os.environ.get("PARLEY_SRCDIR") or TOP
BROKER_BIN = os.path.join(BUILDDIR, "parley-broker")
GATEWAY_BIN = os.path.join(BUILDDIR, "parley-gateway")

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ThreadSanitizer", "MemorySanitizer",
                     # valgrind's memcheck (PARLEY_BROKER_VALGRIND=1)
                     "Invalid read", "Invalid write", "Invalid free",
                     "Mismatched free", "Conditional jump or move",
                     "uninitialised value", "definitely lost in",
                     "Syscall param")

# PARLEY_BROKER_VALGRIND=1 runs every broker under valgrind's memcheck;
# its reports are caught by the markers above.
VALGRIND = os.environ.get("PARLEY_BROKER_VALGRIND") == "1"
VALGRIND_ARGV = ["valgrind", "-q", "--error-exitcode=99",
                 "--leak-check=full", "--errors-for-leak-kinds=definite",
                 "--show-leak-kinds=definite",
                 # libraries' own leaks, each explained in the file
                 "--suppressions=" + os.path.join(SRCDIR, "tests", "valgrind",
                                                  "libzmq.supp")]

# Fast link timing so failover tests stay quick.
LINK_ARGS = ["--heartbeat", "100ms", "--link-timeout", "600ms"]
if VALGRIND:  # a broker under valgrind runs many times slower
    LINK_ARGS = ["--heartbeat", "200ms", "--link-timeout", "3s"]

# The suite runs as root in CI, which both programs refuse unless told
# (docs/security.md, "Privileges"); harmless when not root.  A test's own
# arguments come later and win (--allow-root no, --user nobody).
PROCESS_ARGS = ["--allow-root", "yes"]

# Tests send far faster than people type: the per-connection rate limit
# (default 20 messages/s) is off unless a test sets it (test_rate_limit.py).
RATE_ARGS = ["--rate-limit", "0"]


class HarnessError(Exception):
    """A server could not be started or did not become ready."""


# --------------------------------------------------------------------------
# small utilities

_ports_given = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, never the same
    twice in one test process.  Ports are drawn at random below the
    kernel's ephemeral range (where bind(0) and outgoing connections take
    theirs), so parallel test processes and client sockets rarely meet."""
    import random
    for _ in range(1000):
        port = random.randint(20000, 32000)
        if port in _ports_given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port found")


def ws_accept(key):
    """Sec-WebSocket-Accept for key, computed here (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def uniq(prefix="r"):
    """A room or nick name unique to this run (valid room characters)."""
    return "%s-%s" % (prefix, os.urandom(4).hex())


def proc_alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def children_of(pid):
    """PIDs whose parent is pid (live ones only)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            kids.append(int(name))
    return sorted(kids)


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise HarnessError("no VmRSS for pid %d" % pid)


def socket_inodes(pid):
    """Inodes of the sockets open in process pid."""
    inodes = set()
    fddir = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fddir)
    except OSError:
        return inodes
    for fd in names:
        try:
            target = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(int(m.group(1)))
    return inodes


def server_side_inode(server_port, client_port):
    """Inode of the server end of the loopback TCP connection
    127.0.0.1:server_port <- 127.0.0.1:client_port (from /proc/net/tcp)."""
    want_local = "0100007F:%04X" % server_port
    want_remote = "0100007F:%04X" % client_port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[1] == want_local and p[2] == want_remote:
                return int(p[9])
    return None


def worker_of_connection(gw, client_port):
    """PID of the gateway worker that holds the connection whose client end
    is client_port, or None."""
    inode = server_side_inode(gw.port, client_port)
    if inode is None:
        return None
    for pid in gw.worker_pids():
        if inode in socket_inodes(pid):
            return pid
    return None


# --------------------------------------------------------------------------
# servers

class Server:
    """One server process in its own session, stderr to a file."""

    def __init__(self, name, argv, tmpdir, env=None):
        self.name = name
        self.argv = argv
        self.tmpdir = tmpdir
        self.env = env
        self.proc = None
        self.log_path = os.path.join(tmpdir, name + ".stderr")
        self.scan_offset = 0
        self.expect_exit = False     # the test stopped or killed it
        self.starts = 0

    def start(self):
        exe = self.argv[0]
        if os.sep not in exe:
            exe = shutil.which(exe) or exe
        if not os.access(exe, os.X_OK):
            raise HarnessError("%s is not built (%s)" % (self.name, self.argv[0]))
        log = open(self.log_path, "ab")
        try:
            log.write(("=== start %d: %s\n" % (self.starts, " ".join(self.argv)))
                      .encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, env=self.env)
        finally:
            log.close()
        self.expect_exit = False
        self.starts += 1

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        """Sends sig to the process itself (not its group)."""
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill_group(self, grace=5.0):
        """SIGTERM to the process group, SIGKILL after grace seconds; waits
        (bounded) for the group to be gone."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        self.expect_exit = True
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            if self._wait_group(pgid, wait):
                break
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def _wait_group(self, pgid, wait):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self.proc.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            if not self._group_has_live_member(pgid):
                return True
            time.sleep(0.02)
        return False

    @staticmethod
    def _group_has_live_member(pgid):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % name) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
        return False

    def kill_hard(self):
        """SIGKILL to the process only (a crash, for failover tests)."""
        self.expect_exit = True
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=25):
        return self.log_text().splitlines()[-n:]

    def sanitizer_reports(self):
        """Lines of sanitizer reports written since the last call."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.scan_offset)
                data = f.read()
        except OSError:
            return []
        self.scan_offset += len(data)
        lines = data.decode("utf-8", "replace").splitlines()
        out = []
        for i, line in enumerate(lines):
            if any(m in line for m in SANITIZER_MARKERS):
                out.extend(lines[i:i + 30])
                if len(out) > 120:
                    break
        return out


class Broker(Server):
    def __init__(self, tmpdir, args=(), name="broker"):
        self.router_port = free_port()
        self.pub_port = free_port()
        self.router = "tcp://127.0.0.1:%d" % self.router_port
        self.pub = "tcp://127.0.0.1:%d" % self.pub_port
        argv = [BROKER_BIN, "--broker-router", self.router,
                "--broker-pub", self.pub] + LINK_ARGS + PROCESS_ARGS + list(args)
        if VALGRIND:
            argv = VALGRIND_ARGV + argv
        super().__init__(name, argv, tmpdir)

    async def wait_ready(self, timeout=10.0):
        """Until both endpoints accept TCP connections."""
        deadline = time.monotonic() + timeout
        for port in (self.router_port, self.pub_port):
            while True:
                if not self.alive():
                    raise HarnessError("broker exited during startup:\n"
                                       + "\n".join(self.log_tail()))
                try:
                    r, w = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), 1.0)
                    w.close()
                    break
                except (OSError, asyncio.TimeoutError):
                    if time.monotonic() > deadline:
                        raise HarnessError("broker not listening on %d" % port)
                    await asyncio.sleep(0.05)


class Gateway(Server):
    def __init__(self, tmpdir, broker, www, workers=2, args=(), name="gateway"):
        self.port = free_port()
        self.nworkers = workers
        argv = [GATEWAY_BIN, "--listen", "127.0.0.1:%d" % self.port,
                "--workers", str(workers), "--www", www,
                "--broker-router", broker.router, "--broker-pub", broker.pub,
                "--log-level", os.environ.get("PARLEY_LOG_LEVEL", "info"),
                "--drain-timeout", "2s"] + LINK_ARGS + \
            PROCESS_ARGS + RATE_ARGS + list(args)
        super().__init__(name, argv, tmpdir)
        self.known_workers = set()
        self.killed_workers = set()

    def worker_pids(self):
        if not self.alive():
            return []
        pids = children_of(self.proc.pid)
        self.known_workers.update(pids)
        return pids

    def kill_worker(self, pid):
        """SIGKILL one worker (the master should respawn it)."""
        self.killed_workers.add(pid)
        os.kill(pid, signal.SIGKILL)

    def dead_workers(self):
        """Workers seen alive earlier that died without the test killing
        them."""
        self.worker_pids()
        return sorted(p for p in self.known_workers - self.killed_workers
                      if not proc_alive(p))

    async def wait_ready(self, timeout=15.0):
        """Until /healthz answers 200 and every worker is linked."""
        deadline = time.monotonic() + timeout
        await wait_healthz(self.port, 200, deadline, self)
        await self.wait_workers(deadline)
        self.worker_pids()

    async def wait_workers(self, deadline):
        """Until the master has all its workers and they report a linked
        broker: the metrics gauge of linked workers if there is one, else
        3 x workers healthz answers in a row on fresh connections."""
        want = max(self.nworkers, 1)
        while self.nworkers > 0 and len(self.worker_pids()) < want:
            if time.monotonic() > deadline:
                raise HarnessError("gateway has %d of %d workers"
                                   % (len(self.worker_pids()), want))
            await asyncio.sleep(0.05)
        streak = 0
        while streak < 3 * want:
            if time.monotonic() > deadline:
                raise HarnessError("gateway workers not all linked")
            up = await linked_workers(self.port)
            if up is not None and up >= want:
                return
            try:
                r = await http_get(self.port, "/healthz", timeout=2)
                streak = streak + 1 if r.status == 200 else 0
            except (OSError, asyncio.TimeoutError, HttpError):
                streak = 0
            if streak == 0:
                await asyncio.sleep(0.05)


async def wait_healthz(port, want, deadline, server=None):
    """Polls GET /healthz until it answers want (200 or 503)."""
    last = None
    while True:
        if server is not None and not server.alive():
            raise HarnessError("%s exited:\n%s" % (
                server.name, "\n".join(server.log_tail())))
        try:
            r = await http_get(port, "/healthz", timeout=2)
            last = r.status
            if r.status == want:
                return r
        except (OSError, asyncio.TimeoutError, HttpError) as e:
            last = repr(e)
        if time.monotonic() > deadline:
            raise HarnessError("/healthz on %d never answered %s (last: %s)"
                               % (port, want, last))
        await asyncio.sleep(0.05)


async def linked_workers(port):
    """The number of linked workers from /metrics, when a gauge named like
    *broker_link_up* is exposed (summed over its samples); else None."""
    try:
        r = await http_get(port, "/metrics", timeout=2)
    except (OSError, asyncio.TimeoutError, HttpError):
        return None
    if r.status != 200:
        return None
    samples = parse_metrics(r.body.decode("utf-8", "replace"))
    vals = [v for (name, labels), v in samples.items()
            if "broker_link_up" in name]
    if not vals or not any('worker' in l or 'pid' in l
                           for (n, l) in samples if "broker_link_up" in n):
        return None
    return sum(vals)


_SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$')


def parse_metrics(text):
    """{(name, labels): float} of a Prometheus text exposition; raises
    ValueError on a line that is neither a comment nor a sample."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError("bad metrics line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def metric_sum(text, fragment):
    """Sum of every sample whose name contains fragment (None if none)."""
    vals = [v for (name, _), v in parse_metrics(text).items() if fragment in name]
    return sum(vals) if vals else None


def default_www(tmpdir):
    """A private copy of the source tree's www/ (an index.html is written
    when the tree has none yet)."""
    dst = os.path.join(tmpdir, "www")
    src = os.path.join(SRCDIR, "www")
    if os.path.isdir(src):
        shutil.copytree(src, dst, symlinks=True)
    else:
        os.makedirs(dst)
    index = os.path.join(dst, "index.html")
    if not os.path.exists(index):
        with open(index, "w") as f:
            f.write("<!doctype html><title>parley</title><p>test page</p>\n")
    return dst


_ACTIVE = []     # clusters not yet torn down, for the runner
_CLIENTS = []    # client connections opened by the current test
_PENDING_DIAG = []  # teardown findings of clusters a failing test stopped


class Cluster:
    """A broker and some gateways, torn down by the runner whatever happens.

    gateways: number of gateways; workers: workers per gateway; extra
    arguments per program.  Use with "async with" or start()/stop().
    """

    def __init__(self, gateways=1, workers=2, broker_args=(),
                 gateway_args=(), www=None, tmpdir=None, env=None):
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="parley-itest-")
        self.own_tmpdir = tmpdir is None
        self.www = www or default_www(self.tmpdir)
        self.broker = Broker(self.tmpdir, broker_args)
        self.gateways = [Gateway(self.tmpdir, self.broker, self.www, workers,
                                 gateway_args, name="gateway%d" % i)
                         for i in range(gateways)]
        for srv in self.servers:
            srv.env = env
        self.clients = []
        self.stopped = False
        _ACTIVE.append(self)

    @property
    def servers(self):
        return [self.broker] + self.gateways

    @property
    def gw(self):
        return self.gateways[0]

    async def start(self):
        self.broker.start()
        await self.broker.wait_ready()
        for g in self.gateways:
            g.start()
        for g in self.gateways:
            await g.wait_ready()
        return self

    async def restart_broker(self, hard=True):
        if hard:
            self.broker.kill_hard()
        else:
            self.broker.kill_group()
        self.broker.start()
        await self.broker.wait_ready()

    def track(self, client):
        self.clients.append(client)
        return client

    def problems(self):
        """Sanitizer reports and unexpected deaths since the last call."""
        out = []
        for s in self.servers:
            rep = s.sanitizer_reports()
            if rep:
                out.append("sanitizer report in %s stderr:" % s.name)
                out.extend("  " + l for l in rep)
            if s.proc is not None and not s.expect_exit and not s.alive():
                out.append("%s (pid %d) died unexpectedly, status %s"
                           % (s.name, s.pid, s.proc.returncode))
                out.extend("  " + l for l in s.log_tail())
            if isinstance(s, Gateway) and s.alive():
                dead = s.dead_workers()
                if dead:
                    out.append("%s: worker(s) %s died unexpectedly"
                               % (s.name, dead))
                    out.extend("  " + l for l in s.log_tail())
                    s.killed_workers.update(dead)
        return out

    def stop(self):
        """Closes client sockets, stops every server; returns problems()."""
        if self.stopped:
            return []
        self.stopped = True
        for c in self.clients:
            c.abort()
        probs = self.problems()
        for s in reversed(self.servers):
            s.kill_group()
        for s in self.servers:
            rep = s.sanitizer_reports()
            if rep:
                probs.append("sanitizer report in %s stderr (at exit):" % s.name)
                probs.extend("  " + l for l in rep)
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self.own_tmpdir and not probs and not os.environ.get("PARLEY_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        elif probs:
            probs.append("server logs kept in %s" % self.tmpdir)
        return probs

    def log_tails(self, n=15):
        out = []
        for s in self.servers:
            out.append("--- %s stderr (last %d lines):" % (s.name, n))
            out.extend("  " + l for l in s.log_tail(n))
        return out

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        tails = self.log_tails() if exc[0] is not None else []
        probs = self.stop()
        if probs and exc[0] is None:
            raise AssertionError("\n".join(probs))
        _PENDING_DIAG.extend(tails + probs)
        return False


# --------------------------------------------------------------------------
# raw HTTP

class HttpError(Exception):
    pass


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name lower, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        """The value of the first header name, or None."""
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def __repr__(self):
        return "<HTTP %d %s %r>" % (self.status, self.reason, self.body[:80])


async def read_response(reader, method="GET", timeout=5.0):
    """Reads one HTTP response (head, then the body by Content-Length,
    chunked, or to EOF).  Raises HttpError on EOF before a status line."""
    async def inner():
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise HttpError("bad status line %r" % lines[0])
        status = int(m.group(1))
        headers = []
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            headers.append((k.strip().decode("latin-1").lower(),
                            v.strip().decode("latin-1")))
        resp = Response(status, m.group(2).decode("latin-1"), headers, b"", head)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        cl = resp.header("content-length")
        te = (resp.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            resp.body = await read_chunked(reader)
        elif cl is not None:
            resp.body = await reader.readexactly(int(cl))
        else:
            resp.body = await reader.read()
        return resp
    try:
        return await asyncio.wait_for(inner(), timeout)
    except asyncio.IncompleteReadError as e:
        raise HttpError("EOF after %r" % e.partial[:200])
    except asyncio.LimitOverrunError:
        raise HttpError("response head too long")


async def read_chunked(reader):
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def open_conn(port, rcvbuf=None, timeout=5.0):
    """asyncio streams to 127.0.0.1:port; rcvbuf (SO_RCVBUF) is set before
    connecting so it bounds the advertised window."""
    if rcvbuf is None:
        return await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 22), timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)),
                               timeout)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=1 << 22)


async def http_exchange(port, data, method="GET", timeout=5.0):
    """Sends the raw bytes data on a new connection and reads one response."""
    r, w = await open_conn(port)
    try:
        w.write(data)
        await w.drain()
        return await read_response(r, method, timeout)
    finally:
        w.close()


async def http_get(port, path, method="GET", headers=(), timeout=5.0):
    req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n" % (
        method, path, port)
    for k, v in headers:
        req += "%s: %s\r\n" % (k, v)
    req += "\r\n"
    return await http_exchange(port, req.encode("latin-1"), method, timeout)


async def read_until_eof(reader, timeout=5.0):
    """Everything until EOF (a reset counts as EOF); raises TimeoutError."""
    async def inner():
        data = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return data
                data += chunk
        except ConnectionResetError:
            return data
    return await asyncio.wait_for(inner(), timeout)


# --------------------------------------------------------------------------
# raw WebSocket

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None):
    """Bytes of one frame as a client sends it (masked unless mask=False)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return head + key + masked


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class RawWs:
    """A WebSocket client on raw streams: the handshake, frames as bytes."""

    def __init__(self, reader, writer, response):
        self.r = reader
        self.w = writer
        self.response = response
        _CLIENTS.append(self)

    @classmethod
    async def connect(cls, port, path="/ws", protocols=None, extra=(),
                      rcvbuf=None, timeout=5.0, expect=101):
        r, w = await open_conn(port, rcvbuf)
        key = new_key()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n" % (path, port, key))
        if protocols:
            req += "Sec-WebSocket-Protocol: %s\r\n" % protocols
        for k, v in extra:
            req += "%s: %s\r\n" % (k, v)
        req += "\r\n"
        w.write(req.encode("latin-1"))
        await w.drain()
        resp = await read_response(r, "GET", timeout)
        if resp.status != expect:
            w.close()
            raise AssertionError("upgrade of %s answered %d %r, want %d" % (
                path, resp.status, resp.body[:200], expect))
        if resp.status == 101:
            assert resp.header("sec-websocket-accept") == ws_accept(key), \
                "bad Sec-WebSocket-Accept %r" % resp.header("sec-websocket-accept")
        return cls(r, w, resp)

    async def send(self, data):
        self.w.write(data)
        await self.w.drain()

    async def send_frame(self, opcode, payload=b"", **kw):
        await self.send(ws_frame(opcode, payload, **kw))

    async def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload) of the next server frame; raises
        EOFError on end of stream, AssertionError on a masked frame."""
        async def inner():
            try:
                b0, b1 = await self.r.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", await self.r.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", await self.r.readexactly(8))[0]
                assert not b1 & 0x80, "server frame is masked"
                payload = await self.r.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionResetError):
                raise EOFError("connection closed")
            return bool(b0 & 0x80), b0 & 0x0F, payload
        return await asyncio.wait_for(inner(), timeout)

    async def recv_message(self, timeout=5.0):
        """(opcode, payload) of the next data message (fragments joined;
        pings answered; pongs skipped); (OP_CLOSE, payload) for a close."""
        deadline = time.monotonic() + timeout
        parts, op = [], None
        while True:
            fin, opcode, payload = await self.recv_frame(
                max(0.01, deadline - time.monotonic()))
            if opcode == OP_PING:
                await self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                return OP_CLOSE, payload
            if opcode != OP_CONT:
                op = opcode
            parts.append(payload)
            if fin:
                return op, b"".join(parts)

    async def recv_close(self, timeout=5.0):
        """Reads until the server's close frame; returns its code (None for
        an empty close payload).  Raises EOFError when the stream ends with
        no close frame."""
        deadline = time.monotonic() + timeout
        while True:
            op, payload = await self.recv_message(
                max(0.01, deadline - time.monotonic()))
            if op == OP_CLOSE:
                if len(payload) >= 2:
                    return struct.unpack("!H", payload[:2])[0]
                return None

    def abort(self):
        try:
            self.w.transport.abort()
        except Exception:
            pass

    def close(self):
        self.abort()


# --------------------------------------------------------------------------
# websockets clients

class Closed(Exception):
    """The connection closed while a message was awaited."""

    def __init__(self, code, reason=""):
        super().__init__("connection closed (code %s %r)" % (code, reason))
        self.code = code


class Client:
    """A websockets connection whose messages are read all the time by a
    background task (so the server never sees a slow consumer) into a
    queue.  Subclasses decode them."""

    def __init__(self, ws, label):
        self.ws = ws
        self.label = label
        self.queue = asyncio.Queue()
        self.pending = []       # received, skipped by wait(), not consumed
        self.skipped = []
        self.log = []
        self.close_code = None
        self.close_reason = None
        self.closed = asyncio.Event()
        self.task = asyncio.ensure_future(self._reader())
        _CLIENTS.append(self)

    @classmethod
    async def connect(cls, port, path="/ws", subprotocols=None, label=None,
                      compression=None, timeout=5.0, **kw):
        ws = await websockets.connect(
            "ws://127.0.0.1:%d%s" % (port, path), subprotocols=subprotocols,
            compression=compression, open_timeout=timeout, ping_interval=None,
            close_timeout=2, max_size=1 << 24, max_queue=None, **kw)
        return cls(ws, label or path)

    def decode(self, data):
        return data

    async def _reader(self):
        try:
            async for data in self.ws:
                msg = self.decode(data)
                self.log.append(msg)
                self.queue.put_nowait(msg)
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as e:       # decode error: keep it for the test
            self.queue.put_nowait(e)
        finally:
            rcvd = getattr(self.ws, "close_rcvd", None)
            self.close_code = rcvd.code if rcvd is not None else 1006
            self.close_reason = rcvd.reason if rcvd is not None else ""
            self.closed.set()
            self.queue.put_nowait(Closed(self.close_code, self.close_reason))

    async def _receive(self, timeout):
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, Closed):
            self.queue.put_nowait(item)
            raise item
        if isinstance(item, Exception):
            raise item
        return item

    async def next(self, timeout=5.0):
        """The next message not yet consumed; raises Closed when the
        connection ended and asyncio.TimeoutError after timeout seconds."""
        if self.pending:
            return self.pending.pop(0)
        return await self._receive(timeout)

    async def wait(self, pred, timeout=5.0, what="a matching message"):
        """Consumes and returns the first unconsumed message for which pred
        is true; the others stay unconsumed, in order (a later next() or
        wait() sees them).  self.skipped lists them for diagnostics."""
        self.skipped = []
        for i, m in enumerate(self.pending):
            if pred(m):
                del self.pending[i]
                return m
            self.skipped.append(m)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                m = await self._receive(max(0.001, left))
            except asyncio.TimeoutError:
                raise AssertionError("%s: no %s within %.0f s (unconsumed: "
                                     "%r)" % (self.label, what, timeout,
                                              self.skipped[-8:]))
            except Closed as e:
                raise AssertionError("%s: closed (%s) while waiting for %s "
                                     "(unconsumed: %r)" % (
                                         self.label, e.code, what,
                                         self.skipped[-8:]))
            if pred(m):
                return m
            self.pending.append(m)
            self.skipped.append(m)

    async def drain(self, quiet=0.2):
        """Messages received until none comes for quiet seconds."""
        out = []
        while True:
            try:
                out.append(await self.next(quiet))
            except asyncio.TimeoutError:
                return out

    async def wait_closed(self, timeout=5.0):
        """The close code received from the server (1006 with none)."""
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%s: still open after %.0f s" % (self.label,
                                                                  timeout))
        return self.close_code

    async def send(self, data):
        await self.ws.send(data)

    async def close(self, code=1000):
        try:
            await asyncio.wait_for(self.ws.close(code), 5)
        except Exception:
            pass

    def abort(self):
        try:
            self.ws.transport.abort()
        except Exception:
            pass
        self.task.cancel()

    @property
    def local_port(self):
        return self.ws.local_address[1]


class PlainClient(Client):
    """Plain mode: text lines."""


class JsonClient(Client):
    """parley.v1 mode: JSON objects in both directions."""

    @classmethod
    async def connect(cls, port, path="/ws", subprotocols=("parley.v1",),
                      label=None, welcome=True, **kw):
        c = await super().connect(port, path, list(subprotocols), label, **kw)
        assert c.ws.subprotocol == "parley.v1", \
            "server selected %r, not parley.v1" % c.ws.subprotocol
        if welcome:
            c.welcome = await c.next()
            assert c.welcome.get("type") == "welcome", \
                "first message is not welcome: %r" % (c.welcome,)
        return c

    def decode(self, data):
        if not isinstance(data, str):
            raise AssertionError("%s: binary message from server" % self.label)
        return json.loads(data)

    async def send_json(self, obj):
        await self.ws.send(json.dumps(obj))

    async def join(self, room, nick, since=None, epoch=None, timeout=5.0,
                   extra=None):
        """Sends join; returns (msgs of room received after the request and
        before its joined, joined).  Other messages stay unconsumed."""
        ref = "join-%s-%s" % (room[:20], os.urandom(3).hex())
        req = {"type": "join", "room": room, "nick": nick, "ref": ref}
        if since is not None:
            req["since"] = since
        if epoch is not None:
            req["epoch"] = epoch
        if extra:
            req.update(extra)
        old = {id(m) for m in self.pending}    # received before the join
        await self.send_json(req)
        msgs = []
        deadline = time.monotonic() + timeout

        def mine(m):
            if id(m) in old:
                return False
            if m.get("type") == "error":
                return m.get("ref") == ref
            return m.get("room") == room and m.get("type") in ("msg", "joined")
        while True:
            m = await self.wait(mine, max(0.001, deadline - time.monotonic()),
                                "joined of %s" % room)
            if m["type"] == "joined":
                return msgs, m
            if m["type"] == "error":
                raise AssertionError("%s: join %s refused: %r" % (
                    self.label, room, m))
            msgs.append(m)

    async def say(self, room, text, ref=None, wait_ack=True, timeout=5.0):
        """Sends say; with wait_ack returns its ack or error (the rest stays
        unconsumed)."""
        req = {"type": "say", "room": room, "text": text}
        if ref is not None:
            req["ref"] = ref
        await self.send_json(req)
        if not wait_ack:
            return None
        return await self.wait(
            lambda m: m.get("type") in ("ack", "error") and m.get("ref") == ref,
            timeout, "ack of %r" % ref)

    ANSWERS = {"who": "who", "leave": "left", "join": "joined", "say": "ack"}

    async def request(self, obj, timeout=5.0):
        """Sends obj and returns its answer: the error or ack carrying its
        ref, or the reply of the request's type for its room (who and left
        need not carry the ref)."""
        ref = obj.get("ref")
        want = self.ANSWERS.get(obj.get("type"))

        def match(m):
            if m.get("type") in ("error", "ack"):
                return ref is not None and m.get("ref") == ref
            return m.get("type") == want and m.get("room") == obj.get("room")
        await self.send_json(obj)
        return await self.wait(match, timeout, "answer to %r" % (obj,))

    async def msgs_until(self, room, last_seq, timeout=10.0):
        """msg of room until one with seq >= last_seq; returns them."""
        out = []
        deadline = time.monotonic() + timeout
        while not out or out[-1]["seq"] < last_seq:
            m = await self.wait(
                lambda m: m.get("type") == "msg" and m.get("room") == room,
                max(0.001, deadline - time.monotonic()),
                "msg seq %d of %s (have %s)" % (
                    last_seq, room, [x["seq"] for x in out[-5:]]))
            out.append(m)
        return out


def assert_contiguous(seqs, first=None, last=None, what="seq"):
    """seqs strictly increasing by one, from first and to last if given."""
    for a, b in zip(seqs, seqs[1:]):
        if b != a + 1:
            raise AssertionError("%s not contiguous: ...%d, %d... (%d values, "
                                 "first %s last %s)" % (what, a, b, len(seqs),
                                                         seqs[:1], seqs[-1:]))
    if first is not None:
        assert seqs and seqs[0] == first, "%s starts at %s, want %d" % (
            what, seqs[:1], first)
    if last is not None:
        assert seqs and seqs[-1] == last, "%s ends at %s, want %d" % (
            what, seqs[-1:], last)


# --------------------------------------------------------------------------
# the TAP runner

def print_diag(lines):
    for l in lines:
        for part in str(l).splitlines() or [""]:
            print("# " + part)
    sys.stdout.flush()


def _tests_of(module_globals):
    return [(n, f) for n, f in module_globals.items()
            if n.startswith("test_") and callable(f)
            and getattr(f, "__module__", None) == module_globals["__name__"]]


class Shared:
    """The module's shared cluster (tests taking a parameter get it)."""

    def __init__(self, factory):
        self.factory = factory
        self.cluster = None

    async def get(self):
        if self.cluster is not None and self.cluster.stopped:
            self.cluster = None
        if self.cluster is None:
            c = self.factory()
            try:
                await c.start()
            except BaseException:
                probs = c.stop()
                print_diag(probs)
                raise
            self.cluster = c
        return self.cluster


class _TestTimeout(Exception):
    def __init__(self, stack):
        super().__init__("test timed out")
        self.stack = stack


async def _run_one(fn, shared, timeout):
    """Runs one test; returns (ok, diagnostics)."""
    diag = []
    nparams = len(inspect.signature(fn).parameters)
    before = list(_ACTIVE)
    cluster = None
    ok = True
    try:
        if nparams:
            cluster = await shared.get()
        args = (cluster,) if nparams else ()
        if inspect.iscoroutinefunction(fn):
            task = asyncio.ensure_future(fn(*args))
        else:
            task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        done, _ = await asyncio.wait([task], timeout=timeout)
        if not done:
            task.cancel()
            stack = task.get_stack(limit=8)
            try:
                await asyncio.wait_for(task, 5)
            except BaseException:
                pass
            raise _TestTimeout(stack)
        task.result()
    except _TestTimeout as e:
        ok = False
        diag.append("timed out after %.0f s, in:" % timeout)
        diag.extend("  at %s:%d %s" % (os.path.basename(f.f_code.co_filename),
                                      f.f_lineno, f.f_code.co_name)
                    for f in e.stack)
    except AssertionError as e:
        ok = False
        diag.append("assertion failed: %s" % (e,))
        tb = traceback.extract_tb(e.__traceback__)
        diag.extend("  at %s:%d %s" % (os.path.basename(f.filename), f.lineno,
                                      f.line) for f in tb[-4:]
                    if "asyncio" not in f.filename and "concurrent" not in f.filename)
    except Exception:
        ok = False
        diag.extend(traceback.format_exc().splitlines())
    for cl in _CLIENTS:
        cl.abort()
    del _CLIENTS[:]
    if _PENDING_DIAG:
        ok = False
        diag.extend(_PENDING_DIAG)
        del _PENDING_DIAG[:]
    # clusters the test started and left running
    for c in [c for c in _ACTIVE if c not in before and c is not cluster]:
        if not ok:
            diag.extend(c.log_tails())
        probs = c.stop()
        if probs:
            ok = False
            diag.extend(probs)
    if cluster is not None and not cluster.stopped:
        probs = cluster.problems()
        if not ok:
            diag.extend(cluster.log_tails())
        for cl in cluster.clients:
            cl.abort()
        cluster.clients = []
        if probs:
            ok = False
            diag.extend(probs)
            diag.extend(cluster.stop())     # restart for the next test
    return ok, diag


async def _run_all(tests, shared, timeout):
    failed = 0
    try:
        for i, (name, fn) in enumerate(tests, 1):
            ok, diag = await _run_one(fn, shared, timeout)
            print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
            print_diag(diag)
            failed += not ok
        if shared is not None and shared.cluster is not None:
            probs = shared.cluster.stop()
            i = len(tests) + 1
            print("%s %d - shared servers exit cleanly" %
                  ("not ok" if probs else "ok", i))
            print_diag(probs)
            failed += bool(probs)
    finally:
        for c in list(_ACTIVE):
            c.stop()
    return failed


def run(module_globals, shared=None, timeout=30.0):
    """Runs every test_* function of the calling module (in definition
    order) and prints TAP.  shared: a factory returning an unstarted Cluster
    for the tests that take one parameter.  Exits 0 (TAP carries failures)
    unless the harness itself crashed."""
    tests = _tests_of(module_globals)
    only = os.environ.get("PARLEY_TEST_ONLY")
    if only:
        tests = [t for t in tests if re.search(only, t[0])]
    extra = 1 if shared is not None and any(
        inspect.signature(f).parameters for _, f in tests) else 0
    print("1..%d" % (len(tests) + extra))
    sys.stdout.flush()
    sh = Shared(shared) if extra else None
    try:
        asyncio.run(_run_all(tests, sh, timeout))
    except Exception:
        print_diag(["harness crash:"] + traceback.format_exc().splitlines())
        for c in list(_ACTIVE):
            c.stop()
        sys.exit(99)
    sys.exit(0)
