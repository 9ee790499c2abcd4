// bun-server.js - the plain-mode chat of bench/run.sh on Bun's built-in
// WebSocket server.  Every text message received on /ws/<room> is
// published to the room's topic, the sender included.
// Usage: bun bun-server.js PORT (PEER_DEFLATE=1: permessage-deflate).
const port = Number(process.argv[2] || 8080);
const deflate = process.env.PEER_DEFLATE === '1';

const server = Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch(req, srv) {
    const path = new URL(req.url).pathname;
    const room = path.startsWith('/ws/') ? path.slice(4) : 'lobby';
    if (srv.upgrade(req, { data: { room } })) return undefined;
    return new Response('not found', { status: 404 });
  },
  websocket: {
    maxPayloadLength: 64 * 1024,
    backpressureLimit: 1024 * 1024,
    perMessageDeflate: deflate,
    open(ws) { ws.subscribe(ws.data.room); },
    message(ws, msg) {
      if (typeof msg === 'string') server.publish(ws.data.room, msg);
    },
  },
});
