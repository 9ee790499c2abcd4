// uws-server.mjs - the plain-mode chat of bench/run.sh on uWebSockets.js
// (@trufflesuite/uws-js-unofficial).  Every text message received on
// /ws/<room> is published to the room's topic, the sender included.
// Usage: node uws-server.mjs PORT (PEER_DEFLATE=1: permessage-deflate).
import uWS from '@trufflesuite/uws-js-unofficial';

const port = Number(process.argv[2] || 8080);
const deflate = process.env.PEER_DEFLATE === '1';
const app = uWS.App();

app.ws('/*', {
  compression: deflate ? uWS.SHARED_COMPRESSOR : uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 1024 * 1024,
  upgrade: (res, req, context) => {
    const url = req.getUrl();
    const room = url.startsWith('/ws/') ? url.slice(4) : 'lobby';
    res.upgrade({ room }, req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => ws.subscribe(ws.getUserData().room),
  message: (ws, msg, isBinary) => {
    if (!isBinary) app.publish(ws.getUserData().room, msg, false, deflate);
  },
});
app.any('/*', (res) => res.writeStatus('404 Not Found').end());
app.listen('127.0.0.1', port, (ok) => { if (!ok) process.exit(1); });
