#!/usr/bin/python3
"""S4 alone, as bench/run_bench.py's idle_rss() measures it: start a broker
and a gateway (one worker, the bench's arguments), read VmRSS of the gateway
master + worker, hold N idle plain connections with parley-bench --mode
idle until it prints READY n, wait 2 s, read VmRSS again, print the growth
per connection.  Memory is not disturbed by other load on the machine.

usage: bench/micro/idle_rss.py BUILDDIR [N] [extra gateway arguments...]

environment:
  SMAPS=1     also print which mappings of the worker grew (KiB)
  WORKERS=0   gateway --workers (default 1; 0: one process)
  WRAP="valgrind --tool=massif ..."  command prefix for the gateway
  SETTLE=S    seconds between healthy and the first reading (1)
  HOLD=S      keep everything running S more seconds after the reading
              (e.g. for `vgdb --pid=PID detailed_snapshot FILE`)
"""
import os
import re
import socket
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def smaps(pid):
    """{mapping: Rss KiB} of pid."""
    out, cur = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            w = line.split()
            if not w[0].endswith(":"):
                cur = "%s %s" % (w[5] if len(w) > 5 else "anon",
                                 w[0].split("-")[0])
            elif w[0] == "Rss:":
                out[cur] = out.get(cur, 0) + int(w[1])
    return out


def wait_healthy(port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
                if b" 200 " in s.recv(100):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def main():
    build = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    router, pub, port = free_port(), free_port(), free_port()
    common = ["--broker-router", "tcp://127.0.0.1:%d" % router,
              "--broker-pub", "tcp://127.0.0.1:%d" % pub,
              "--log-level", "warn"]
    if os.geteuid() == 0:
        common += ["--allow-root", "yes"]
    procs = []
    try:
        procs.append(subprocess.Popen([build + "/parley-broker"] + common))
        time.sleep(0.5)
        gw = subprocess.Popen(
            os.environ.get("WRAP", "").split() + [build + "/parley-gateway"] +
            common + ["--listen", "127.0.0.1:%d" % port,
                      "--workers", os.environ.get("WORKERS", "1"),
                      "--www", SRC + "/www", "--max-connections", "70000",
                      "--max-connections-per-ip", "0", "--backlog", "4096",
                      "--max-text", "65536", "--rate-limit", "0",
                      "--deflate", "no"] + sys.argv[3:])
        procs.append(gw)
        if not wait_healthy(port, time.monotonic() + 60):
            sys.exit("gateway never healthy")
        time.sleep(float(os.environ.get("SETTLE", "1")))
        pids = [gw.pid] + children(gw.pid)
        before = sum(rss_kib(p) for p in pids)
        sm0 = smaps(pids[-1]) if os.environ.get("SMAPS") else None
        bench = subprocess.Popen(
            [build + "/parley-bench", "--mode", "idle", "--url",
             "ws://127.0.0.1:%d/ws/" % port, "--conns", str(n), "--rooms",
             "100", "--duration", "300"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(bench)
        ready = 0
        for line in bench.stdout:  # parley-bench bounds its connects
            m = re.match(r"READY (\d+)", line)
            if m:
                ready = int(m.group(1))
                break
        time.sleep(2.0)
        after = sum(rss_kib(p) for p in pids)
        if sm0 is not None:
            sm1 = smaps(pids[-1])
            for k in sorted(sm1, key=lambda k: sm0.get(k, 0) - sm1[k]):
                if sm1[k] - sm0.get(k, 0) >= 32:
                    print("  %+8d KiB %s" % (sm1[k] - sm0.get(k, 0), k))
        print("pids=%s before=%d KiB after=%d KiB ready=%d per_conn=%.0f B"
              % (pids, before, after, ready,
                 (after - before) * 1024.0 / max(ready, 1)), flush=True)
        if os.environ.get("HOLD"):
            print("holding; worker pid %d, port %d" % (pids[-1], port),
                  flush=True)
            time.sleep(float(os.environ["HOLD"]))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
