// Drives the real daemon (`hearth daemon`) with the reference
// socket.io-client 4.8, the way MCSManager's panel talks to its daemons:
// the packet {uuid, data} on every event, the reply {uuid, status, event,
// data} on the same event, `auth` with the key of Config/global.json.
//
//   HEARTH_BIN=build/hearth node --test tests/compat/daemon.test.js
//
// Every test starts its own daemon on a free loopback port with its own
// data folder, stops it with SIGTERM, checks that it exited cleanly and
// that no process it started is left.

'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { io } = require('socket.io-client');

const HEARTH_BIN = process.env.HEARTH_BIN;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The connection options MCSManager's panel stores for every daemon,
// without reconnection so that a test observes each disconnect.
const PANEL_OPTIONS = {
    multiplex: false,
    reconnectionDelayMax: 5000,
    timeout: 10000,
    reconnection: false,
    rejectUnauthorized: false,
};

const ECHO_COMMAND = 'sh -c "while read l; do echo got:$l; done"';

function tempDir(t) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-daemon-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
}

// Starts the daemon on an ephemeral port; resolves once it logs "ready".
function startDaemon(t, dataDir, env = {}) {
    assert.ok(HEARTH_BIN, 'set HEARTH_BIN to the hearth executable');
    const child = spawn(HEARTH_BIN,
        ['daemon', '--data', dataDir, '--listen', '127.0.0.1:0'],
        { stdio: ['ignore', 'ignore', 'pipe'],
            env: { ...process.env, ...env } });
    const daemon = { child, stderr: '', dataDir, exited: null };

    daemon.exited = new Promise((resolve) => {
        child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    t.after(() => child.kill('SIGKILL'));
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(
            `daemon not ready within 10 s: ${daemon.stderr}`)), 10000);
        child.stderr.on('data', (chunk) => {
            daemon.stderr += chunk.toString();
            const m = /daemon ready on http:\/\/127\.0\.0\.1:(\d+)/
                .exec(daemon.stderr);
            if (m && daemon.port === undefined) {
                clearTimeout(timer);
                daemon.port = Number(m[1]);
                daemon.url = `http://127.0.0.1:${daemon.port}`;
                resolve(daemon);
            }
        });
        child.on('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`daemon exited with ${code}: ${daemon.stderr}`));
        });
    });
}

// SIGTERM, then a clean exit without sanitizer reports.
async function stopDaemon(daemon, timeoutMs = 10000) {
    daemon.child.kill('SIGTERM');
    const result = await Promise.race([
        daemon.exited,
        sleep(timeoutMs).then(() => ({ timeout: true })),
    ]);
    assert.ok(!result.timeout, `daemon still running ${timeoutMs} ms ` +
        `after SIGTERM: ${daemon.stderr}`);
    assert.strictEqual(result.signal, null, `daemon died of ${result.signal}`);
    assert.strictEqual(result.code, 0,
        `daemon exited with ${result.code}: ${daemon.stderr}`);
    assert.doesNotMatch(daemon.stderr, /AddressSanitizer|LeakSanitizer/);
    assert.doesNotMatch(daemon.stderr, /runtime error/);
}

function readKey(dataDir) {
    const file = path.join(dataDir, 'Config', 'global.json');
    return JSON.parse(fs.readFileSync(file, 'utf8')).key;
}

// A process counts as gone once it is reaped or a zombie.
function processGone(pid) {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
    } catch (err) {
        return true;
    }
}

function connect(url, options = {}) {
    const socket = io(url, { forceNew: true, ...PANEL_OPTIONS, ...options });
    return new Promise((resolve, reject) => {
        socket.once('connect', () => resolve(socket));
        socket.once('connect_error', (err) => {
            socket.close();
            reject(err);
        });
    });
}

// The panel's request id: a uuid v4 followed by the time in ms.
function packetUuid() {
    return crypto.randomUUID() + Date.now();
}

// Collects the reply packets of one request (matched by uuid).
function collect(socket, event, uuid, count, timeoutMs) {
    return new Promise((resolve, reject) => {
        const packets = [];
        const timer = setTimeout(() => {
            socket.off(event, listener);
            reject(new Error(`${event}: ${packets.length} of ${count} ` +
                `answers within ${timeoutMs} ms`));
        }, timeoutMs);
        function listener(packet) {
            if (!packet || packet.uuid !== uuid)
                return;
            packets.push(packet);
            if (packets.length === count) {
                clearTimeout(timer);
                socket.off(event, listener);
                resolve(packets);
            }
        }
        socket.on(event, listener);
    });
}

// Sends one request and resolves with its reply packet.
async function request(socket, event, data, timeoutMs = 6000) {
    const uuid = packetUuid();
    const answer = collect(socket, event, uuid, 1, timeoutMs);
    socket.emit(event, { uuid, data });
    const [packet] = await answer;
    assert.deepStrictEqual(Object.keys(packet).sort(),
        ['data', 'event', 'status', 'uuid']);
    assert.strictEqual(packet.event, event);
    return packet;
}

// request() that expects status 200 and returns data.
async function call(socket, event, data) {
    const packet = await request(socket, event, data);
    assert.strictEqual(packet.status, 200,
        `${event} failed: ${JSON.stringify(packet.data)}`);
    return packet.data;
}

async function authedSocket(daemon) {
    const socket = await connect(daemon.url);
    assert.strictEqual(await call(socket, 'auth', readKey(daemon.dataDir)),
        true);
    return socket;
}

function nextPush(socket, event, predicate = () => true, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            socket.off(event, listener);
            reject(new Error(`no ${event} push within ${timeoutMs} ms`));
        }, timeoutMs);
        function listener(packet) {
            if (!predicate(packet))
                return;
            clearTimeout(timer);
            socket.off(event, listener);
            resolve(packet);
        }
        socket.on(event, listener);
    });
}

async function waitFor(what, check, timeoutMs = 5000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const value = await check();
        if (value)
            return value;
        if (Date.now() > end)
            assert.fail(`timed out waiting for ${what}`);
        await sleep(50);
    }
}

async function statusOf(socket, instanceUuid) {
    return (await call(socket, 'instance/detail', { instanceUuid })).status;
}

test('auth with the key, a wrong key and info', async (t) => {
    const daemon = await startDaemon(t, tempDir(t));
    const socket = await connect(daemon.url);
    t.after(() => socket.close());

    const key = readKey(daemon.dataDir);
    assert.match(key, /^[0-9a-f]{47}$/);

    const wrong = await request(socket, 'auth', 'not-the-key');
    assert.strictEqual(wrong.status, 200);
    assert.strictEqual(wrong.data, false);

    const right = await request(socket, 'auth', key);
    assert.strictEqual(right.status, 200);
    assert.strictEqual(right.data, true);

    const info = await call(socket, 'info/overview', undefined);
    assert.strictEqual(typeof info.version, 'string');
    assert.deepStrictEqual(Object.keys(info.process).sort(),
        ['cpu', 'cwd', 'memory']);
    assert.deepStrictEqual(info.instance, { running: 0, total: 0 });
    for (const field of ['type', 'hostname', 'platform', 'release', 'uptime',
        'cwd', 'loadavg', 'freemem', 'cpuUsage', 'memUsage', 'totalmem',
        'processCpu', 'processMem'])
        assert.ok(field in info.system, `system.${field} missing`);
    assert.strictEqual(info.system.loadavg.length, 3);
    assert.ok(Array.isArray(info.cpuMemChart));
    // The daemon stores the port it listens on, so a neighbouring panel
    // that reads Config/global.json finds it.
    assert.strictEqual(info.config.port, daemon.port);
    assert.strictEqual(info.config.portRangeStart, 10010);

    assert.strictEqual(
        await call(socket, 'info/setting', { language: 'zh_cn' }), true);
    const saved = JSON.parse(fs.readFileSync(
        path.join(daemon.dataDir, 'Config', 'global.json'), 'utf8'));
    assert.strictEqual(saved.language, 'zh_cn');
    assert.strictEqual(saved.key, key);

    socket.close();
    await stopDaemon(daemon);
});

test('unauthenticated events get the ignore packet', async (t) => {
    const daemon = await startDaemon(t, tempDir(t));
    const socket = await connect(daemon.url);
    t.after(() => socket.close());

    const uuid = packetUuid();
    const errorPacket = nextPush(socket, 'error');
    socket.emit('instance/overview', { uuid, data: {} });
    const packet = await errorPacket;
    assert.deepStrictEqual(packet,
        { uuid, status: 500, event: 'error', data: '[IGNORE_LOG]' });

    socket.close();
    await stopDaemon(daemon);
});

test('socket without auth is disconnected after 6 s', async (t) => {
    const daemon = await startDaemon(t, tempDir(t));
    const started = Date.now();
    const socket = await connect(daemon.url);
    t.after(() => socket.close());

    const reason = await new Promise((resolve) => {
        socket.once('disconnect', resolve);
    });
    const elapsed = Date.now() - started;
    assert.strictEqual(reason, 'io server disconnect');
    assert.ok(elapsed >= 5500, `disconnected after ${elapsed} ms`);
    assert.ok(elapsed < 9000, `disconnected after ${elapsed} ms`);

    // An authenticated socket stays.
    const panel = await authedSocket(daemon);
    t.after(() => panel.close());
    await sleep(6500);
    assert.ok(panel.connected);

    panel.close();
    await stopDaemon(daemon);
});

test('instance life cycle as the panel drives it', async (t) => {
    const dataDir = tempDir(t);
    const daemon = await startDaemon(t, dataDir);
    const socket = await authedSocket(daemon);
    t.after(() => socket.close());

    // instance/new
    const created = await call(socket, 'instance/new', {
        nickname: 'echo',
        startCommand: ECHO_COMMAND,
        stopCommand: '^C',
        cwd: '',
        ie: 'utf-8',
        oe: 'utf-8',
        type: 'universal',
        processType: 'general',
        terminalOption: { pty: false, haveColor: false },
    });
    const id = created.instanceUuid;
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.strictEqual(created.nickname, 'echo');
    assert.strictEqual(created.config.nickname, 'echo');
    assert.strictEqual(created.config.ie, 'utf8');
    assert.strictEqual(created.config.cwd,
        path.join(fs.realpathSync(dataDir), 'InstanceData', id));
    assert.strictEqual(created.config.basePort, 10015);
    assert.ok(fs.existsSync(
        path.join(dataDir, 'InstanceConfig', `${id}.json`)));

    // instance/update
    assert.deepStrictEqual(await call(socket, 'instance/update',
        { instanceUuid: id, config: { tag: ['alpha'] } }),
    { instanceUuid: id });

    // Subscribe to the instance's pushes, as a terminal does.
    assert.deepStrictEqual(await call(socket, 'instance/forward',
        { instanceUuid: id, forward: true }), { instanceUuid: id });

    // instance/open replies once the process is spawned.
    const opened = nextPush(socket, 'instance/opened');
    assert.deepStrictEqual(
        await call(socket, 'instance/open', { instanceUuids: [id] }),
        { instanceUuid: id, instances: [{ instanceUuid: id,
            nickname: 'echo' }] });
    assert.deepStrictEqual(await opened, { uuid: null, status: 200,
        event: 'instance/opened',
        data: { instanceUuid: id, instanceName: 'echo' } });
    assert.strictEqual(await statusOf(socket, id), 3);

    // Opening again fails for this instance only.
    const again = await request(socket, 'instance/open',
        { instanceUuids: [id] });
    assert.strictEqual(again.status, 500);
    assert.strictEqual(again.data.instanceUuid, id);
    assert.strictEqual(again.data.err,
        'The instance is running and cannot be started again');

    // instance/command, its output pushed and kept for outputlog.
    const echoed = nextPush(socket, 'instance/stdout',
        (p) => p.data.text.includes('got:hello'));
    assert.deepStrictEqual(await call(socket, 'instance/command',
        { instanceUuid: id, command: 'hello' }), { instanceUuid: id });
    const stdout = await echoed;
    assert.strictEqual(stdout.uuid, null);
    assert.strictEqual(stdout.data.instanceUuid, id);
    const log = await call(socket, 'instance/outputlog', { instanceUuid: id });
    assert.strictEqual(typeof log, 'string');
    assert.match(log, /got:hello/);
    const tail = await call(socket, 'instance/outputlog',
        { instanceUuid: id, size: 10 });
    assert.ok(tail.length <= 10, `tail of ${tail.length} bytes`);
    assert.ok(log.endsWith(tail), 'the tail is not the end of the log');

    // instance/detail
    const detail = await call(socket, 'instance/detail', { instanceUuid: id });
    for (const field of ['instanceUuid', 'started', 'autoRestarted',
        'status', 'config', 'info', 'space', 'processInfo'])
        assert.ok(field in detail, `detail.${field} missing`);
    assert.strictEqual(detail.started, 1);
    assert.strictEqual(detail.space, 0);
    const pid = detail.processInfo.pid;
    assert.ok(pid > 0);
    assert.ok(!processGone(pid));

    // instance/select, overview, section
    const page = await call(socket, 'instance/select', { page: 1,
        pageSize: 10, condition: { instanceName: '', status: '', tag: [] } });
    assert.strictEqual(page.page, 1);
    assert.strictEqual(page.pageSize, 10);
    assert.strictEqual(page.maxPage, 1);
    assert.deepStrictEqual(page.allTags, ['alpha']);
    assert.deepStrictEqual(page.data.map((d) => d.instanceUuid), [id]);
    const byName = await call(socket, 'instance/select', { page: 1,
        pageSize: 10, condition: { instanceName: 'ECH', status: '3',
            tag: ['alpha'] } });
    assert.strictEqual(byName.data.length, 1);
    const none = await call(socket, 'instance/select', { page: 1,
        pageSize: 10, condition: { instanceName: '', status: '0' } });
    assert.strictEqual(none.data.length, 0);
    assert.strictEqual(none.maxPage, 0);
    const overview = await call(socket, 'instance/overview', undefined);
    assert.deepStrictEqual(overview.map((d) => d.instanceUuid), [id]);
    const section = await call(socket, 'instance/section',
        { instanceUuids: [id, 'global0001', 'missing'] });
    assert.deepStrictEqual(section.map((d) => d.instanceUuid), [id]);
    const info = await call(socket, 'info/overview', undefined);
    assert.deepStrictEqual(info.instance, { running: 1, total: 1 });

    // A running instance cannot be deleted.
    const busy = await request(socket, 'instance/delete',
        { instanceUuids: [id], deleteFile: true });
    assert.strictEqual(busy.status, 500);
    assert.match(busy.data.err, /not stopped/);

    // instance/stop replies once the stop command is sent.
    const stopped = nextPush(socket, 'instance/stopped');
    assert.deepStrictEqual(
        await call(socket, 'instance/stop', { instanceUuids: [id] }),
        { instanceUuid: id, instances: [{ instanceUuid: id,
            nickname: 'echo' }] });
    assert.deepStrictEqual((await stopped).data,
        { instanceUuid: id, instanceName: 'echo' });
    await waitFor('status 0', async () => (await statusOf(socket, id)) === 0);
    await waitFor(`process ${pid} to end`, () => processGone(pid));

    const stopAgain = await request(socket, 'instance/stop',
        { instanceUuids: [id] });
    assert.strictEqual(stopAgain.status, 500);
    assert.strictEqual(stopAgain.data.err,
        'Instance not running and cannot be stopped.');

    // instance/delete with its files.
    const workDir = created.config.cwd;
    assert.ok(fs.existsSync(workDir));
    assert.deepStrictEqual(await call(socket, 'instance/delete',
        { instanceUuids: [id], deleteFile: true }),
    { instanceUuids: [id], instances: [{ instanceUuid: id,
        nickname: 'echo' }] });
    assert.ok(!fs.existsSync(
        path.join(dataDir, 'InstanceConfig', `${id}.json`)));
    await waitFor('working folder removal', () => !fs.existsSync(workDir));

    const gone = await request(socket, 'instance/delete',
        { instanceUuids: [id], deleteFile: true });
    assert.strictEqual(gone.status, 500);
    assert.strictEqual(gone.data.err, 'The target instance does not exist!');

    socket.close();
    await stopDaemon(daemon);
});

test('unknown instances get the observed errors', async (t) => {
    const daemon = await startDaemon(t, tempDir(t));
    const socket = await authedSocket(daemon);
    t.after(() => socket.close());
    const missing = '00000000000000000000000000000000';

    const detail = await request(socket, 'instance/detail',
        { instanceUuid: missing });
    assert.strictEqual(detail.status, 500);
    assert.deepStrictEqual(detail.data, { instanceUuid: missing,
        err: `The operation failed, the instance ${missing} does not exist.` });

    for (const event of ['instance/command', 'instance/outputlog']) {
        const packet = await request(socket, event,
            { instanceUuid: missing, command: 'x' });
        assert.strictEqual(packet.status, 500);
        assert.strictEqual(packet.data.err,
            `The operation failed, the instance ${missing} does not exist.`);
    }

    for (const event of ['instance/open', 'instance/stop',
        'instance/restart']) {
        const packet = await request(socket, event,
            { instanceUuids: [missing] });
        assert.strictEqual(packet.status, 500);
        assert.strictEqual(packet.data.instanceUuid, missing);
        assert.strictEqual(packet.data.err,
            'The target instance does not exist!');
    }

    // instanceUuids skips the middleware check; the handlers check again.
    for (const event of ['instance/detail', 'instance/update',
        'instance/forward', 'instance/command', 'instance/outputlog']) {
        const packet = await request(socket, event, { instanceUuid: missing,
            instanceUuids: [missing], config: {}, command: 'x' });
        assert.strictEqual(packet.status, 500, event);
        assert.strictEqual(packet.data.err,
            `The operation failed, the instance ${missing} does not exist.`);
    }

    // kill skips unknown ids without a reply.
    const uuid = packetUuid();
    const killed = collect(socket, 'instance/kill', uuid, 1, 500);
    socket.emit('instance/kill', { uuid, data: { instanceUuids: [missing] } });
    await assert.rejects(killed, /0 of 1 answers/);

    // The hidden global instance is reachable by id but never listed.
    const global = await call(socket, 'instance/detail',
        { instanceUuid: 'global0001' });
    assert.strictEqual(global.config.nickname, '__MCSM_GLOBAL_INSTANCE__');
    assert.strictEqual(global.config.cwd, '/');
    assert.deepStrictEqual(await call(socket, 'instance/overview', undefined),
        []);

    socket.close();
    await stopDaemon(daemon);
});

test('adopted instance starts at boot and stops at shutdown', async (t) => {
    const dataDir = tempDir(t);
    const id = 'a1719aa23a85441abe39c610a6481a17';
    const key = 'e1caa9eb4adf6e7e2d5a4b6a25945ab3ecfffc1299f463';
    fs.mkdirSync(path.join(dataDir, 'Config'));
    fs.mkdirSync(path.join(dataDir, 'InstanceConfig'));
    fs.writeFileSync(path.join(dataDir, 'Config', 'global.json'),
        JSON.stringify({ version: 2, ip: '127.0.0.1', port: 24444, key,
            currentAllocatablePort: 10355 }, null, 4));
    fs.writeFileSync(path.join(dataDir, 'InstanceConfig', `${id}.json`),
        JSON.stringify({
            nickname: 'echo-owned',
            startCommand: ECHO_COMMAND,
            stopCommand: '^C',
            cwd: path.join(dataDir, 'work'),
            ie: 'utf8',
            oe: 'utf8',
            basePort: 10015,
            terminalOption: { haveColor: false, pty: false,
                ptyWindowCol: 164, ptyWindowRow: 40 },
            eventTask: { autoStart: true, autoRestart: false,
                autoRestartMaxTimes: -1, ignore: false },
        }, null, 4));

    const daemon = await startDaemon(t, dataDir);
    assert.strictEqual(readKey(dataDir), key);
    const socket = await authedSocket(daemon);
    t.after(() => socket.close());

    await waitFor('the automatic start',
        async () => (await statusOf(socket, id)) === 3, 8000);
    const detail = await call(socket, 'instance/detail', { instanceUuid: id });
    assert.strictEqual(detail.config.nickname, 'echo-owned');
    const pid = detail.processInfo.pid;
    assert.ok(pid > 0);

    socket.close();
    await stopDaemon(daemon);
    assert.ok(processGone(pid), `instance process ${pid} survived`);
    assert.match(daemon.stderr, /daemon ready on/);
    assert.ok(!daemon.stderr.includes(key), 'the key was logged');
});

test('second signal kills instances that ignore the stop', async (t) => {
    const dataDir = tempDir(t);
    const daemon = await startDaemon(t, dataDir);
    const socket = await authedSocket(daemon);
    t.after(() => socket.close());

    const created = await call(socket, 'instance/new', {
        nickname: 'stubborn',
        startCommand: 'sh -c "trap \'\' INT TERM; while true; do sleep 1; ' +
            'done"',
        stopCommand: '^C',
        terminalOption: { pty: false },
    });
    const id = created.instanceUuid;
    await call(socket, 'instance/open', { instanceUuids: [id] });
    const pid = (await call(socket, 'instance/detail',
        { instanceUuid: id })).processInfo.pid;
    assert.ok(pid > 0);
    socket.close();

    daemon.child.kill('SIGTERM');
    await sleep(500);
    assert.ok(!processGone(pid), 'the soft shutdown killed at once');
    await stopDaemon(daemon, 5000);
    await waitFor(`process ${pid} to end`, () => processGone(pid));
});

test('browser terminal with a stream passport', async (t) => {
    const daemon = await startDaemon(t, tempDir(t));
    const panel = await authedSocket(daemon);
    t.after(() => panel.close());

    const id = (await call(panel, 'instance/new', {
        nickname: 'terminal',
        startCommand: ECHO_COMMAND,
        terminalOption: { pty: false },
    })).instanceUuid;
    const password = crypto.randomBytes(24).toString('hex');
    assert.strictEqual(await call(panel, 'passport/register', {
        name: 'stream_channel', password, parameter: { instanceUuid: id },
    }), true);
    const duplicate = await request(panel, 'passport/register', {
        name: 'stream_channel', password, parameter: { instanceUuid: id },
    });
    assert.strictEqual(duplicate.status, 500);

    // The browser sends packets without a uuid, as MCSManager's UI does.
    const browser = await connect(daemon.url);
    t.after(() => browser.close());
    const wrong = nextPush(browser, 'stream/auth');
    browser.emit('stream/auth', { data: { password: 'wrong' } });
    assert.strictEqual((await wrong).status, 500);
    const authed = nextPush(browser, 'stream/auth');
    browser.emit('stream/auth', { data: { password } });
    assert.deepStrictEqual(await authed,
        { uuid: null, status: 200, event: 'stream/auth', data: true });

    const detail = nextPush(browser, 'stream/detail');
    browser.emit('stream/detail', { data: {} });
    const detailPacket = await detail;
    assert.strictEqual(detailPacket.data.instanceUuid, id);
    assert.strictEqual(detailPacket.data.watcher, 1);

    // A terminal session may not call panel events.
    const rejected = nextPush(browser, 'error');
    browser.emit('instance/overview', { data: {} });
    assert.strictEqual((await rejected).data, '[IGNORE_LOG]');

    const opened = nextPush(browser, 'instance/opened');
    await call(panel, 'instance/open', { instanceUuids: [id] });
    assert.strictEqual((await opened).data.instanceUuid, id);
    const echoed = nextPush(browser, 'instance/stdout',
        (p) => p.data.text.includes('got:typed'));
    browser.emit('stream/input', { data: { command: 'typed' } });
    await echoed;

    const written = nextPush(browser, 'instance/stdout',
        (p) => p.data.text.includes('got:raw'));
    browser.emit('stream/write', { data: { input: 'raw\n' } });
    await written;

    const stopped = nextPush(browser, 'instance/stopped');
    await call(panel, 'instance/kill', { instanceUuids: [id] });
    assert.deepStrictEqual((await stopped).data,
        { instanceUuid: id, instanceName: 'terminal' });

    browser.close();
    panel.close();
    await stopDaemon(daemon);
});

// Reads VmRSS of a process in kB.
function rssKb(pid) {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

test('stalled viewer skips output, not memory', async (t) => {
    const WebSocket = require('ws');
    // AddressSanitizer keeps freed memory in quarantine (256 MB by
    // default), which would hide the growth this test looks for.
    const asan = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1']
        .filter(Boolean).join(':');
    const daemon = await startDaemon(t, tempDir(t), { ASAN_OPTIONS: asan });
    const panel = await authedSocket(daemon);
    t.after(() => panel.close());
    const id = (await call(panel, 'instance/new', {
        nickname: 'flood',
        startCommand: 'yes 0123456789abcdefghijklmnopqrstuvwxyz',
        terminalOption: { pty: false },
    })).instanceUuid;

    // A raw Engine.IO WebSocket client whose reads can be paused.
    const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}` +
        '/socket.io/?EIO=4&transport=websocket');
    t.after(() => ws.terminate());
    const messages = [];
    let waiter = null;
    ws.on('message', (raw) => {
        const text = raw.toString();
        if (text === '2') {
            ws.send('3');
            return;
        }
        messages.push(text);
        if (waiter && waiter.test(text)) {
            const w = waiter;
            waiter = null;
            w.resolve(text);
        }
    });
    const expect = (pattern, timeoutMs = 5000) => {
        const found = messages.find((m) => pattern.test(m));
        if (found)
            return Promise.resolve(found);
        return new Promise((resolve, reject) => {
            waiter = { test: (m) => pattern.test(m), resolve };
            setTimeout(() => reject(new Error(`no message ${pattern}`)),
                timeoutMs);
        });
    };
    await new Promise((resolve) => ws.once('open', resolve));
    await expect(/^0\{/);
    ws.send('40');
    await expect(/^40/);
    ws.send(`42["auth",{"uuid":"a1","data":"${readKey(daemon.dataDir)}"}]`);
    await expect(/^42\["auth",\{"uuid":"a1".*"data":true/);
    ws.send(`42["instance/forward",{"uuid":"f1","data":` +
        `{"instanceUuid":"${id}","forward":true}}]`);
    await expect(/^42\["instance\/forward"/);

    const before = rssKb(daemon.child.pid);
    ws._socket.pause();
    await call(panel, 'instance/open', { instanceUuids: [id] });
    await waitFor('the skip log line',
        () => /output of instance \w+ skipped/.test(daemon.stderr), 8000);
    await sleep(2000);

    // The daemon still replies at once and its memory stays bounded.
    const started = Date.now();
    assert.strictEqual(await statusOf(panel, id), 3);
    assert.ok(Date.now() - started < 1000, 'detail took over 1 s');
    const growth = rssKb(daemon.child.pid) - before;
    t.diagnostic(`daemon RSS grew by ${growth} kB while the viewer stalled`);
    assert.ok(growth < 100 * 1024, `RSS grew by ${growth} kB`);

    // Once the viewer reads again, it receives the dropped-output notice.
    messages.length = 0;
    ws._socket.resume();
    await expect(/Output is too fast, some output was dropped/, 10000);

    await call(panel, 'instance/kill', { instanceUuids: [id] });
    await waitFor('status 0', async () => (await statusOf(panel, id)) === 0);
    ws.close();
    panel.close();
    await stopDaemon(daemon);
});
