#!/usr/bin/python3
"""Failover: a killed gateway worker is respawned and its clients resume
exactly; a broker restart is survived by the gateways' connections (with an
epoch change told to JSON clients); SIGTERM on a gateway closes its
WebSockets with 1012."""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import JsonClient, PlainClient  # noqa: E402


def is_msg(room):
    return lambda m: m.get("type") == "msg" and m.get("room") == room


async def poll(cond, timeout, what):
    """Until cond() (sync or async) is true; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0f s" % (what, timeout))
        await asyncio.sleep(0.05)


async def clients_on_two_workers(gw, n_max=16):
    """JSON clients on gw until two different workers hold some; returns
    {worker pid: [clients]}."""
    by_worker = {}
    for i in range(n_max):
        c = await JsonClient.connect(gw.port, label="c%d" % i)
        pid = await poll(lambda: h.worker_of_connection(gw, c.local_port), 5,
                         "worker of client %d" % i)
        by_worker.setdefault(pid, []).append(c)
        if len(by_worker) == 2 and all(len(v) >= 2 for v in by_worker.values()):
            break
    return by_worker


async def test_worker_killed_respawned_and_resume():
    async with h.Cluster(gateways=2, workers=2) as cl:
        a, b = cl.gateways
        room = h.uniq("fo")
        by_worker = await clients_on_two_workers(a)
        assert len(by_worker) == 2, "all connections went to one worker: %s" \
            % list(by_worker)
        victim, survivor = sorted(by_worker)
        sender = await JsonClient.connect(b.port, label="sender")
        _, js = await sender.join(room, "sender")
        epoch = js["epoch"]
        nicks = {}
        for pid, cs in by_worker.items():
            for c in cs:
                nicks[c] = "%s-%d" % (c.label, pid)
                await c.join(room, nicks[c])
        for i in range(5):
            await sender.say(room, "pre-%d" % i, ref="p%d" % i)
        last = {}
        for cs in by_worker.values():
            for c in cs:
                got = await c.msgs_until(room, 5)
                last[c] = got[-1]["seq"]
        a.kill_worker(victim)
        for c in by_worker[victim]:
            code = await c.wait_closed(10)
            assert code == 1006, "%s: killed worker's client closed %s" % (
                c.label, code)
        new = await poll(lambda: [p for p in a.worker_pids()
                                  if p not in (victim, survivor)], 10,
                         "respawned worker")
        assert len(a.worker_pids()) == 2, a.worker_pids()
        missed = []
        for i in range(8):
            ack = await sender.say(room, "mid-%d" % i, ref="m%d" % i)
            assert ack["type"] == "ack", ack
            missed.append(ack["seq"])
        # the killed worker's members leave the room (broker link timeout)
        gone = {nicks[c] for c in by_worker[victim]}

        async def members_gone():
            who = await sender.request({"type": "who", "room": room,
                                        "ref": "who%f" % time.monotonic()})
            return not gone & set(who["members"])
        await poll(members_gone, 15, "killed worker's members removed")
        # survivors saw everything, in order
        for c in by_worker[survivor]:
            got = await c.msgs_until(room, missed[-1])
            h.assert_contiguous([m["seq"] for m in got], last[c] + 1,
                                missed[-1], c.label)
        # the victims reconnect (alternately to each gateway) and resume
        await h.wait_healthz(a.port, 200, time.monotonic() + 10)
        for i, c in enumerate(by_worker[victim]):
            gw = (a, b)[i % 2]
            r = await JsonClient.connect(gw.port, label="re-" + c.label)
            msgs, j = await r.join(room, nicks[c], since=last[c], epoch=epoch)
            want = list(range(last[c] + 1, missed[-1] + 1))
            assert [m["seq"] for m in msgs] == want, (
                "%s replay %s, want %s" % (r.label, [m["seq"] for m in msgs],
                                           want))
            assert j["recovered"] is True and j["epoch"] == epoch, j
        # the respawned worker serves: connect until one lands on it
        for _ in range(20):
            c = await JsonClient.connect(a.port, label="probe")
            pid = await poll(lambda: h.worker_of_connection(a, c.local_port), 5,
                             "worker of probe")
            if pid in new:
                await c.join(room, "probe")
                ack = await c.say(room, "from new worker", ref="nw")
                assert ack["type"] == "ack", ack
                break
            await c.close()
        else:
            raise AssertionError("no connection reached the new worker %s" % new)


async def test_broker_restart():
    async with h.Cluster(gateways=2, workers=2) as cl:
        a, b = cl.gateways
        room = h.uniq("br")
        j1 = await JsonClient.connect(a.port, label="j1")
        j2 = await JsonClient.connect(b.port, label="j2")
        _, k1 = await j1.join(room, "one")
        _, k2 = await j2.join(room, "two")
        p1 = await PlainClient.connect(a.port, "/ws/" + room, label="p1")
        p2 = await PlainClient.connect(b.port, "/ws/" + room, label="p2")
        old_epoch = k1["epoch"]
        for i in range(3):
            await j1.say(room, "before-%d" % i, ref="b%d" % i)
        for c in (j1, j2):
            await c.msgs_until(room, 3)
        for c in (p1, p2):
            for i in range(3):
                assert await c.next() == "before-%d" % i
        cl.broker.kill_hard()
        for g in (a, b):
            await h.wait_healthz(g.port, 503, time.monotonic() + 15, g)
        cl.broker.start()
        await cl.broker.wait_ready()
        for g in (a, b):
            await h.wait_healthz(g.port, 200, time.monotonic() + 15, g)
            await g.wait_workers(time.monotonic() + 15)
        for c in (j1, j2, p1, p2):
            assert not c.closed.is_set(), "%s closed (%s) by the broker restart" % (
                c.label, c.close_code)
        new_joined = {}
        for c in (j1, j2):
            j = await c.wait(lambda m: m.get("type") == "joined"
                             and m.get("room") == room, 15,
                             "unsolicited joined with the new epoch")
            assert j["epoch"] != old_epoch, j
            assert j["recovered"] is False, j
            new_joined[c] = j
        deadline = time.monotonic() + 15
        while True:
            ack = await j1.say(room, "after", ref="a%f" % time.monotonic())
            if ack["type"] == "ack":
                break
            assert ack.get("code") == "unavailable", ack
            assert time.monotonic() < deadline, "say never acked after restart"
            await asyncio.sleep(0.1)
        for c in (j1, j2):
            m = await c.wait(is_msg(room), 10, "msg after restart")
            assert m["text"] == "after" and m["seq"] == ack["seq"], m
            assert m["seq"] == new_joined[c]["seq"] + 1, (m, new_joined[c])
        for c in (p1, p2):
            assert await c.next(10) == "after"
        await p2.send("plain after")
        for c in (p1, p2):
            assert await c.next(10) == "plain after"
        m = await j2.wait(is_msg(room), 10, "plain line as msg")
        assert m["text"] == "plain after" and m["nick"] == "anonymous", m
        who = await j2.request({"type": "who", "room": room, "ref": "w"})
        assert sorted(who["members"]) == ["one", "two"], who


async def test_sigterm_closes_1012():
    async with h.Cluster(gateways=1, workers=2) as cl:
        g = cl.gw
        clients = [await PlainClient.connect(g.port, "/ws/" + h.uniq("t"))
                   for _ in range(3)]
        clients += [await JsonClient.connect(g.port) for _ in range(3)]
        g.expect_exit = True
        g.signal(signal.SIGTERM)
        codes = [await c.wait_closed(15) for c in clients]
        assert codes == [1012] * len(clients), "close codes %s" % codes
        await poll(lambda: g.proc.poll() is not None, 15,
                   "gateway master exit after SIGTERM")
        rc = g.proc.returncode
        assert rc == 0, "gateway exited with status %s" % rc
        await poll(lambda: not g._group_has_live_member(g.pid), 5,
                   "workers gone after the master exited")


if __name__ == "__main__":
    h.run(globals(), timeout=60)
