// ws-server.mjs - the plain-mode chat of bench/run.sh on Node's `ws`.
// Every text message received on /ws/<room> goes to every client of that
// room, the sender included.  Usage: node ws-server.mjs PORT
// (PEER_DEFLATE=1: permessage-deflate).  Comparison peer only.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] || 8080);
const deflate = process.env.PEER_DEFLATE === '1';
const rooms = new Map();
const server = http.createServer((req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({
  server,
  maxPayload: 64 * 1024,
  perMessageDeflate: deflate ? { threshold: 256 } : false,
});

wss.on('connection', (ws, req) => {
  const room = req.url.startsWith('/ws/') ? req.url.slice(4) : 'lobby';
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const c of members) if (c.readyState === 1) c.send(data, { binary: false });
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0 && rooms.get(room) === members) rooms.delete(room);
  });
  ws.on('error', () => {});
});
server.listen(port, '127.0.0.1');
