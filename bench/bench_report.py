"""bench_report.py - renders docs/benchmarks.md from run_bench.py's data.

Every number in the report comes from parley-bench's JSON results or from
/proc of the servers during the run; the only hand-written part is
bench/findings.md (the analysis), included verbatim.
"""

import os
import platform
import re
import statistics
import subprocess
import time


def sh(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    lscpu = sh(["lscpu"])
    model = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return {"cpu": model.group(1).strip() if model else platform.processor(),
            "cpus": os.cpu_count(), "kernel": platform.release(),
            "mem_mib": mem, "os": sh(["sh", "-c", ". /etc/os-release && "
                                      "echo $PRETTY_NAME"])}


def versions(kw):
    scratch = kw["scratch"]

    def pkg_version(name):
        path = os.path.join(scratch, "node_modules", name, "package.json")
        try:
            with open(path) as f:
                m = re.search(r'"version"\s*:\s*"([^"]+)"', f.read())
                return m.group(1) if m else "?"
        except OSError:
            return "not installed"
    out = [("parley", "%s (commit %s)" % (sh([kw["gateway"], "--version"]),
                                          kw.get("commit") or "unknown")),
           ("libevent", sh(["pkg-config", "--modversion", "libevent"])),
           ("libzmq", sh(["pkg-config", "--modversion", "libzmq"])),
           ("zlib", sh(["pkg-config", "--modversion", "zlib"])),
           ("cc", sh(["sh", "-c", "${CC:-cc} --version | head -1"]))]
    if kw["peers"]:
        out += [("node", sh(["node", "--version"])),
                ("ws (npm)", pkg_version("ws")),
                ("uWebSockets.js (npm @trufflesuite/uws-js-unofficial)",
                 pkg_version("@trufflesuite/uws-js-unofficial")),
                ("bun (npm bun)", sh([kw["bun"], "--version"]))]
    return out


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def rng(values):
    vals = [v for v in values if v is not None]
    return (min(vals), max(vals)) if vals else None


def fmt(v, kind="n"):
    if v is None:
        return "n/a"
    if kind == "ms":
        return "%.1f" % v if v < 100 else "%.0f" % v
    if kind == "b":
        return "%.0f" % v
    if v >= 100:
        return "{:,.0f}".format(v)
    return "%.1f" % v


BENCH_CPU_LIMIT = 85.0  # load generator near its core: a lower bound


def cell(runs, key, kind="n"):
    vals = [r.get(key) for r in runs]
    m = med(vals)
    if m is None:
        return "n/a", None
    r = rng(vals)
    mark = ""
    if key == "sat" and any((x.get("sat_cpu") or 0) >= BENCH_CPU_LIMIT
                            for x in runs):
        mark = " &ge;&dagger;"
    if len([v for v in vals if v is not None]) > 1:
        return "%s (%s..%s)%s" % (fmt(m, kind), fmt(r[0], kind),
                                  fmt(r[1], kind), mark), m
    return fmt(m, kind) + mark, m


def table(data, scenario, cols, ratio_key, order):
    """cols: [(key, title, kind)].  The ratio column compares Parley's median
    of ratio_key with each server's."""
    rows = data.get(scenario, {})
    if not rows:
        return "_not run_\n"
    head = ["server"] + [t for _, t, _ in cols]
    if ratio_key and len(rows) > 1:
        head.append("Parley / server (%s)" % ratio_key)
    lines = ["| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    ref = med([r.get(ratio_key) for r in rows.get(order[0], [])]) \
        if ratio_key else None
    for label in order:
        if label not in rows:
            continue
        cells = [label]
        for key, _, kind in cols:
            cells.append(cell(rows[label], key, kind)[0])
        if ratio_key and len(rows) > 1:
            m = med([r.get(ratio_key) for r in rows[label]])
            cells.append("%.2f" % (ref / m) if ref and m else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def targets(data, peers, sizes):
    """(target, Parley, reference, verdict) rows."""
    def m(s, label, key):
        return med([r.get(key) for r in data.get(s, {}).get(label, [])])
    rows = []
    p_sat = m("S1", "parley", "sat")
    peer_sats = {k: m("S1", k, "sat") for k in peers}
    peer_sats = {k: v for k, v in peer_sats.items() if v}
    if peer_sats:
        best = max(peer_sats, key=peer_sats.get)
        rows.append(("S1 saturation >= fastest peer (%s)" % best,
                     fmt(p_sat), fmt(peer_sats[best]),
                     verdict(p_sat, peer_sats[best], 1.0)))
    if "uws" in peer_sats:
        rows.append(("S1 saturation >= 1.5 x uWebSockets.js", fmt(p_sat),
                     "1.5 x %s = %s" % (fmt(peer_sats["uws"]),
                                        fmt(1.5 * peer_sats["uws"])),
                     verdict(p_sat, peer_sats["uws"], 1.5)))
    p99s = {k: m("S1", k, "fixed_p99_ms") for k in peers}
    p99s = {k: v for k, v in p99s.items() if v}
    if p99s:
        best = min(p99s, key=p99s.get)
        p_p99 = m("S1", "parley", "fixed_p99_ms")
        rows.append(("S1 p99 at 100k deliveries/s <= best peer's (%s)" % best,
                     fmt(p_p99, "ms"), fmt(p99s[best], "ms"),
                     "met" if p_p99 is not None and p_p99 <= p99s[best]
                     else "NOT met"))
    u_hs = m("S3", "uws", "hs")
    if u_hs:
        p_hs = m("S3", "parley", "hs")
        rows.append(("S3 handshakes/s >= uWebSockets.js", fmt(p_hs),
                     fmt(u_hs), verdict(p_hs, u_hs, 1.0)))
    for key, n in zip(("gw_a", "gw_b"), sizes):
        u = m("S4", "uws", key)
        if u:
            p = m("S4", "parley", key)
            rows.append(("S4 gateway bytes/idle conn <= uWebSockets.js "
                         "(%s conns)" % fmt(n), fmt(p, "b"), fmt(u, "b"),
                         "met" if p is not None and p <= u else "NOT met"))
    return rows


def verdict(value, ref, factor):
    if value is None or ref is None:
        return "n/a"
    return "met" if value >= factor * ref else "NOT met"


def render(**kw):
    data, peers = kw["data"], kw["peers"]
    order = ["parley"] + list(peers)
    mc = machine()
    out = []
    w = out.append
    w("# Benchmarks\n")
    reruns = kw.get("reruns") or []
    w("Generated by `make bench` (bench/run.sh) on %s in %.0f s%s. "
      "Every number below was measured by that run%s; re-run it to refresh "
      "this file. Raw results: `bench-results.jsonl` in the build "
      "directory.\n" % (kw.get("date") or time.strftime("%Y-%m-%d %H:%M"),
                        kw["seconds"],
                        " (BENCH_QUICK=1: smaller scenarios, shorter runs)"
                        if kw["quick"] else "",
                        "".join(", except %s, measured again on commit %s "
                                "at %s (see the notes)" % tuple(r)
                                for r in reruns)))
    w("```sh\ncd build && make bench                 # Parley alone, "
      "about 15 minutes\nBENCH_QUICK=1 make bench               # smoke "
      "run, about 2 minutes\nBENCH_PEERS=1 make bench               # also "
      "ws, uWebSockets.js and Bun (npm, in $TMPDIR/parley-peers)\n"
      "BENCH_ONLY=S1,S3 make bench            # some scenarios only\n```\n")
    w("## Machine and versions\n")
    w("| | |\n|---|---|")
    w("| CPU | %s, %d CPUs |" % (mc["cpu"], mc["cpus"]))
    w("| memory | %d MiB |" % mc["mem_mib"])
    w("| system | %s, kernel %s |" % (mc["os"], mc["kernel"]))
    w("| load average at start / end | %s / %s |" % (
        " ".join(kw["load"][0]), " ".join(kw["load"][1])))
    for name, ver in versions(kw):
        w("| %s | %s |" % (name, ver or "?"))
    w("")
    w(method(kw))
    rows = targets(data, peers, kw.get("s4_sizes") or [0, 0])
    w("## Targets\n")
    if rows:
        w("| target | Parley | reference | verdict |\n|---|---|---|---|")
        for r in rows:
            w("| %s | %s | %s | %s |" % r)
        w("\nFor every target not met, the findings below give the profile "
          "that explains the gap and what would close it.\n")
    else:
        w("_The targets compare with the peers: run with BENCH_PEERS=1._\n")
    w(results(data, order, kw))
    w(profile_section(kw["prof"]))
    w(findings(kw["src"]))
    if kw["notes"]:
        w("## Notes from this run\n")
        for n in kw["notes"]:
            w("- %s" % n)
        w("")
    w(commands(kw["commands"]))
    return "\n".join(out) + "\n"


def method(kw):
    reps = kw["repeats"]
    return """## Method

- The servers run on CPU 0 and the load generator on CPU 1 (`taskset`)%s;
  S5 runs unpinned. Parley runs as one broker and one gateway with one
  worker (`--workers 1`), %s, `--max-connections-per-ip 0` and
  `--max-text 65536` (plain lines are bounded by max_text, 4 KiB by
  default, and S6 sends 16 KiB); every server
  listens on 127.0.0.1 on a port picked free.
- The load generator is `parley-bench` (bench/): epoll, non-blocking, the
  project's frame codec. Every message carries its publisher, a
  per-publisher counter and its send time (CLOCK_MONOTONIC); every delivery
  is checked (lost, duplicated, reordered per publisher) and its latency
  recorded in a log-bucket histogram. Publishers are open-loop: they send on
  schedule whatever the server does, staggered evenly (publisher k of P
  sends at t0 + (n + k/P) / rate), so servers see a smooth stream, not P
  messages at once.
- The "bench CPU" columns are the generator's own CPU use (getrusage, %% of
  one core) during the measured part. On this machine (a paravirtualized
  guest) a system call costs several microseconds, and the generator pays
  about one `recv` per delivery at low rates and fewer as reads batch at
  high rates: its CPU use climbs towards 100%% long before it stops keeping
  up (uWebSockets.js at 1.5M deliveries/s still met the p99 bound). A
  &dagger; marks saturation figures measured with the generator at 85%% or
  more: the server may do better than shown.
- **Saturation** is the highest delivery rate (messages delivered to
  clients per second) of a run with no message lost, no connection closed
  and p99 latency under 50 ms, found by a search over publish rates
  (doubling, then bisection; later repetitions start near the first
  result). Each probe: 1 s warm-up, %s s measured, up to 2 s to drain.
- Scenarios: **S1** fan-out, 1 room, 1000 connections, 10 publishers, 64 B
  (saturation, and latency at 100k deliveries/s); **S2** 100 rooms x 100
  connections, 100 publishers, 64 B; **S3** WebSocket handshakes per second
  (open, verified 101, close handshake), 64 in flight; **S4** RSS growth per
  idle connection at 10k and 50k connections (VmRSS of the server
  processes before and after, divided by N; see the notes when the
  descriptor limit forces a smaller N); **S5** Parley with 1 gateway
  worker vs 2 (unpinned, both CPUs shared with the load); **S6** 16 KiB
  messages to 100 connections (10 publishers), permessage-deflate off and
  on (the text is pseudo-random lowercase words, about 1.6:1
  compressible).%s
- %s
- The machine is shared (2 CPUs, other jobs may run): the load average
  above says how quiet it was. Numbers from a busy machine are lower and
  noisier than a dedicated one would give, and its latency floor is high
  (uWebSockets.js with 2 connections at 20 messages/s: p50 0.5 ms).
""" % (" when there are two CPUs or more" if kw["pin"] else
       " (not here: fewer than two CPUs)",
       "`--rate-limit 0` (the default limit of about 20 messages/s per "
       "connection would throttle the publishers)" if kw["has_rate_limit"]
       else "no rate limit (this gateway has none)",
       "2" if kw["quick"] else "3",
       " Quick mode: S2 is 20 rooms x 50, S4 is 2k and 5k." if kw["quick"]
       else "",
       ("Each server ran %d times, alternating servers; tables give the "
        "median and (min..max)." % reps) if reps > 1 else
       "Each scenario ran once (BENCH_REPEATS=3 for medians and ranges).")


def results(data, order, kw):
    out = ["## Results\n"]
    w = out.append
    w("### S1 fan-out: 1 room, 1000 connections, 10 publishers, 64 B\n")
    w(table(data, "S1", [("sat", "saturation deliveries/s", "n"),
                         ("sat_p99_ms", "p99 ms at saturation", "ms"),
                         ("fixed_p50_ms", "p50 ms at 100k/s", "ms"),
                         ("fixed_p99_ms", "p99 ms at 100k/s", "ms"),
                         ("sat_cpu", "bench CPU % at saturation", "n")],
              "sat", order))
    w("&dagger;: the load generator used %.0f%% or more of its core in a "
      "run at saturation: the server may go higher than measured (a lower "
      "bound).\n" % BENCH_CPU_LIMIT)
    w("### S2 many rooms: 100 rooms x 100 connections, 100 publishers\n")
    w(table(data, "S2", [("sat", "saturation deliveries/s", "n"),
                         ("sat_p99_ms", "p99 ms at saturation", "ms"),
                         ("fixed_p50_ms", "p50 ms at 100k/s", "ms"),
                         ("fixed_p99_ms", "p99 ms at 100k/s", "ms"),
                         ("sat_cpu", "bench CPU %", "n")], "sat", order))
    w("### S3 handshakes, 64 in flight\n")
    w(table(data, "S3", [("hs", "handshakes/s", "n"),
                         ("hs_p50_ms", "p50 ms", "ms"),
                         ("hs_p99_ms", "p99 ms", "ms"),
                         ("hs_err", "errors", "n"),
                         ("hs_cpu", "bench CPU %", "n")], "hs", order))
    w("### S4 memory per idle connection (bytes of RSS)\n")
    sizes = kw.get("s4_sizes") or [0, 0]
    cols = []
    for k, n in zip("ab", sizes):
        cols += [("gw_" + k, "server at %s" % fmt(n), "b"),
                 ("br_" + k, "broker at %s" % fmt(n), "b"),
                 ("ready_" + k, "connections held", "n")]
    w(table(data, "S4", cols, "gw_b", order))
    w("Lower is better: the ratio column is Parley's bytes over the "
      "server's. \"server\" is the gateway (master and worker) for Parley, "
      "the process for the peers; plain connections do not reach Parley's "
      "broker.\n")
    w("### S5 scale-out on one host: 1 gateway worker vs 2 (S1 load)\n")
    w(table(data, "S5", [("sat", "saturation deliveries/s", "n"),
                         ("sat_p99_ms", "p99 ms", "ms"),
                         ("sat_cpu", "bench CPU %", "n")], "sat",
              ["parley-1w", "parley-2w"]))
    w("With 2 CPUs in all, the second worker competes with the broker and "
      "the load generator for the same two CPUs.\n")
    w("### S6 large messages: 16 KiB to 100 connections\n")
    w("permessage-deflate off:\n")
    w(table(data, "S6", [("sat", "saturation deliveries/s", "n"),
                         ("sat_p99_ms", "p99 ms", "ms"),
                         ("fixed_p50_ms", "p50 ms at 2000/s", "ms"),
                         ("fixed_p99_ms", "p99 ms at 2000/s", "ms"),
                         ("sat_cpu", "bench CPU %", "n")], "sat", order))
    w("permessage-deflate on%s:\n" % (
        "" if kw["has_deflate"] else " (Parley: not supported by this "
        "gateway)"))
    w(table(data, "S6z", [("sat", "saturation deliveries/s", "n"),
                          ("sat_p99_ms", "p99 ms", "ms"),
                          ("fixed_p50_ms", "p50 ms at 2000/s", "ms"),
                          ("fixed_p99_ms", "p99 ms at 2000/s", "ms"),
                          ("sat_cpu", "bench CPU %", "n")], "sat", order))
    return "\n".join(out)


def profile_section(prof):
    if not prof:
        return ""
    out = ["## Profile of Parley during S1\n",
           "`perf record -g` of the gateway worker and the broker for 4 s "
           "at S1's saturation rate (`perf report --no-children --sort "
           "comm,dso,symbol`, entries over 1%). CPU used in that window, "
           "in cores:\n"]
    for name, v in sorted(prof.get("cpu_share", {}).items()):
        out.append("- %s: %.2f" % (name, v))
    out.append("\nSelf time (`--no-children`):\n\n```")
    out.extend(prof.get("top", []))
    out.append("```\n\nWith callees (`--children --sort symbol`, over 3%):"
               "\n\n```")
    out.extend(prof.get("children", []))
    out.append("```\n")
    return "\n".join(out)


def findings(src):
    path = os.path.join(src, "bench", "findings.md")
    try:
        with open(path) as f:
            return f.read().rstrip() + "\n"
    except OSError:
        return ""


def commands(cmds):
    out = ["## Commands\n",
           "The first commands of each scenario and server, as run (ports "
           "were picked free; saturation searches repeat the last command "
           "with other `--rate` values).\n", "```sh"]
    for (scenario, server), lines in cmds.items():
        out.append("# %s, %s" % (scenario, server))
        out.extend(lines)
    out.append("```\n")
    return "\n".join(out)
