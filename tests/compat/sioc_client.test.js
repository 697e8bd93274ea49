// Compatibility tests for Hearth's Socket.IO client (src/net/sioc.c) against
// the reference socket.io 4 server, configured as MCSManager's daemon is.
//
// Run from tests/compat:
//   SIOC_PROBE_BIN=../../build/sioc_probe node --test sioc_client.test.js
// Build with -DHEARTH_SANITIZE=ON so that each probe exit is also a leak
// check. Every server here listens on 127.0.0.1 on an ephemeral port.
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const http = require('node:http');
const net = require('node:net');
const readline = require('node:readline');
const test = require('node:test');
const { Server } = require('socket.io');
const { WebSocketServer } = require('ws');

const PROBE = process.env.SIOC_PROBE_BIN;
if (!PROBE) {
  throw new Error('SIOC_PROBE_BIN is not set: point it at the sioc_probe ' +
                  'executable of a Hearth build');
}

// MCSManager daemon's Socket.IO server options.
const DAEMON_OPTIONS = {
  pingInterval: 20000,
  pingTimeout: 10000,
  cookie: false,
  serveClient: false,
  maxHttpBufferSize: 1e7,
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// what is a description, or a function returning one when the wait fails.
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => {
      const text = typeof what === 'function' ? what() : what;
      reject(new Error(`timed out after ${ms} ms waiting for ${text}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function startServer(options = {}, port = 0) {
  const httpServer = http.createServer();
  const io = new Server(httpServer, { ...DAEMON_OPTIONS, ...options });
  // The probe emits "hello" right after it connects, possibly before a test
  // gets to the socket, so the listener is attached here.
  io.on('connection', (socket) => {
    socket.hello = new Promise((resolve) => socket.once('hello', resolve));
  });
  await new Promise((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, '127.0.0.1', resolve);
  });
  return {
    io,
    port: httpServer.address().port,
    nextSocket: () => new Promise((resolve) => io.once('connection', resolve)),
    close: () => new Promise((resolve) => io.close(() => resolve())),
  };
}

// A port that refuses connections: bound once, then released.
async function freePort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function nextEvent(socket, name) {
  return new Promise((resolve) => socket.once(name, (arg) => resolve(arg)));
}

class Probe {
  constructor(args) {
    this.lines = [];
    this.pos = 0;
    this.stderr = '';
    this.waiter = null;
    this.proc = spawn(PROBE, args.map(String), {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.exit = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => resolve({ code, signal }));
    });
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => {
      this.lines.push(l);
      if (this.waiter) this.waiter();
    });
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
  }

  // Waits for the next output line matching re (after the last match) and
  // returns it with the time it took.
  async next(re, ms = 5000) {
    const start = Date.now();
    const found = () => {
      for (let i = this.pos; i < this.lines.length; i++) {
        if (re.test(this.lines[i])) {
          this.pos = i + 1;
          return this.lines[i];
        }
      }
      return null;
    };
    const wait = new Promise((resolve) => {
      const check = () => {
        const line = found();
        if (line !== null) {
          this.waiter = null;
          resolve(line);
        }
      };
      this.waiter = check;
      check();
    });
    const line = await withTimeout(wait, ms, () => `${re} from sioc_probe ` +
                                   `(output: ${this.lines.join(' | ')})`);
    return { line, elapsed: Date.now() - start };
  }

  count(re) {
    return this.lines.filter((l) => re.test(l)).length;
  }

  send(command) {
    this.proc.stdin.write(command + '\n');
  }

  // Stops the probe with SIGTERM and checks that it exited cleanly.
  async stop() {
    this.proc.kill('SIGTERM');
    const { code, signal } = await withTimeout(this.exit, 10000,
                                               'sioc_probe to exit');
    assert.equal(signal, null, `probe killed by ${signal}`);
    assert.equal(code, 0, `probe exit code ${code}; stderr:\n${this.stderr}`);
    assert.doesNotMatch(this.stderr, /Sanitizer|runtime error/,
                        `sanitizer report:\n${this.stderr}`);
    assert.equal(this.lines[this.lines.length - 1], 'exit');
  }

  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGKILL');
    }
  }
}

// Runs body with a probe connected to port, cleaning up on failure.
async function withProbe(args, body) {
  const probe = new Probe(args);
  try {
    await body(probe);
    await probe.stop();
  } finally {
    probe.kill();
  }
}

test('connects and exchanges events both ways', { timeout: 30000 },
     async () => {
  const server = await startServer();
  try {
    const socketReady = server.nextSocket();
    await withProbe([server.port], async (probe) => {
      const socket = await withTimeout(socketReady, 5000, 'connection');
      assert.equal(socket.handshake.query.EIO, '4');
      assert.equal(socket.conn.transport.name, 'websocket');
      assert.deepEqual(await withTimeout(socket.hello, 5000, 'hello'),
                       { connects: 1 });
      await probe.next(/^connect$/);

      socket.emit('greet', { a: 1, text: 'h\u00e9 "quoted"\n' });
      const { line } = await probe.next(/^event greet /);
      assert.deepEqual(JSON.parse(line.slice('event greet '.length)),
                       { a: 1, text: 'h\u00e9 "quoted"\n' });

      const arg = { list: [1, 2.5, null, true, { deep: ['x'] }], s: '\u4e2d' };
      const echoed = nextEvent(socket, 'echo');
      socket.emit('echo', arg);
      assert.deepEqual(await withTimeout(echoed, 5000, 'echo'), arg);

      socket.emit('noarg');
      await probe.next(/^event noarg -$/);

      const fromStdin = nextEvent(socket, 'typed');
      probe.send('emit typed {"k":[1,2]}');
      assert.deepEqual(await withTimeout(fromStdin, 5000, 'typed'),
                       { k: [1, 2] });
      await probe.next(/^emitted typed 0$/);

      const closed = nextEvent(socket, 'disconnect');
      await probe.stop();
      assert.equal(await withTimeout(closed, 5000, 'server disconnect'),
                   'client namespace disconnect');
    });
  } finally {
    await server.close();
  }
});

test('carries a 1 MB argument both ways', { timeout: 60000 }, async () => {
  const server = await startServer();
  try {
    const socketReady = server.nextSocket();
    await withProbe([server.port], async (probe) => {
      const socket = await withTimeout(socketReady, 5000, 'connection');
      await probe.next(/^connect$/);
      const arg = { data: 'x'.repeat(1 << 20), tail: [1, 2, 3] };
      const echoed = nextEvent(socket, 'echo');
      socket.emit('echo', arg);
      const { line } = await probe.next(/^event echo /, 20000);
      assert.equal(line, `event echo bytes=${JSON.stringify(arg).length}`);
      assert.deepEqual(await withTimeout(echoed, 20000, 'echo'), arg);
    });
  } finally {
    await server.close();
  }
});

test('survives ping cycles', { timeout: 30000 }, async () => {
  const server = await startServer({ pingInterval: 300, pingTimeout: 200 });
  try {
    const socketReady = server.nextSocket();
    await withProbe([server.port], async (probe) => {
      const socket = await withTimeout(socketReady, 5000, 'connection');
      let pongs = 0;
      socket.conn.on('packet', (packet) => {
        if (packet.type === 'pong') pongs++;
      });
      await probe.next(/^connect$/);
      await sleep(2500);
      assert.ok(pongs >= 5, `only ${pongs} pongs in 2.5 s`);
      assert.equal(probe.count(/^disconnect/), 0);
      assert.ok(socket.connected);
      const echoed = nextEvent(socket, 'echo');
      socket.emit('echo', 'still here');
      assert.equal(await withTimeout(echoed, 5000, 'echo'), 'still here');
    });
  } finally {
    await server.close();
  }
});

test('reconnects after the server restarts', { timeout: 30000 }, async () => {
  let server = await startServer();
  const { port } = server;
  try {
    await withProbe([port], async (probe) => {
      await probe.next(/^connect$/);
      await server.close();
      await probe.next(/^disconnect /);
      // Let a few attempts fail while the port is closed.
      await probe.next(/^disconnect connection refused$/, 5000);
      server = await startServer({}, port);
      const socketReady = server.nextSocket();
      const { elapsed } = await probe.next(/^connect$/, 8000);
      assert.ok(elapsed <= 6000, `reconnect took ${elapsed} ms`);
      const socket = await withTimeout(socketReady, 5000, 'connection');
      assert.deepEqual(await withTimeout(socket.hello, 5000, 'hello'),
                       { connects: 2 });
      socket.emit('echo', 'again');
      await probe.next(/^event echo "again"$/);
    });
  } finally {
    await server.close();
  }
});

test('reconnect command skips the backoff wait', { timeout: 30000 },
     async () => {
  const port = await freePort();
  let server = null;
  try {
    await withProbe([port], async (probe) => {
      // Delays so far: 500, 1000, 2000 ms; the next one is 4000 ms.
      for (let i = 0; i < 4; i++) {
        await probe.next(/^disconnect connection refused$/, 5000);
      }
      server = await startServer({}, port);
      const socketReady = server.nextSocket();
      probe.send('reconnect');
      const { elapsed } = await probe.next(/^connect$/, 5000);
      assert.ok(elapsed < 1500, `connect took ${elapsed} ms`);
      const socket = await withTimeout(socketReady, 5000, 'connection');
      assert.deepEqual(await withTimeout(socket.hello, 5000, 'hello'),
                       { connects: 1 });
    });
  } finally {
    if (server) await server.close();
  }
});

test('backs off between refused attempts', { timeout: 30000 }, async () => {
  const port = await freePort();
  await withProbe([port], async (probe) => {
    await probe.next(/^disconnect connection refused$/);
    const second = await probe.next(/^disconnect connection refused$/);
    const third = await probe.next(/^disconnect connection refused$/);
    assert.ok(second.elapsed >= 400, `first wait ${second.elapsed} ms`);
    assert.ok(second.elapsed < 1500, `first wait ${second.elapsed} ms`);
    assert.ok(third.elapsed >= 900, `second wait ${third.elapsed} ms`);
    assert.ok(third.elapsed < 2500, `second wait ${third.elapsed} ms`);
  });
});

test('reports a rejected namespace connect', { timeout: 30000 },
     async () => {
  const server = await startServer();
  server.io.use((socket, next) => next(new Error('not authorized')));
  try {
    await withProbe([server.port], async (probe) => {
      await probe.next(
        /^disconnect server rejected the connection: not authorized$/);
      assert.equal(probe.count(/^connect$/), 0);
    });
  } finally {
    await server.close();
  }
});

test('reconnects after a server-side disconnect', { timeout: 30000 },
     async () => {
  const server = await startServer();
  try {
    let socketReady = server.nextSocket();
    await withProbe([server.port], async (probe) => {
      const socket = await withTimeout(socketReady, 5000, 'connection');
      await probe.next(/^connect$/);
      socketReady = server.nextSocket();
      socket.disconnect(true);
      await probe.next(/^disconnect server disconnected the namespace$/);
      await probe.next(/^connect$/, 5000);
      const again = await withTimeout(socketReady, 5000, 'connection');
      assert.deepEqual(await withTimeout(again.hello, 5000, 'hello'),
                       { connects: 2 });
    });
  } finally {
    await server.close();
  }
});

test('detects a server that stops pinging', { timeout: 30000 },
     async () => {
  // A bare Engine.IO server that completes the handshake but never pings.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  const urls = [];
  wss.on('connection', (ws, req) => {
    urls.push(req.url);
    ws.send('0{"sid":"raw","upgrades":[],"pingInterval":200,' +
            '"pingTimeout":100,"maxPayload":1000000}');
    ws.on('message', (msg) => {
      if (msg.toString() === '40') ws.send('40{"sid":"rawsocket"}');
    });
  });
  try {
    await withProbe([wss.address().port], async (probe) => {
      await probe.next(/^connect$/);
      const { elapsed } = await probe.next(/^disconnect ping timeout$/, 3000);
      assert.ok(elapsed >= 200, `ping timeout after ${elapsed} ms`);
      assert.equal(urls[0], '/socket.io/?EIO=4&transport=websocket');
    });
  } finally {
    for (const client of wss.clients) client.terminate();
    await new Promise((resolve) => wss.close(resolve));
  }
});

test('drops a message over 10 MB and reconnects', { timeout: 60000 },
     async () => {
  const server = await startServer();
  try {
    let socketReady = server.nextSocket();
    await withProbe([server.port], async (probe) => {
      const socket = await withTimeout(socketReady, 5000, 'connection');
      await probe.next(/^connect$/);
      socketReady = server.nextSocket();
      socket.emit('echo', 'y'.repeat(11 * 1024 * 1024));
      await probe.next(
        /^disconnect message from server larger than 10485760 bytes$/, 20000);
      await probe.next(/^connect$/, 5000);
      await withTimeout(socketReady, 5000, 'connection');
      assert.equal(probe.count(/^event echo/), 0);
    });
  } finally {
    await server.close();
  }
});

test('connects under a path prefix and by host name', { timeout: 30000 },
     async () => {
  const server = await startServer({ path: '/daemon/socket.io' });
  try {
    const socketReady = server.nextSocket();
    await withProbe([server.port, 'localhost', '/daemon/'], async (probe) => {
      await probe.next(/^connect$/);
      const socket = await withTimeout(socketReady, 5000, 'connection');
      assert.equal(socket.handshake.headers.host,
                   `localhost:${server.port}`);
    });
  } finally {
    await server.close();
  }
});

test('reports a failed WebSocket upgrade', { timeout: 30000 }, async () => {
  const plain = http.createServer((req, res) => res.end());
  plain.on('upgrade', (req, socket) => {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
  });
  await new Promise((resolve) => plain.listen(0, '127.0.0.1', resolve));
  try {
    await withProbe([plain.address().port], async (probe) => {
      await probe.next(new RegExp('^disconnect WebSocket handshake ' +
                                  'failed: server answered HTTP 404 ' +
                                  'Not Found$'));
      await probe.next(/^disconnect WebSocket handshake failed/, 3000);
    });
  } finally {
    plain.closeAllConnections();
    await new Promise((resolve) => plain.close(resolve));
  }
});

test('exits cleanly while the upgrade is pending', { timeout: 30000 },
     async () => {
  // Accepts the TCP connection and reads the request, but never responds.
  const held = [];
  let requested;
  const gotRequest = new Promise((resolve) => { requested = resolve; });
  const silent = net.createServer((socket) => {
    held.push(socket);
    socket.once('data', (data) => requested(data.toString()));
  });
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    await withProbe([silent.address().port], async (probe) => {
      const request = await withTimeout(gotRequest, 5000, 'upgrade request');
      assert.ok(request.startsWith('GET /socket.io/?EIO=4&transport=' +
                                   'websocket HTTP/1.1\r\n'), request);
      assert.match(request, /\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n/);
      assert.equal(probe.count(/^(connect|disconnect)/), 0);
    });
  } finally {
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});
