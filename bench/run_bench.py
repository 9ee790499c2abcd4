"""run_bench.py - the driver behind bench/run.sh (`make bench`).

Starts the servers under test on free ports (each in its own process group,
killed by PID, every wait bounded), runs parley-bench against them for the
scenarios S1..S6, and writes docs/benchmarks.md from the JSON lines that
parley-bench prints.  Environment: see bench/run.sh.
"""

import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("PARLEY_SRCDIR") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("PARLEY_BUILDDIR") or os.getcwd()
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
PEERS = os.environ.get("BENCH_PEERS", "") not in ("", "0") or \
    "--peers" in sys.argv[1:]
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
OUT = os.environ.get("BENCH_OUT") or os.path.join(SRC, "docs",
                                                  "benchmarks.md")
REPEATS = int(os.environ.get("BENCH_REPEATS") or (3 if PEERS else 1))
SCRATCH = os.path.join(tempfile.gettempdir(), "parley-peers")
PEER_PKGS = ["ws", "@trufflesuite/uws-js-unofficial", "bun"]
NCPU = os.cpu_count() or 1
PIN = NCPU >= 2
IS_ROOT = os.geteuid() == 0
P99_LIMIT_US = 50000

BENCH = os.path.join(BUILD, "parley-bench")
BROKER = os.path.join(BUILD, "parley-broker")
GATEWAY = os.path.join(BUILD, "parley-gateway")

TMP = tempfile.mkdtemp(prefix="parley-bench-")
COMMANDS = {}      # (scenario, server) -> first command lines run
RESULTS = []       # every parley-bench JSON result, with context
NOTES = []         # things the report must say (peers missing, ...)


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile():
    """As many descriptors as 50k connections on both ends need."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 200000
    if IS_ROOT and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin(argv, cpus):
    if PIN and cpus is not None and shutil.which("taskset"):
        return ["taskset", "-c", cpus] + argv
    return argv


def record_cmd(scenario, server, argv, env=None):
    key = (scenario, server)
    lines = COMMANDS.setdefault(key, [])
    if len(lines) < 4:
        pre = "".join("%s=%s " % kv for kv in (env or {}).items())
        lines.append(pre + " ".join(argv))


# --------------------------------------------------------------------------
# processes

class Proc:
    """A process in its own session; stopped by signalling its group."""

    def __init__(self, name, argv, cwd=None, env=None):
        self.name = name
        self.log_path = os.path.join(TMP, "%s-%d.log" % (name, time.time_ns()))
        envp = dict(os.environ)
        envp.update(env or {})
        with open(self.log_path, "wb") as logf:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=logf, stderr=logf, cwd=cwd,
                                      env=envp, start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # the group may outlive its leader (workers): make sure
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def tail(self, n=10):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()[-n:]
        except OSError:
            return []


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(name))
    return out


def tree(pid):
    pids = [pid]
    for c in children(pid):
        pids.extend(tree(c))
    return pids


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_port(port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError("%s exited: %s" % (proc.name,
                                                  " | ".join(proc.tail())))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s not listening on %d" % (proc.name, port))


def http_get(port, path, timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", "replace")


# --------------------------------------------------------------------------
# servers under test

def gateway_help():
    try:
        return subprocess.run([GATEWAY, "--help"], capture_output=True,
                              text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


GW_HELP = gateway_help()
HAS_RATE_LIMIT = "--rate-limit" in GW_HELP
HAS_DEFLATE = re.search(r"^\s*--deflate\s", GW_HELP, re.M) is not None


class Parley:
    """parley-broker + parley-gateway."""
    label = "parley"

    def __init__(self, workers=1, deflate=False, pinned=True):
        self.workers = workers
        self.deflate = deflate
        self.cpus = "0" if pinned else None
        self.procs = []

    def argv(self):
        router, pub = free_port(), free_port()
        self.port = free_port()
        common = ["--broker-router", "tcp://127.0.0.1:%d" % router,
                  "--broker-pub", "tcp://127.0.0.1:%d" % pub,
                  "--log-level", "warn"]
        if IS_ROOT:
            common += ["--allow-root", "yes"]
        broker = [BROKER] + common
        gw = [GATEWAY] + common + [
            "--listen", "127.0.0.1:%d" % self.port,
            "--workers", str(self.workers), "--www", os.path.join(SRC, "www"),
            "--max-connections", "70000", "--max-connections-per-ip", "0",
            "--backlog", "4096", "--max-text", "65536"]
        if HAS_RATE_LIMIT:
            gw += ["--rate-limit", "0"]
        if HAS_DEFLATE:
            gw += ["--deflate", "yes" if self.deflate else "no"]
        return broker, gw, router

    def start(self, scenario):
        broker, gw, router = self.argv()
        record_cmd(scenario, self.label, pin(broker, self.cpus))
        record_cmd(scenario, self.label, pin(gw, self.cpus))
        b = Proc("broker", pin(broker, self.cpus))
        self.procs = [b]
        wait_port(router, b)
        g = Proc("gateway", pin(gw, self.cpus))
        self.procs.append(g)
        self.wait_healthy(g)
        return "ws://127.0.0.1:%d/ws/" % self.port

    def wait_healthy(self, g, timeout=20.0):
        deadline = time.monotonic() + timeout
        want = max(self.workers, 1)
        streak = 0
        while time.monotonic() < deadline:
            if not g.alive():
                raise RuntimeError("gateway exited: %s" % " | ".join(g.tail()))
            try:
                ok = " 200 " in http_get(self.port, "/healthz").split("\r\n")[0]
            except OSError:
                ok = False
            streak = streak + 1 if ok else 0
            if streak >= 3 * want:
                return
            time.sleep(0.05)
        raise RuntimeError("gateway never healthy")

    def pids(self):
        """{"gateway": [...], "broker": [...]}: the processes to weigh."""
        return {"gateway": tree(self.procs[1].pid),
                "broker": tree(self.procs[0].pid)}

    def worker_pids(self):
        kids = children(self.procs[1].pid)
        return kids or [self.procs[1].pid]

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []


class Peer:
    """One of the comparison servers, run from the scratch directory."""

    SCRIPTS = {"ws": "ws-server.mjs", "uws": "uws-server.mjs",
               "bun": "bun-server.js"}

    def __init__(self, kind, deflate=False):
        self.kind = kind
        self.label = kind
        self.deflate = deflate
        self.procs = []

    def argv(self):
        script = os.path.join(SCRATCH, self.SCRIPTS[self.kind])
        if self.kind == "bun":
            return [bun_binary(), script]
        return [shutil.which("node") or "node", script]

    def start(self, scenario):
        self.port = free_port()
        argv = self.argv() + [str(self.port)]
        env = {"PEER_DEFLATE": "1" if self.deflate else "0"}
        record_cmd(scenario, self.label, pin(argv, "0"), env)
        p = Proc(self.kind, pin(argv, "0"), cwd=SCRATCH, env=env)
        self.procs = [p]
        wait_port(self.port, p)
        return "ws://127.0.0.1:%d/ws/" % self.port

    def pids(self):
        return {"gateway": tree(self.procs[0].pid), "broker": []}

    def worker_pids(self):
        return [self.procs[0].pid]

    def stop(self):
        for p in self.procs:
            p.stop()
        self.procs = []


def bun_binary():
    for rel in ("node_modules/bun/bin/bun.exe", "node_modules/.bin/bun"):
        path = os.path.join(SCRATCH, rel)
        if os.access(path, os.X_OK):
            return path
    return "bun"


def install_peers():
    """npm-installs the peers into SCRATCH (outside the repository) and
    copies the servers there; returns the kinds that start."""
    os.makedirs(SCRATCH, exist_ok=True)
    if not os.path.exists(os.path.join(SCRATCH, "package.json")):
        with open(os.path.join(SCRATCH, "package.json"), "w") as f:
            f.write('{"name":"parley-peers","private":true}\n')
    missing = [p for p in PEER_PKGS if not os.path.isdir(
        os.path.join(SCRATCH, "node_modules", p))]
    if missing:
        log("npm install %s into %s" % (" ".join(missing), SCRATCH))
        try:
            subprocess.run(["npm", "install", "--no-audit", "--no-fund"] +
                           missing, cwd=SCRATCH, timeout=600,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, subprocess.TimeoutExpired) as e:
            NOTES.append("npm install failed: %s" % e)
    for script in Peer.SCRIPTS.values():
        shutil.copy(os.path.join(SRC, "bench", "peers", script), SCRATCH)
    kinds = []
    for kind in ("ws", "uws", "bun"):
        srv = Peer(kind)
        try:
            url = srv.start("probe")
            r = run_bench(["--mode", "fanout", "--url", url, "--conns", "10",
                           "--rate", "10", "--duration", "1", "--warmup",
                           "0.2"], None, None)
            if r is None or r["received"] == 0:
                raise RuntimeError("no message came back")
            kinds.append(kind)
        except (RuntimeError, OSError) as e:
            NOTES.append("peer %s could not be run here: %s" % (kind, e))
            log("peer %s unusable: %s" % (kind, e))
        finally:
            srv.stop()
    COMMANDS.pop(("probe", "ws"), None)
    COMMANDS.pop(("probe", "uws"), None)
    COMMANDS.pop(("probe", "bun"), None)
    return kinds


# --------------------------------------------------------------------------
# running parley-bench

def run_bench(args, scenario, server, pinned=True, timeout=300):
    argv = pin([BENCH] + args, "1" if pinned else None)
    if scenario is not None:
        record_cmd(scenario, server, argv)
    try:
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        log("parley-bench timed out: %s" % " ".join(argv))
        return None
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        log("parley-bench failed (%d): %s" % (r.returncode,
                                               r.stderr.strip()[-300:]))
        return None
    res = json.loads(lines[-1])
    res["scenario"], res["server"] = scenario, server
    RESULTS.append(res)
    return res


def passes(r):
    return (r is not None and r["deliveries_per_s"] > 0 and
            r["lost"] == 0 and r["closed"] == 0 and
            r["connect_failed"] == 0 and r["errors"] == 0 and
            r["latency_us"]["p99"] < P99_LIMIT_US)


def search(url, base, scenario, server, start, factor, steps, pinned=True):
    """The highest rate (messages/s) with no loss and p99 < 50 ms: up (or
    down) by factor until the verdict flips, then steps bisections.
    Returns the best passing result or None."""
    def probe(rate):
        r = run_bench(base + ["--url", url, "--rate", "%.1f" % rate],
                      scenario, server, pinned)
        ok = passes(r)
        log("  %s %s rate %.0f msg/s: %s (%s deliveries/s, p99 %s us)" % (
            scenario, server, rate, "pass" if ok else "FAIL",
            r and r["deliveries_per_s"], r and r["latency_us"]["p99"]))
        return ok, r

    best, lo, hi = None, None, None
    rate = start
    for _ in range(12):
        ok, r = probe(rate)
        if ok:
            best, lo = r, rate
            if hi is not None:
                break
            rate *= factor
        else:
            hi = rate
            if lo is not None:
                break
            rate /= factor
            if rate < 1 or rate < start / 40:
                break
    for _ in range(steps if lo and hi else 0):
        mid = (lo * hi) ** 0.5
        ok, r = probe(mid)
        if ok:
            best, lo = r, mid
        else:
            hi = mid
    if best is not None:
        best = dict(best)
        best["saturation_rate"] = lo
    return best


# --------------------------------------------------------------------------
# scenarios: each returns {metric: value} for one server and one repetition

def timing():
    return ["--warmup", "1", "--duration", "2" if QUICK else "3",
            "--drain", "2"]


def fanout_case(srv, scenario, conns, rooms, pubs, size, fixed_rate, seed,
                start, extra=(), pinned=True):
    base = ["--mode", "fanout", "--conns", str(conns), "--rooms", str(rooms),
            "--publishers", str(pubs), "--size", str(size)] + \
        list(extra) + timing()
    url = srv.start(scenario)
    out = {}
    try:
        if fixed_rate:
            r = run_bench(base + ["--url", url, "--rate", "%.1f" % fixed_rate],
                          scenario, srv.label, pinned)
            if r is not None:
                out.update(fixed_p50_ms=r["latency_us"]["p50"] / 1000,
                           fixed_p99_ms=r["latency_us"]["p99"] / 1000,
                           fixed_lost=r["lost"], fixed_cpu=r["cpu_pct"])
        if seed:
            best = search(url, base, scenario, srv.label, seed * 0.85, 1.2,
                          1 if QUICK else 2, pinned)
        else:
            best = search(url, base, scenario, srv.label, start, 2.0,
                          1 if QUICK else 3, pinned)
        if best is not None:
            out.update(sat=best["deliveries_per_s"],
                       sat_rate=best["saturation_rate"],
                       sat_p50_ms=best["latency_us"]["p50"] / 1000,
                       sat_p99_ms=best["latency_us"]["p99"] / 1000,
                       sat_cpu=best["cpu_pct"])
    finally:
        srv.stop()
    return out


def s1(srv, seed):
    return fanout_case(srv, "S1", 1000, 1, 10, 64, 100, seed, 500)


def s2(srv, seed):
    if QUICK:
        return fanout_case(srv, "S2", 1000, 20, 20, 64, 2000, seed, 2000)
    return fanout_case(srv, "S2", 10000, 100, 100, 64, 1000, seed, 1000)


def s3(srv, seed):
    url = srv.start("S3")
    try:
        r = run_bench(["--mode", "handshake", "--url", url, "--inflight", "64",
                       "--warmup", "1", "--duration", "2" if QUICK else "5"],
                      "S3", srv.label)
    finally:
        srv.stop()
    if r is None:
        return {}
    return {"hs": r["handshakes_per_s"], "hs_p50_ms":
            r["handshake_us"]["p50"] / 1000, "hs_p99_ms":
            r["handshake_us"]["p99"] / 1000, "hs_err": r["errors"] +
            r["timeouts"], "hs_cpu": r["cpu_pct"]}


def idle_rss(srv, n):
    """Bytes of RSS per idle connection (gateway, broker) at n conns."""
    url = srv.start("S4")
    try:
        time.sleep(1.0)
        before = {k: rss_kib(v) for k, v in srv.pids().items()}
        argv = pin([BENCH, "--mode", "idle", "--url", url, "--conns", str(n),
                    "--rooms", "100", "--duration", "300"], "1")
        record_cmd("S4", srv.label, argv)
        p = Proc("idle", argv)
        try:
            ready = wait_ready(p, 180.0)
            time.sleep(2.0)
            after = {k: rss_kib(v) for k, v in srv.pids().items()}
        finally:
            p.stop()
    finally:
        srv.stop()
    if not ready:
        return None, None, 0
    per = {k: (after[k] - before[k]) * 1024.0 / ready for k in after}
    return per["gateway"], per["broker"] if before["broker"] else None, ready


def wait_ready(p, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in p.tail(5):
            m = re.match(r"READY (\d+)", line)
            if m:
                return int(m.group(1))
        if not p.alive():
            return 0
        time.sleep(0.2)
    return 0


def s4_sizes():
    """Connection counts of S4: 10k and 50k, or what RLIMIT_NOFILE allows
    one process (server and load generator alike) when it is lower."""
    want = (2000, 5000) if QUICK else (10000, 50000)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    cap = hard - 300 if hard != resource.RLIM_INFINITY else want[1]
    if cap < want[1]:
        note = ("S4: RLIMIT_NOFILE allows %d descriptors per process here "
                "(hard limit, not raisable without CAP_SYS_RESOURCE), so "
                "the larger S4 point is %d connections instead of %d."
                % (hard, cap, want[1]))
        if note not in NOTES:
            NOTES.append(note)
    return [min(n, cap) for n in want]


def s4(srv, seed):
    out = {}
    for i, n in enumerate(s4_sizes()):
        gw, br, ready = idle_rss(srv, n)
        key = "ab"[i]
        out["gw_" + key] = gw
        out["br_" + key] = br
        out["ready_" + key] = ready
    return out


def s5(srv, seed):
    return fanout_case(srv, "S5", 1000, 1, 10, 64, None, seed, 500,
                       pinned=False)


def s6(deflate):
    def run(srv, seed):
        srv.deflate = deflate
        extra = ["--deflate"] if deflate else []
        return fanout_case(srv, "S6" + ("z" if deflate else ""), 100, 1, 10,
                           16384, 20, seed, 100, extra)
    return run


# --------------------------------------------------------------------------
# the run

def servers_for(scenario, peers):
    if scenario == "S5":
        return [("parley-1w", lambda: Parley(workers=1, pinned=False)),
                ("parley-2w", lambda: Parley(workers=2, pinned=False))]
    out = [("parley", lambda: Parley())]
    for kind in peers:
        out.append((kind, lambda k=kind: Peer(k)))
    return out


SCENARIOS = [("S1", s1), ("S2", s2), ("S3", s3), ("S4", s4), ("S5", s5),
             ("S6", s6(False)), ("S6z", s6(True))]
DATA = {}   # scenario -> server -> [metrics per repetition]


def run_scenario(name, fn, peers):
    seeds = {}
    for rep in range(REPEATS if name != "S5" else 1):
        for label, make in servers_for(name, peers):
            if name == "S6z" and label == "parley" and not HAS_DEFLATE:
                continue
            log("%s rep %d: %s" % (name, rep + 1, label))
            srv = make()
            srv.label = label
            try:
                m = fn(srv, seeds.get(label))
            except (RuntimeError, OSError) as e:
                log("%s %s failed: %s" % (name, label, e))
                NOTES.append("%s on %s failed: %s" % (name, label, e))
                srv.stop()
                m = {}
            if m.get("sat_rate"):
                seeds[label] = m["sat_rate"]
            DATA.setdefault(name, {}).setdefault(label, []).append(m)


def profile_parley(rate):
    """perf profile of the gateway worker and broker during S1 at rate."""
    if not shutil.which("perf"):
        return None
    srv = Parley()
    url = srv.start("profile")
    out = {}
    try:
        pids = srv.worker_pids() + [srv.procs[0].pid]
        data = os.path.join(TMP, "perf.data")
        argv = pin([BENCH, "--mode", "fanout", "--url", url, "--conns", "1000",
                    "--publishers", "10", "--rate", "%.1f" % rate,
                    "--warmup", "1", "--duration", "6"], "1")
        record_cmd("profile", "parley", argv)
        load = Proc("load", argv)
        time.sleep(2.0)
        cpu0 = {p: proc_cpu(p) for p in pids}
        w0 = time.monotonic()
        perf = ["perf", "record", "-F", "999", "-g", "-o", data, "-p",
                ",".join(map(str, pids)), "--", "sleep", "4"]
        record_cmd("profile", "parley", perf)
        subprocess.run(perf, capture_output=True, timeout=60)
        cpu1 = {p: proc_cpu(p) for p in pids}
        wall = time.monotonic() - w0
        out["cpu_share"] = {("broker" if p == srv.procs[0].pid else
                             "gateway worker"): (cpu1[p] - cpu0[p]) / wall
                            for p in pids}
        load.p.wait(timeout=60)
        rep = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "--no-children",
             "--sort", "comm,dso,symbol", "--percent-limit", "1",
             "-g", "none"], capture_output=True, text=True, timeout=120)
        out["top"] = perf_lines(rep.stdout, 40)
        rep = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "--children",
             "--sort", "symbol", "--percent-limit", "3", "-g", "none"],
            capture_output=True, text=True, timeout=120)
        out["children"] = perf_lines(rep.stdout, 40)
        load.stop()
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        NOTES.append("profile failed: %s" % e)
    finally:
        srv.stop()
    return out


def source_commit():
    """The source tree's commit when the run starts (the binaries were
    built from it, plus any uncommitted changes)."""
    def git(*args):
        r = subprocess.run(["git", "-C", SRC] + list(args),
                           capture_output=True, text=True, timeout=20)
        return r.stdout.strip() if r.returncode == 0 else ""
    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    if not head:
        return "unknown"
    return head + (", with uncommitted changes" if dirty else "")


def perf_lines(text, n):
    out = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(re.sub(r"(\s+-)+\s*$", "", line.rstrip()))
    return out[:n]


def proc_cpu(pid):
    """CPU seconds (user + system) used so far by pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    raise_nofile()
    t0 = time.time()
    load0 = open("/proc/loadavg").read().split()[:3]
    commit = source_commit()
    peers = install_peers() if PEERS else []
    for name, fn in SCENARIOS:
        if ONLY and name not in ONLY and name.rstrip("z") not in ONLY:
            continue
        run_scenario(name, fn, peers)
    prof = None
    if not QUICK and (not ONLY or "profile" in ONLY or "S1" in ONLY):
        sat = [m.get("sat_rate") for m in DATA.get("S1", {}).get("parley", [])
               if m.get("sat_rate")]
        prof = profile_parley(statistics.median(sat) if sat else 500)
    load1 = open("/proc/loadavg").read().split()[:3]
    with open(os.path.join(BUILD, "bench-results.jsonl"), "w") as f:
        for r in RESULTS:
            f.write(json.dumps(r) + "\n")
    saved = dict(data=DATA, peers=peers, prof=prof, notes=NOTES,
                 commands=[[k[0], k[1], v] for k, v in COMMANDS.items()],
                 quick=QUICK, repeats=REPEATS, seconds=time.time() - t0,
                 load=(load0, load1), pin=PIN, has_deflate=HAS_DEFLATE,
                 has_rate_limit=HAS_RATE_LIMIT, s4_sizes=s4_sizes(),
                 commit=commit,
                 date=time.strftime("%Y-%m-%d %H:%M %Z"))
    with open(os.path.join(BUILD, "bench-data.json"), "w") as f:
        json.dump(saved, f)
    render(saved)
    log("wrote %s (%.0f s)" % (OUT, time.time() - t0))
    shutil.rmtree(TMP, ignore_errors=True)


def render(saved):
    """Writes OUT from the saved data of a run (bench-data.json)."""
    import bench_report
    kw = dict(saved)
    kw["commands"] = {(a, b): v for a, b, v in saved["commands"]}
    kw.update(src=SRC, build=BUILD, scratch=SCRATCH, gateway=GATEWAY,
              bun=bun_binary())
    with open(OUT, "w") as f:
        f.write(bench_report.render(**kw))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        if "--profile" in sys.argv[1:]:
            # Profiles Parley again at the saved S1 saturation rate.
            raise_nofile()
            path = os.path.join(BUILD, "bench-data.json")
            with open(path) as f:
                saved = json.load(f)
            sat = [m.get("sat_rate") for m in
                   saved["data"].get("S1", {}).get("parley", [])
                   if m.get("sat_rate")]
            saved["prof"] = profile_parley(statistics.median(sat)
                                           if sat else 500)
            saved["commands"] = [c for c in saved["commands"]
                                 if c[0] != "profile"] + \
                [[k[0], k[1], v] for k, v in COMMANDS.items()]
            with open(path, "w") as f:
                json.dump(saved, f)
            render(saved)
            shutil.rmtree(TMP, ignore_errors=True)
        elif "--render" in sys.argv[1:]:
            # Re-renders the report from the last run's saved data.
            with open(os.path.join(BUILD, "bench-data.json")) as f:
                render(json.load(f))
            shutil.rmtree(TMP, ignore_errors=True)
        else:
            main()
    except KeyboardInterrupt:
        sys.exit(130)
