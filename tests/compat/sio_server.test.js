// Drives Hearth's Socket.IO server (the sio_echo test program) with the
// reference socket.io-client 4.8 and with raw Engine.IO requests.
//
//   SIO_ECHO_BIN=build/sio_echo node --test tests/compat/sio_server.test.js
//
// Every test starts its own server on a free loopback port and stops it
// with SIGTERM at the end, then checks that it exited cleanly (status 0 and
// no AddressSanitizer or LeakSanitizer report on stderr).

'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const { io } = require('socket.io-client');
const WebSocket = require('ws');

const ECHO_BIN = process.env.SIO_ECHO_BIN;

// Starts sio_echo and resolves once it prints its port.
function startEcho(extraArgs = []) {
    assert.ok(ECHO_BIN, 'set SIO_ECHO_BIN to the sio_echo executable');
    const child = spawn(ECHO_BIN, ['0', ...extraArgs], {
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = { child, lines: [], stderr: '', waiters: [] };

    let partial = '';
    child.stdout.on('data', (chunk) => {
        partial += chunk.toString();
        const parts = partial.split('\n');
        partial = parts.pop();
        for (const line of parts) {
            server.lines.push(line);
            server.waiters = server.waiters.filter((w) => !w(line));
        }
    });
    child.stderr.on('data', (chunk) => {
        server.stderr += chunk.toString();
    });
    server.waitLine = (pattern, timeoutMs = 5000) =>
        new Promise((resolve, reject) => {
            const found = server.lines.find((l) => pattern.test(l));
            if (found !== undefined) {
                resolve(found);
                return;
            }
            const timer = setTimeout(() => {
                reject(new Error(`no stdout line matching ${pattern}; ` +
                    `got ${JSON.stringify(server.lines)}`));
            }, timeoutMs);
            server.waiters.push((line) => {
                if (!pattern.test(line))
                    return false;
                clearTimeout(timer);
                resolve(line);
                return true;
            });
        });
    return server.waitLine(/^PORT \d+$/).then((line) => {
        server.port = Number(line.split(' ')[1]);
        server.url = `http://127.0.0.1:${server.port}`;
        return server;
    });
}

// Sends SIGTERM and checks for a clean exit.
async function stopEcho(server) {
    const exited = new Promise((resolve) => {
        server.child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    server.child.kill('SIGTERM');
    const { code, signal } = await exited;
    assert.strictEqual(signal, null, `sio_echo died of ${signal}`);
    assert.strictEqual(code, 0, `sio_echo exited with ${code}: ` +
        server.stderr);
    assert.doesNotMatch(server.stderr, /AddressSanitizer|LeakSanitizer/);
    assert.doesNotMatch(server.stderr, /runtime error/);
}

function connect(url, options) {
    const socket = io(url, {
        forceNew: true,
        reconnection: false,
        ...options,
    });
    return new Promise((resolve, reject) => {
        socket.once('connect', () => resolve(socket));
        socket.once('connect_error', (err) => {
            socket.close();
            reject(err);
        });
    });
}

function echo(socket, event, arg) {
    return new Promise((resolve) => {
        socket.once(event, resolve);
        socket.emit(event, arg);
    });
}

function waitUpgrade(socket) {
    const engine = socket.io.engine;
    if (engine.transport.name === 'websocket')
        return Promise.resolve();
    return new Promise((resolve) => engine.once('upgrade', resolve));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The full round of checks for one transport setting.
async function exerciseTransport(t, options, expectedTransport) {
    const server = await startEcho();
    t.after(() => server.child.kill('SIGKILL'));

    const socket = await connect(server.url, options);
    const id = socket.id;
    await server.waitLine(new RegExp(`^CONNECT ${id}$`));

    const small = { uuid: 'a1b2', status: 200, data: { list: [1, 'two'] } };
    assert.deepStrictEqual(await echo(socket, 'echo', small), small);

    if (expectedTransport === 'websocket')
        await waitUpgrade(socket);
    assert.strictEqual(socket.io.engine.transport.name, expectedTransport);

    // About 1 MB, with text that JSON must escape.
    const big = { text: 'line "quoted" \\ é\n'.repeat(55000), n: 1 };
    assert.deepStrictEqual(await echo(socket, 'big', big), big);

    // Several events in one turn arrive in order.
    const received = [];
    const allThree = new Promise((resolve) => {
        socket.on('seq', (arg) => {
            received.push(arg.i);
            if (received.length === 3)
                resolve();
        });
    });
    for (let i = 0; i < 3; i++)
        socket.emit('seq', { i });
    await allThree;
    assert.deepStrictEqual(received, [0, 1, 2]);

    const reason = await new Promise((resolve) => {
        socket.once('disconnect', resolve);
        socket.emit('disconnect-me', {});
    });
    assert.strictEqual(reason, 'io server disconnect');
    await server.waitLine(new RegExp(
        `^DISCONNECT ${id} server namespace disconnect$`));
    socket.close();
    await stopEcho(server);
}

test('websocket only', async (t) => {
    await exerciseTransport(t, { transports: ['websocket'] }, 'websocket');
});

test('polling only', async (t) => {
    await exerciseTransport(t, { transports: ['polling'] }, 'polling');
});

test('polling upgraded to websocket', async (t) => {
    await exerciseTransport(t, {}, 'websocket');
});

test('unknown sid and bad requests', async (t) => {
    const server = await startEcho();
    t.after(() => server.child.kill('SIGKILL'));
    const base = `${server.url}/socket.io/`;

    let res = await fetch(`${base}?EIO=4&transport=polling&sid=nosuchsid`);
    assert.strictEqual(res.status, 400);
    assert.deepStrictEqual(await res.json(),
        { code: 1, message: 'Session ID unknown' });

    res = await fetch(`${base}?EIO=4&transport=polling&sid=nosuchsid`,
        { method: 'POST', body: '40' });
    assert.strictEqual(res.status, 400);
    assert.deepStrictEqual(await res.json(),
        { code: 1, message: 'Session ID unknown' });

    res = await fetch(`${base}?EIO=4&transport=carrier-pigeon`);
    assert.strictEqual(res.status, 400);
    assert.deepStrictEqual(await res.json(),
        { code: 0, message: 'Transport unknown' });

    res = await fetch(`${base}?EIO=3&transport=polling`);
    assert.strictEqual(res.status, 400);
    assert.deepStrictEqual(await res.json(),
        { code: 5, message: 'Unsupported protocol version' });

    res = await fetch(`${base}?EIO=4&transport=polling`,
        { method: 'POST', body: '40' });
    assert.strictEqual(res.status, 400);
    assert.deepStrictEqual(await res.json(),
        { code: 2, message: 'Bad handshake method' });

    res = await fetch(`${server.url}/elsewhere`);
    assert.strictEqual(res.status, 404);
    await res.arrayBuffer();
    await stopEcho(server);
});

test('raw polling payloads', async (t) => {
    const server = await startEcho();
    t.after(() => server.child.kill('SIGKILL'));
    const base = `${server.url}/socket.io/?EIO=4&transport=polling`;

    let res = await fetch(base);
    assert.strictEqual(res.status, 200);
    assert.strictEqual(res.headers.get('access-control-allow-origin'), '*');
    const open = await res.text();
    assert.match(open, /^0\{/);
    const handshake = JSON.parse(open.slice(1));
    assert.deepStrictEqual(handshake.upgrades, ['websocket']);
    assert.strictEqual(handshake.pingInterval, 20000);
    assert.strictEqual(handshake.pingTimeout, 10000);
    assert.strictEqual(handshake.maxPayload, 10000000);
    const url = `${base}&sid=${handshake.sid}`;

    res = await fetch(url, { method: 'POST', body: '40' });
    assert.strictEqual(await res.text(), 'ok');
    res = await fetch(url);
    const connected = await res.text();
    assert.match(connected, /^40\{"sid":"[A-Za-z0-9_-]{20}"\}$/);

    // Two packets in one POST come back as two packets in one GET.
    res = await fetch(url, {
        method: 'POST',
        body: '42["a",{"x":1}]\x1e42["b"]',
    });
    assert.strictEqual(await res.text(), 'ok');
    res = await fetch(url);
    assert.strictEqual(await res.text(), '42["a",{"x":1}]\x1e42["b"]');

    // A second GET while one is held is an error that ends the session.
    const held = fetch(url).then((r) => r.text());
    await sleep(100);
    res = await fetch(url);
    assert.strictEqual(res.status, 400);
    assert.deepStrictEqual(await res.json(),
        { code: 3, message: 'Bad request' });
    assert.strictEqual(await held, '1');
    await server.waitLine(/^DISCONNECT \S+ transport error$/);

    res = await fetch(url);
    assert.strictEqual(res.status, 400);
    assert.strictEqual((await res.json()).code, 1);
    await stopEcho(server);
});

test('invalid namespace rejected', async (t) => {
    const server = await startEcho();
    t.after(() => server.child.kill('SIGKILL'));

    await assert.rejects(
        connect(`${server.url}/admin`, { transports: ['websocket'] }),
        { message: 'Invalid namespace' });
    await stopEcho(server);
});

test('heartbeat keeps sockets open', async (t) => {
    const server = await startEcho(['150', '300']);
    t.after(() => server.child.kill('SIGKILL'));

    const polling = await connect(server.url, { transports: ['polling'] });
    const ws = await connect(server.url, { transports: ['websocket'] });
    await sleep(1200);
    assert.ok(polling.connected);
    assert.ok(ws.connected);
    const arg = { still: 'here' };
    assert.deepStrictEqual(await echo(polling, 'ping-check', arg), arg);
    assert.deepStrictEqual(await echo(ws, 'ping-check', arg), arg);
    assert.ok(!server.lines.some((l) => l.startsWith('DISCONNECT')));
    polling.close();
    ws.close();
    await stopEcho(server);
});

test('silent client hits ping timeout', async (t) => {
    const server = await startEcho(['100', '200']);
    t.after(() => server.child.kill('SIGKILL'));

    const ws = new WebSocket(
        `ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`);
    const messages = [];
    ws.on('message', (data) => messages.push(data.toString()));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send('40');
    const closed = new Promise((resolve) => ws.once('close', resolve));
    // The client sends no pong for the server's pings.
    await server.waitLine(/^DISCONNECT \S+ ping timeout$/, 3000);
    await closed;
    assert.match(messages[0], /^0\{"sid":"[^"]+","upgrades":\[\]/);
    assert.match(messages[1], /^40\{"sid":/);
    assert.ok(messages.includes('2'), 'the server sent a ping');
    await stopEcho(server);
});

test('client disconnect and shutdown reasons', async (t) => {
    const server = await startEcho();
    t.after(() => server.child.kill('SIGKILL'));

    const leaving = await connect(server.url, { transports: ['websocket'] });
    const id = leaving.id;
    leaving.disconnect();
    await server.waitLine(
        new RegExp(`^DISCONNECT ${id} client namespace disconnect$`));

    const staying = await connect(server.url, { transports: ['polling'] });
    const stayingId = staying.id;
    // Let the client's next GET arrive, so that shutdown completes it
    // with a close packet.
    await sleep(200);
    const reason = new Promise((resolve) => {
        staying.once('disconnect', resolve);
    });
    await stopEcho(server);
    assert.ok(server.lines.includes(
        `DISCONNECT ${stayingId} server shutting down`));
    assert.strictEqual(await reason, 'transport close');
    staying.close();
});
