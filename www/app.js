/*
 * Parley web client: plain JavaScript, no build step, no framework.
 *
 * Speaks parley.v1 (JSON mode, PROTOCOL.md section 3) over one WebSocket to
 * ws(s)://<page host>/ws, in one or more rooms at once.  Reconnects by itself
 * with exponential backoff and jitter, resumes every room with since/epoch,
 * queues lines typed while offline and matches them with their ack and echo.
 *
 * Safety: text from the network only ever reaches the page through
 * textContent / attribute setters, never as HTML.  The page runs under a
 * strict CSP (no inline script or style).
 */
'use strict';

(function () {
  var STORE_NICK = 'parley.nick';
  var STORE_ROOMS = 'parley.rooms';
  var STORE_ACTIVE = 'parley.room';
  var DEFAULT_ROOM = 'lobby';
  var ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;
  var CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
  var BACKOFF_MIN_MS = 250;
  var BACKOFF_MAX_MS = 10000;
  var IDLE_PROBE_MS = 25000;    /* probe a silent connection after this */
  var PROBE_TIMEOUT_MS = 10000; /* ...and give it up if the probe goes unanswered */
  var MAX_LINES = 1500;         /* DOM lines kept per room */
  var MAX_STRAYS = 200;
  var GROUP_MS = 5 * 60 * 1000; /* consecutive lines of one nick are grouped */
  var STATES = ['connecting', 'open', 'closing', 'closed'];

  var $ = function (id) { return document.getElementById(id); };

  var S = {
    nick: '',
    ws: null,
    deliberate: false,
    attempt: 0,
    retryTimer: null,
    retryAt: 0,
    tickTimer: null,
    probeTimer: null,
    lastRx: 0,
    closeInfo: '',
    rooms: new Map(),   /* name -> room state */
    order: [],          /* room names in display order */
    active: DEFAULT_ROOM,
    pending: new Map(), /* ref -> outgoing item */
    joinRefs: new Map(),/* ref -> room name */
    refCount: 0,
    session: Math.random().toString(36).slice(2, 8),
    maxMessage: 65536,
    welcomed: false     /* welcome received on the current connection */
  };

  /* ---------- small helpers ---------- */

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function utf8Length(s) {
    if (window.TextEncoder) return new TextEncoder().encode(s).length;
    return unescape(encodeURIComponent(s)).length;
  }

  function store(key, value) {
    try { window.localStorage.setItem(key, value); } catch (e) { /* private mode */ }
  }

  function load(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }

  function nickHue(nick) {
    var h = 0;
    for (var i = 0; i < nick.length; i++) h = (h * 31 + nick.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function initial(nick) {
    var first = Array.from(nick.trim())[0] || '?';
    return first.toUpperCase();
  }

  function fmtTime(ts) {
    var d = new Date(ts);
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function dayKey(ts) {
    var d = new Date(ts);
    return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate();
  }

  function nextRef(prefix) {
    S.refCount += 1;
    return prefix + '-' + S.session + '-' + S.refCount;
  }

  /* ---------- rooms ---------- */

  function parseHash() {
    var h = (location.hash || '').replace(/^#/, '');
    try { h = decodeURIComponent(h); } catch (e) { return ''; }
    var m = /(?:^|&)room=([^&]*)/.exec(h);
    var name = m ? m[1] : (h.indexOf('=') < 0 ? h : '');
    return ROOM_RE.test(name) ? name : '';
  }

  function makeRoom(name) {
    var list = el('ol', 'messages');
    list.setAttribute('aria-live', 'polite');
    list.setAttribute('aria-relevant', 'additions');
    list.setAttribute('aria-label', 'Messages in #' + name);
    list.dataset.room = name;
    list.hidden = true;
    $('scroller').appendChild(list);
    return {
      name: name, list: list, epoch: null, lastSeq: -1, nick: '',
      joined: false, joining: false, joinBuf: [], strays: [],
      members: [], count: 0, unread: 0, outbox: [], inflight: [],
      acked: new Map(), stick: true, scrollTop: 0, whoTimer: null,
      leaving: false
    };
  }

  function addRoom(name) {
    var r = S.rooms.get(name);
    if (r) return r;
    r = makeRoom(name);
    S.rooms.set(name, r);
    S.order.push(name);
    saveRooms();
    if (S.ws && S.ws.readyState === 1 && S.welcomed) sendJoin(r);
    renderRoomList();
    return r;
  }

  function saveRooms() {
    store(STORE_ROOMS, JSON.stringify(S.order));
    store(STORE_ACTIVE, S.active);
  }

  function switchRoom(name) {
    if (!ROOM_RE.test(name)) {
      toast('Room names are 1 to 64 characters of A-Z a-z 0-9 . _ -', 'error');
      return;
    }
    var prev = S.rooms.get(S.active);
    if (prev && prev.name !== name) {
      prev.stick = isAtBottom();
      prev.scrollTop = $('scroller').scrollTop;
      prev.list.hidden = true;
    }
    var r = addRoom(name);
    S.active = name;
    r.list.hidden = false;
    r.unread = 0;
    saveRooms();
    if (parseHash() !== name && window.history && history.replaceState) {
      history.replaceState(null, '', '#room=' + name);
    }
    $('room-title-name').textContent = name;
    $('input').placeholder = 'Message #' + name;
    document.title = '#' + name + ' \u00b7 Parley';
    if (r.stick) scrollToBottom(); else $('scroller').scrollTop = r.scrollTop;
    $('new-hint').hidden = true;
    renderRoomList();
    renderMembers();
    closePanels();
  }

  function removeRoom(name) {
    var r = S.rooms.get(name);
    if (!r || S.order.length < 2) return;
    if (S.ws && S.ws.readyState === 1 && r.joined) {
      wsSend({ type: 'leave', room: name, ref: nextRef('l') });
    }
    r.outbox.concat(r.inflight).forEach(function (it) { S.pending.delete(it.ref); });
    S.rooms.delete(name);
    S.order = S.order.filter(function (n) { return n !== name; });
    r.list.remove();
    if (S.active === name) switchRoom(S.order[0]);
    saveRooms();
    renderRoomList();
  }

  /* ---------- connection ---------- */

  function wsUrl() {
    var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + location.host + '/ws';
  }

  function connect() {
    clearTimeout(S.retryTimer);
    S.retryTimer = null;
    if (S.ws || !S.nick) return;
    var ws;
    try {
      ws = new WebSocket(wsUrl(), 'parley.v1');
    } catch (e) {
      S.closeInfo = 'cannot connect: ' + e.message;
      scheduleReconnect();
      return;
    }
    S.ws = ws;
    S.deliberate = false;
    S.welcomed = false;
    ws.onopen = function () { if (S.ws === ws) { S.lastRx = Date.now(); armProbe(); renderState(); } };
    ws.onmessage = function (ev) { if (S.ws === ws) onData(ev.data); };
    ws.onerror = function () { if (S.ws === ws) renderState(); };
    ws.onclose = function (ev) { if (S.ws === ws) onClose(ev); };
    renderState();
  }

  function onClose(ev) {
    S.ws = null;
    S.welcomed = false;
    clearTimeout(S.probeTimer);
    S.closeInfo = closeText(ev.code, ev.reason);
    S.rooms.forEach(function (r) { roomDisconnected(r); });
    if (!S.deliberate) scheduleReconnect();
    renderState();
  }

  function closeText(code, reason) {
    var names = { 1000: 'normal', 1001: 'server going away', 1006: 'connection lost',
      1008: 'refused by policy', 1011: 'server error', 1012: 'server restarting',
      1013: 'server busy' };
    var t = names[code] || ('code ' + code);
    return reason ? t + ': ' + reason : t;
  }

  /* Closed for whatever reason: everything sent but not acknowledged goes
   * back to the front of the outbox, marked as possibly delivered, so that
   * its echo in the replay is recognised instead of sending it twice. */
  function roomDisconnected(r) {
    r.joined = false;
    r.list.dataset.joined = 'false';
    r.joining = false;
    if (r.joinBuf.length) {
      r.joinBuf.forEach(function (m) { acceptMsg(r, m); });
      r.joinBuf = [];
    }
    var back = r.inflight.map(function (it) { it.maybeSent = true; return it; });
    r.inflight = [];
    r.outbox = back.concat(r.outbox);
    r.outbox.forEach(function (it) { setItemState(it, 'queued'); });
    clearTimeout(r.whoTimer);
  }

  function scheduleReconnect() {
    clearTimeout(S.retryTimer);
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, S.attempt));
    var delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    S.attempt = Math.min(S.attempt + 1, 16);
    S.retryAt = Date.now() + delay;
    S.retryTimer = setTimeout(connect, delay);
    startTick();
  }

  function startTick() {
    if (S.tickTimer) return;
    S.tickTimer = setInterval(function () {
      if (!S.retryTimer) { clearInterval(S.tickTimer); S.tickTimer = null; }
      renderState();
    }, 500);
  }

  /* Give up a connection that went silent (network gone without a FIN):
   * the browser may take minutes to notice on its own. */
  function abandon(reason) {
    var ws = S.ws;
    if (!ws) return;
    S.ws = null;
    try { ws.close(4000, reason); } catch (e) { /* already closing */ }
    onClose({ code: 1006, reason: reason });
  }

  function armProbe() {
    clearTimeout(S.probeTimer);
    S.probeTimer = setTimeout(probe, IDLE_PROBE_MS);
  }

  function probe() {
    if (!S.ws || S.ws.readyState !== 1) return;
    var idle = Date.now() - S.lastRx;
    if (idle < IDLE_PROBE_MS) { S.probeTimer = setTimeout(probe, IDLE_PROBE_MS - idle); return; }
    var joined = S.order.filter(function (n) { return S.rooms.get(n).joined; });
    if (!joined.length) { armProbe(); return; }
    wsSend({ type: 'who', room: joined[0] });  /* any answer will do */
    S.probeTimer = setTimeout(function () {
      if (Date.now() - S.lastRx >= PROBE_TIMEOUT_MS) abandon('no answer');
      else armProbe();
    }, PROBE_TIMEOUT_MS);
  }

  function wsSend(obj) {
    if (!S.ws || S.ws.readyState !== 1) return false;
    S.ws.send(JSON.stringify(obj));
    return true;
  }

  function sendJoin(r) {
    var ref = nextRef('j');
    var msg = { type: 'join', room: r.name, nick: S.nick, ref: ref };
    if (r.lastSeq >= 0 && r.epoch) { msg.since = r.lastSeq; msg.epoch = r.epoch; }
    r.joining = true;
    r.joinBuf = [];
    r.resuming = msg.since !== undefined;
    S.joinRefs.set(ref, r.name);
    wsSend(msg);
  }

  /* ---------- incoming ---------- */

  function onData(data) {
    S.lastRx = Date.now();
    var m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (!m || typeof m.type !== 'string') return;
    var h = HANDLERS[m.type];
    if (h) h(m);
  }

  var HANDLERS = {
    welcome: function (m) {
      S.welcomed = true;
      if (typeof m.max_message === 'number') S.maxMessage = m.max_message;
      S.order.forEach(function (name) { sendJoin(S.rooms.get(name)); });
      renderState();
    },
    msg: function (m) {
      var r = S.rooms.get(m.room);
      if (!r || typeof m.seq !== 'number') return;
      if (typeof m.ts !== 'number' || !isFinite(m.ts)) m.ts = Date.now();
      m.nick = typeof m.nick === 'string' ? m.nick : 'anonymous';
      m.text = typeof m.text === 'string' ? m.text : '';
      if (r.joining) { r.joinBuf.push(m); return; }
      acceptMsg(r, m);
    },
    joined: onJoined,
    presence: onPresence,
    ack: onAck,
    who: function (m) {
      var r = S.rooms.get(m.room);
      if (!r || !Array.isArray(m.members)) return;
      r.members = m.members.slice().sort(function (a, b) { return a.localeCompare(b); });
      r.count = r.members.length;
      if (r.name === S.active) renderMembers();
    },
    left: function (m) { S.joinRefs.delete(m.ref); },
    error: onError
  };

  /* A msg in seq order: drop anything already seen, merge own echoes with
   * their pending line, show the rest. */
  function acceptMsg(r, m) {
    if (r.lastSeq >= 0 && m.seq <= r.lastSeq) {
      if (r.strays.length < MAX_STRAYS) r.strays.push(m);
      return;
    }
    r.lastSeq = m.seq;
    var mine = m.nick === r.nick || m.nick === S.nick;
    var item = mine ? findOwnItem(r, m) : null;
    if (item) { mergeItem(r, item, m); return; }
    appendMessage(r, m, mine);
  }

  function findOwnItem(r, m) {
    var it = r.acked.get(m.seq);
    if (it) return it;
    var pool = r.inflight.concat(r.outbox.filter(function (x) { return x.maybeSent; }));
    for (var i = 0; i < pool.length; i++) if (pool[i].text === m.text) return pool[i];
    return null;
  }

  function onJoined(m) {
    var r = S.rooms.get(m.room);
    if (!r) return;
    S.joinRefs.delete(m.ref);
    var prevEpoch = r.epoch;
    var reset = prevEpoch !== null && m.epoch !== prevEpoch && m.recovered === false;
    r.nick = m.nick || S.nick;
    r.epoch = m.epoch;
    if (typeof m.members === 'number') r.count = m.members;
    if (r.joining) {
      finishJoin(r, m, reset);
    } else if (reset) {
      /* unsolicited: the server lost the room's history and started over */
      systemLine(r, 'The room\u2019s history was reset on the server.', 'notice');
      r.lastSeq = -1;
      r.strays.filter(function (x) { return x.seq <= m.seq; })
        .forEach(function (x) { acceptMsg(r, x); });
      r.lastSeq = m.seq;
    }
    r.strays = [];
    S.attempt = 0;
    requestWho(r);
    flushOutbox(r);
    if (r.name === S.active) renderMembers();
    renderRoomList();
  }

  function finishJoin(r, m, reset) {
    var buffered = r.joinBuf;
    r.joinBuf = [];
    r.joining = false;
    r.joined = true;
    r.list.dataset.joined = 'true';
    if (r.resuming && m.recovered === false) {
      systemLine(r, reset
        ? 'The room\u2019s history was reset on the server; earlier messages may be gone.'
        : 'Reconnected, but some messages could not be recovered.', 'notice');
      if (reset) r.lastSeq = -1;
    }
    r.quiet = !r.resuming;  /* the first replay is history, not news */
    buffered.forEach(function (x) { acceptMsg(r, x); });
    r.quiet = false;
    if (typeof m.seq === 'number' && (reset || m.seq > r.lastSeq)) r.lastSeq = m.seq;
  }

  function onPresence(m) {
    var r = S.rooms.get(m.room);
    if (!r || typeof m.nick !== 'string') return;
    if (typeof m.members === 'number') r.count = m.members;
    var verb = m.event === 'leave' ? 'left' : 'joined';
    systemLine(r, m.nick + ' ' + verb, 'presence');
    requestWho(r);
    if (r.name === S.active) renderMembers();
  }

  function requestWho(r) {
    clearTimeout(r.whoTimer);
    r.whoTimer = setTimeout(function () {
      if (r.joined) wsSend({ type: 'who', room: r.name });
    }, 120);
  }

  function onAck(m) {
    var it = S.pending.get(m.ref);
    if (!it || typeof m.seq !== 'number') return;
    var r = S.rooms.get(it.room);
    if (!r) return;
    it.seq = m.seq;
    r.inflight = r.inflight.filter(function (x) { return x !== it; });
    r.outbox = r.outbox.filter(function (x) { return x !== it; });
    r.acked.set(m.seq, it);
    setItemState(it, 'acked');
    /* the echo came first and was not recognised: fold it in now */
    if (r.lastSeq >= m.seq) {
      var dup = r.list.querySelector('li.msg[data-seq="' + m.seq + '"]');
      var ts = dup ? Number(dup.dataset.ts) : Date.now();
      if (dup && dup !== it.el) dup.remove();
      mergeItem(r, it, { seq: m.seq, ts: ts });
    }
  }

  function onError(m) {
    var ref = typeof m.ref === 'string' ? m.ref : '';
    var text = (m.message || m.code || 'error') + '';
    var it = ref && S.pending.get(ref);
    if (it) { itemError(it, m.code, text); return; }
    var roomName = ref && S.joinRefs.get(ref);
    if (roomName) { S.joinRefs.delete(ref); joinError(roomName, m.code, text); return; }
    toast(text, 'error');
  }

  function itemError(it, code, text) {
    var r = S.rooms.get(it.room);
    if (!r) return;
    r.inflight = r.inflight.filter(function (x) { return x !== it; });
    if ((code === 'not_joined' || code === 'unavailable') && it.tries < 3) {
      r.outbox.push(it);
      setItemState(it, 'queued');
      setTimeout(function () { flushOutbox(r); }, 1000 * it.tries);
      return;
    }
    S.pending.delete(it.ref);
    r.outbox = r.outbox.filter(function (x) { return x !== it; });
    it.el.classList.remove('unmerged');  /* stays where it is in the timeline */
    setItemState(it, 'failed', text, code !== 'too_large' && code !== 'bad_request');
  }

  function joinError(name, code, text) {
    var r = S.rooms.get(name);
    if (r && !r.joined) r.joining = false;
    if (code === 'nick_invalid') { openNick(true, text); return; }
    if (code === 'unavailable' && r) {
      toast('Chat service unavailable, retrying\u2026', 'error');
      setTimeout(function () { if (S.rooms.get(name) === r && !r.joined) sendJoin(r); }, 2000);
      return;
    }
    toast('#' + name + ': ' + text, 'error');
    if (code === 'room_invalid') removeRoom(name);
  }

  /* ---------- outgoing lines ---------- */

  function say(text) {
    var r = S.rooms.get(S.active);
    if (!r) return;
    if (utf8Length(text) > S.maxMessage - 256) {
      toast('That message is too long.', 'error');
      return;
    }
    var it = { ref: nextRef('c'), room: r.name, text: text, state: 'queued', tries: 0,
      maybeSent: false, seq: null, el: null };
    it.el = messageElement({ nick: S.nick, ts: Date.now(), text: text }, true);
    it.el.classList.add('pending', 'unmerged');
    it.el.dataset.ref = it.ref;
    insertLine(r, it.el, null);
    S.pending.set(it.ref, it);
    r.outbox.push(it);
    setItemState(it, 'queued');
    flushOutbox(r);
    scrollToBottom();
  }

  function flushOutbox(r) {
    if (!r.joined || !S.ws || S.ws.readyState !== 1) return;
    while (r.outbox.length) {
      var it = r.outbox.shift();
      it.tries += 1;
      wsSend({ type: 'say', room: r.name, text: it.text, ref: it.ref });
      r.inflight.push(it);
      setItemState(it, 'sent');
    }
  }

  function setItemState(it, state, why, canRetry) {
    it.state = state;
    var labels = { queued: 'queued', sent: 'sending\u2026', acked: '', done: '', failed: 'not sent' };
    var st = it.el.querySelector('.status');
    it.el.classList.toggle('pending', state === 'queued' || state === 'sent');
    it.el.classList.toggle('failed', state === 'failed');
    it.el.dataset.state = state;
    st.textContent = labels[state] || '';
    if (state === 'failed') {
      st.textContent = 'not sent' + (why ? ': ' + why : '');
      if (!canRetry) return;
      var retry = el('button', 'retry', 'Retry');
      retry.type = 'button';
      retry.setAttribute('aria-label', 'Retry sending this message');
      retry.addEventListener('click', function () {
        var text = it.text;
        it.el.remove();
        switchRoom(it.room);
        say(text);
      });
      st.appendChild(document.createTextNode(' '));
      st.appendChild(retry);
    }
  }

  /* The pending line becomes the real one: m is its echo (the msg with the
   * seq of its ack, or the same text from this nick while unacknowledged). */
  function mergeItem(r, it, m) {
    r.inflight = r.inflight.filter(function (x) { return x !== it; });
    r.outbox = r.outbox.filter(function (x) { return x !== it; });
    r.acked.delete(m.seq);
    S.pending.delete(it.ref);
    it.seq = m.seq;
    var t = it.el.querySelector('time');
    t.dateTime = new Date(m.ts).toISOString();
    t.textContent = fmtTime(m.ts);
    t.title = new Date(m.ts).toLocaleString();
    it.el.dataset.seq = String(m.seq);
    it.el.dataset.ts = String(m.ts);
    it.el.classList.remove('unmerged');
    setItemState(it, 'done');
    var stick = r.name === S.active && isAtBottom();
    it.el.remove();
    insertLine(r, it.el, m.ts);
    if (stick) scrollToBottom();
  }

  /* ---------- rendering ---------- */

  function messageElement(m, own) {
    var li = el('li', 'msg' + (own ? ' own' : ''));
    li.dataset.nick = m.nick;
    li.dataset.ts = String(m.ts);
    if (typeof m.seq === 'number') li.dataset.seq = String(m.seq);
    var av = el('span', 'avatar', initial(m.nick));
    av.setAttribute('aria-hidden', 'true');
    av.style.setProperty('--hue', String(nickHue(m.nick)));
    var body = el('div', 'body');
    var meta = el('div', 'meta');
    var nick = el('span', 'nick', m.nick);
    nick.dir = 'auto';
    var time = el('time', 'time', fmtTime(m.ts));
    time.dateTime = new Date(m.ts).toISOString();
    time.title = new Date(m.ts).toLocaleString();
    meta.appendChild(nick);
    if (own) meta.appendChild(el('span', 'you', 'you'));
    meta.appendChild(time);
    meta.appendChild(el('span', 'status'));
    var text = el('div', 'text', m.text);
    text.dir = 'auto';
    body.appendChild(meta);
    body.appendChild(text);
    li.appendChild(av);
    li.appendChild(body);
    return li;
  }

  function appendMessage(r, m, own) {
    var stick = r.name === S.active && isAtBottom();
    insertLine(r, messageElement(m, own), m.ts);
    if (r.name !== S.active) {
      if (!r.quiet) r.unread += 1;
      renderRoomList();
    } else if (stick) {
      scrollToBottom();
    } else {
      $('new-hint').hidden = false;
    }
  }

  /* Confirmed lines stay in seq order above the pending ones. */
  function insertLine(r, li, ts) {
    var before = li.classList.contains('unmerged') ? null : r.list.querySelector('li.unmerged');
    var prev = before ? before.previousElementSibling : r.list.lastElementChild;
    if (ts !== null && li.classList.contains('msg')) {
      var dated = prev;
      while (dated && !dated.dataset.ts) dated = dated.previousElementSibling;
      var prevTs = dated ? Number(dated.dataset.ts) : null;
      if (prevTs === null || dayKey(prevTs) !== dayKey(ts)) {
        var day = el('li', 'day', new Date(ts).toLocaleDateString([], {
          weekday: 'long', month: 'long', day: 'numeric' }));
        day.dataset.ts = String(ts);
        r.list.insertBefore(day, before);
        prev = day;
      }
    }
    if (li.classList.contains('msg') && !li.classList.contains('unmerged') &&
        prev && prev.classList.contains('msg') && !prev.classList.contains('unmerged') &&
        prev.dataset.nick === li.dataset.nick &&
        Number(li.dataset.ts) - Number(prev.dataset.ts) < GROUP_MS) {
      li.classList.add('cont');
    } else {
      li.classList.remove('cont');
    }
    r.list.insertBefore(li, before);
    while (r.list.children.length > MAX_LINES) r.list.firstElementChild.remove();
  }

  function systemLine(r, text, kind) {
    var li = el('li', 'sys ' + (kind || ''), text);
    li.dir = 'auto';
    var stick = r.name === S.active && isAtBottom();
    insertLine(r, li, null);
    if (stick) scrollToBottom();
  }

  function isAtBottom() {
    var s = $('scroller');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  function scrollToBottom() {
    var s = $('scroller');
    s.scrollTop = s.scrollHeight;
    $('new-hint').hidden = true;
  }

  function renderState() {
    var ws = S.ws;
    var state = ws ? STATES[ws.readyState] : 'closed';
    var box = $('conn-state');
    box.dataset.state = state;
    if ($('conn-state-text').textContent !== state) $('conn-state-text').textContent = state;
    var detail = '';
    if (state === 'closed') {
      if (S.retryTimer) {
        var secs = Math.max(0, (S.retryAt - Date.now()) / 1000);
        detail = (S.closeInfo ? S.closeInfo + ', ' : '') + 'retrying in ' + secs.toFixed(1) + ' s';
      } else if (S.closeInfo) {
        detail = S.closeInfo;
      }
    } else if (state === 'open' && !S.welcomed) {
      detail = 'joining\u2026';
    }
    $('conn-state-detail').textContent = detail ? '(' + detail + ')' : '';
    box.title = 'Connection: ' + state + (detail ? ' (' + detail + ')' : '');
  }

  function renderRoomList() {
    var ul = $('room-list');
    ul.textContent = '';
    S.order.forEach(function (name) {
      var r = S.rooms.get(name);
      var li = el('li', 'room' + (name === S.active ? ' active' : ''));
      var b = el('button', 'room-btn');
      b.type = 'button';
      b.dataset.room = name;
      if (name === S.active) b.setAttribute('aria-current', 'page');
      b.appendChild(el('span', 'hash', '#')).setAttribute('aria-hidden', 'true');
      b.appendChild(el('span', 'room-name', name));
      if (r.unread) {
        var u = el('span', 'unread', r.unread > 99 ? '99+' : r.unread);
        u.setAttribute('aria-label', r.unread + ' unread');
        b.appendChild(u);
      }
      b.addEventListener('click', function () { switchRoom(name); });
      li.appendChild(b);
      if (S.order.length > 1) {
        var x = el('button', 'room-close', '\u00d7');
        x.type = 'button';
        x.setAttribute('aria-label', 'Leave #' + name);
        x.addEventListener('click', function () { removeRoom(name); });
        li.appendChild(x);
      }
      ul.appendChild(li);
    });
  }

  function renderMembers() {
    var r = S.rooms.get(S.active);
    var ul = $('member-list');
    ul.textContent = '';
    var count = r ? r.count : 0;
    $('members-count').textContent = String(count);
    $('members-badge').textContent = String(count);
    $('members-toggle').setAttribute('aria-label', 'Members (' + count + ')');
    if (!r) return;
    r.members.forEach(function (nick) {
      var li = el('li', 'member' + (nick === r.nick ? ' me' : ''));
      var av = el('span', 'avatar small', initial(nick));
      av.setAttribute('aria-hidden', 'true');
      av.style.setProperty('--hue', String(nickHue(nick)));
      var n = el('span', 'member-nick', nick);
      n.dir = 'auto';
      li.appendChild(av);
      li.appendChild(n);
      if (nick === r.nick) li.appendChild(el('span', 'you', 'you'));
      ul.appendChild(li);
    });
  }

  function renderNick() {
    $('nick-display').textContent = S.nick;
    var av = $('nick-avatar');
    av.textContent = S.nick ? initial(S.nick) : '';
    av.style.setProperty('--hue', String(nickHue(S.nick)));
  }

  function toast(text, kind) {
    var box = $('toasts');
    var t = el('div', 'toast ' + (kind || ''), text);
    t.dir = 'auto';
    box.appendChild(t);
    while (box.children.length > 4) box.firstElementChild.remove();
    setTimeout(function () { t.remove(); }, 6000);
  }

  function banner(text) {
    var b = $('banner');
    b.textContent = text;
    b.hidden = false;
  }

  /* ---------- nickname ---------- */

  function nickProblem(nick) {
    if (!nick) return 'Please enter a nickname.';
    if (utf8Length(nick) > 32) return 'At most 32 bytes, please (emoji and CJK count 3\u20134 each).';
    if (CONTROL_RE.test(nick)) return 'No control characters, please.';
    return '';
  }

  function openNick(force, why) {
    var modal = $('nick-modal');
    $('nick-input').value = S.nick;
    $('nick-error').textContent = why || '';
    $('nick-cancel').hidden = !S.nick || !!force;
    $('nick-submit').textContent = S.nick ? 'Save' : 'Start chatting';
    modal.hidden = false;
    $('nick-input').focus();
  }

  function setNick(nick) {
    var changed = S.nick && S.nick !== nick;
    S.nick = nick;
    store(STORE_NICK, nick);
    renderNick();
    $('nick-modal').hidden = true;
    if (!S.ws && !S.retryTimer) connect();
    else if (S.ws && S.welcomed) {
      S.rooms.forEach(function (r) {
        if (r.joined && changed) {
          var ref = nextRef('j');
          S.joinRefs.set(ref, r.name);
          wsSend({ type: 'join', room: r.name, nick: nick, ref: ref });
        }
        else if (!r.joined && !r.joining) sendJoin(r);
      });
    }
    $('input').focus();
  }

  /* ---------- panels (phone layout) ---------- */

  function closePanels() {
    var app = $('app');
    app.classList.remove('show-rooms');
    $('rooms-toggle').setAttribute('aria-expanded', 'false');
    if (window.matchMedia && window.matchMedia('(max-width: 900px)').matches) {
      app.classList.remove('show-members');
      $('members-toggle').setAttribute('aria-expanded', 'false');
    }
  }

  function togglePanel(cls, btn) {
    var app = $('app');
    var on = !app.classList.contains(cls);
    app.classList.toggle(cls, on);
    btn.setAttribute('aria-expanded', on ? 'true' : 'false');
  }

  /* ---------- wiring ---------- */

  function autoGrow() {
    var t = $('input');
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight, 160) + 'px';
  }

  function submitComposer() {
    var t = $('input');
    var text = t.value.replace(/\s+$/, '');
    if (!text.trim()) return;
    if (!S.nick) { openNick(true); return; }
    say(text);
    t.value = '';
    autoGrow();
  }

  function wire() {
    $('composer').addEventListener('submit', function (e) { e.preventDefault(); submitComposer(); });
    $('input').addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        submitComposer();
      }
    });
    $('input').addEventListener('input', autoGrow);
    $('nick-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var nick = $('nick-input').value.trim();
      var why = nickProblem(nick);
      if (why) { $('nick-error').textContent = why; return; }
      setNick(nick);
    });
    $('nick-cancel').addEventListener('click', function () { $('nick-modal').hidden = true; });
    $('nick-btn').addEventListener('click', function () { openNick(false); });
    $('room-form').addEventListener('submit', function (e) {
      e.preventDefault();
      var v = $('room-input').value.trim().replace(/^#/, '');
      if (!v) return;
      $('room-input').value = '';
      switchRoom(v);
    });
    $('scroller').addEventListener('scroll', function () {
      if (isAtBottom()) $('new-hint').hidden = true;
    });
    $('new-hint').addEventListener('click', scrollToBottom);
    $('rooms-toggle').addEventListener('click', function () { togglePanel('show-rooms', $('rooms-toggle')); });
    $('members-toggle').addEventListener('click', function () { togglePanel('show-members', $('members-toggle')); });
    window.addEventListener('hashchange', function () {
      var name = parseHash();
      if (name && name !== S.active) switchRoom(name);
    });
    window.addEventListener('online', function () { if (S.retryTimer) connect(); });
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible' && S.retryTimer) connect();
    });
    window.addEventListener('pagehide', function () {
      if (S.ws) { S.deliberate = true; S.ws.close(1000, 'page closed'); }
    });
    window.addEventListener('pageshow', function (e) {
      if (e.persisted && !S.ws && S.nick) { S.deliberate = false; S.attempt = 0; connect(); }
    });
    document.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') {
        closePanels();
        if (S.nick) $('nick-modal').hidden = true;
      }
    });
  }

  function restoreRooms() {
    var saved = [];
    try { saved = JSON.parse(load(STORE_ROOMS) || '[]'); } catch (e) { saved = []; }
    if (!Array.isArray(saved)) saved = [];
    saved = saved.filter(function (n) { return typeof n === 'string' && ROOM_RE.test(n); });
    var fromHash = parseHash();
    var stored = load(STORE_ACTIVE);
    var active = fromHash || (stored && ROOM_RE.test(stored) ? stored : '') || saved[0] || DEFAULT_ROOM;
    S.active = active;
    if (!saved.length) saved = [active];
    saved.slice(0, 20).forEach(addRoom);
    switchRoom(active);
  }

  function start() {
    wire();
    if (window.matchMedia && window.matchMedia('(min-width: 901px)').matches) {
      $('app').classList.add('show-members');
    } else {
      $('members-toggle').setAttribute('aria-expanded', 'false');
    }
    restoreRooms();
    renderState();
    if (!('WebSocket' in window)) {
      banner('Your browser does not support WebSocket, which Parley needs to chat. ' +
        'Please use a current version of Firefox, Chrome, Safari or Edge.');
      $('input').disabled = true;
      $('send-btn').disabled = true;
      return;
    }
    if (!location.host) {
      banner('Open this page from a Parley gateway (http://host:port/), not from a file.');
      return;
    }
    var nick = load(STORE_NICK) || '';
    if (nick && !nickProblem(nick)) {
      S.nick = nick;
      renderNick();
      connect();
    } else {
      openNick(true);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
