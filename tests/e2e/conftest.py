"""Fixtures that run the real `hearth` binary for the end-to-end tests.

Every server binds 127.0.0.1 on a free ephemeral port and keeps its data in
a temporary folder. The binary comes from HEARTH_BIN (the Makefile points
it at the sanitizer build); without it, build-asan/hearth in the repository
is used.

The test process makes itself a child subreaper (prctl
PR_SET_CHILD_SUBREAPER), so a game server that outlives the daemon that
started it is re-parented to pytest instead of init, and the teardown
checks can find it.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "demo" / "flying-squid"

ADMIN_NAME = "admin"
ADMIN_PASSWORD = "AdminPass123"
USER_NAME = "user1"
USER_PASSWORD = "UserPass1234"

# Seconds to wait for a "ready" log line. Sanitizer builds start slower.
READY_TIMEOUT = 30
# Seconds a server gets to exit after SIGTERM before the test kills it.
STOP_TIMEOUT = 30
# Timeout of one HTTP request, in seconds.
HTTP_TIMEOUT = 30

PR_SET_CHILD_SUBREAPER = 36

# A console that echoes every line it reads as "got:<line>".
ECHO_COMMAND = 'sh -c "while read l; do echo got:$l; done"'


def pytest_configure(config):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise RuntimeError(f"prctl(PR_SET_CHILD_SUBREAPER) failed: "
                           f"{os.strerror(err)}")


def hearth_bin():
    path = os.environ.get("HEARTH_BIN") or str(REPO / "build-asan" / "hearth")
    if not os.access(path, os.X_OK):
        pytest.fail(f"hearth binary not found or not executable: {path}. "
                    f"Build it with `make build-asan` or set HEARTH_BIN.",
                    pytrace=False)
    return path


def require_demo_modules():
    """Fail (never skip) when the demo game server's packages are missing."""
    modules = DEMO_DIR / "node_modules"
    if not (modules / "flying-squid").is_dir():
        pytest.fail(f"{modules} has no flying-squid: run `sh scripts/deps.sh`"
                    f" (it runs `npm ci` in {DEMO_DIR}).", pytrace=False)
    if not (modules / "minecraft-protocol").is_dir():
        pytest.fail(f"{modules} has no minecraft-protocol: run "
                    f"`sh scripts/deps.sh`.", pytrace=False)


def node_bin():
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed: run `sh scripts/deps.sh`",
                    pytrace=False)
    return path


def ping(port, timeout_ms=3000):
    """Run ping.js; return the status response, or None without one."""
    result = subprocess.run(
        [node_bin(), str(DEMO_DIR / "ping.js"), "--port", str(port),
         "--timeout", str(timeout_ms)],
        capture_output=True, timeout=timeout_ms / 1000 + 10)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def wait_ping(port, timeout=60):
    return wait_for(lambda: ping(port), timeout, interval=0.5,
                    what=f"a status ping answer on port {port}")


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- processes

def read_proc_stat(pid):
    """Return (state, ppid, pgid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # The command name in brackets may contain spaces and brackets itself.
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2])


def all_processes():
    """Return {pid: (state, ppid, pgid)} of every process on the machine."""
    result = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = read_proc_stat(int(name))
            if stat is not None:
                result[int(name)] = stat
    return result


def descendants(root):
    """Return the pids of every live descendant of root (not root)."""
    procs = all_processes()
    children = {}
    for pid, (_, ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found = []
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def process_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def reap_orphans(known):
    """Reap exited children of this process that it did not start itself.

    As a subreaper, pytest inherits the orphans of the servers it runs;
    their zombies would otherwise look like leftover processes.
    """
    me = os.getpid()
    for pid, (state, ppid, _) in all_processes().items():
        if ppid == me and pid not in known and state == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def live_pids(pids):
    """Return those of pids that still exist and are not zombies."""
    alive = []
    for pid in pids:
        stat = read_proc_stat(pid)
        if stat is not None and stat[0] != "Z":
            alive.append(pid)
    return alive


def wait_gone(pids, known, timeout=10.0):
    """Wait until none of pids is alive; return those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        reap_orphans(known)
        alive = live_pids(pids)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def group_members(pgid):
    """Return the live processes of process group pgid."""
    return [pid for pid, (state, _, group) in all_processes().items()
            if group == pgid and state != "Z"]


def describe_pids(pids):
    return ", ".join(f"{pid} ({process_cmdline(pid).strip()})"
                     for pid in pids)


# Every Popen that the fixtures started, so reap_orphans leaves them to
# subprocess.
STARTED_PIDS = set()


class HearthProcess:
    """One `hearth` subcommand running as a child of the test."""

    def __init__(self, args, name, log_dir):
        self.args = [hearth_bin()] + list(args)
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.proc = None
        self.stdout_lines = []
        self.stderr_lines = []
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def start(self, wait_ready=True):
        self._ready.clear()
        self.stdout_lines = []
        self.stderr_lines = []
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=self.log_path.parent)
        STARTED_PIDS.add(self.proc.pid)
        self._threads = [
            threading.Thread(target=self._pump,
                             args=(self.proc.stdout, self.stdout_lines,
                                   False), daemon=True),
            threading.Thread(target=self._pump,
                             args=(self.proc.stderr, self.stderr_lines,
                                   True), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        if wait_ready:
            self.wait_ready()
        return self

    def _pump(self, stream, lines, is_stderr):
        with open(self.log_path, "ab") as log:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    lines.append(line)
                if is_stderr and "ready" in line:
                    self._ready.set()

    def output(self):
        """Return everything printed so far, stdout then stderr."""
        with self._lock:
            return "\n".join(self.stdout_lines + self.stderr_lines)

    def tail(self, count=40):
        with self._lock:
            lines = self.stderr_lines[-count:]
        return "\n".join(lines)

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                pytest.fail(f"`{' '.join(self.args)}` exited with status "
                            f"{self.proc.returncode} before logging a "
                            f"\"ready\" line:\n{self.tail()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"`{' '.join(self.args)}` logged no \"ready\" "
                            f"line within {timeout} s:\n{self.tail()}",
                            pytrace=False)

    def wait_output(self, pattern, timeout=READY_TIMEOUT):
        """Wait for a regular expression in stdout or stderr; return match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = regex.search(self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"`{' '.join(self.args)}` printed nothing matching "
                    f"{pattern!r}:\n{self.output()[-4000:]}", pytrace=False)

    def stop(self):
        """SIGTERM the process; return (exit status, leftover descendants).

        Descendants alive just before the signal must all be gone once the
        process has exited.
        """
        return self.finish_stop(self.begin_stop())

    def begin_stop(self):
        """Send SIGTERM; return the descendants alive just before it."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        before = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        return before

    def finish_stop(self, before):
        """Wait for the exit that begin_stop asked for (see stop)."""
        if before is None:
            return (self.proc.returncode if self.proc else 0), []
        try:
            status = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            status = f"no exit within {STOP_TIMEOUT} s of SIGTERM"
        for thread in self._threads:
            thread.join(5)
        left = wait_gone(before, STARTED_PIDS, timeout=5)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_gone(left, STARTED_PIDS, timeout=5)
        return status, left

    def check_stopped(self, status, left):
        """Assert a clean exit status and no leftover descendants."""
        assert status == 0, (f"{self.name} exit status after SIGTERM: "
                             f"{status}\n{self.tail()}")
        assert left == [], (f"{self.name} left processes running: "
                            f"{describe_pids(left)}")

    def stop_and_check(self):
        """Stop the process and assert a clean exit with nothing left."""
        self.check_stopped(*self.stop())

    @property
    def pid(self):
        return self.proc.pid


# ------------------------------------------------------------------- client

class Api:
    """A thin client for the panel's /api routes.

    Credentials: `key` with `key_in` "query" (?apikey=), "header"
    (X-Request-Api-Key) or "bearer" (Authorization: Bearer); or a
    requests.Session with its session `token`.
    """

    def __init__(self, base_url):
        self.base = base_url.rstrip("/")

    def request(self, method, path, *, key=None, key_in="query",
                session=None, token=None, xhr=False, params=None,
                json_body=None, data=None, headers=None):
        params = dict(params or {})
        headers = dict(headers or {})
        if key is not None:
            if key_in == "query":
                params["apikey"] = key
            elif key_in == "header":
                headers["X-Request-Api-Key"] = key
            elif key_in == "bearer":
                headers["Authorization"] = f"Bearer {key}"
            else:
                raise ValueError(f"unknown key_in {key_in!r}")
        if token is not None:
            params["token"] = token
        if xhr:
            headers["X-Requested-With"] = "XMLHttpRequest"
        sender = session or requests
        return sender.request(method, self.base + path, params=params,
                              json=json_body, data=data, headers=headers,
                              timeout=HTTP_TIMEOUT)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)


def envelope(resp):
    """Parse the {status, data, time} envelope; fail with the raw response."""
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"{resp.request.method} {resp.url}: HTTP "
                    f"{resp.status_code}, body is not JSON: "
                    f"{resp.text[:500]!r}", pytrace=False)
    if not isinstance(body, dict) or set(body) != {"status", "data", "time"}:
        pytest.fail(f"{resp.request.method} {resp.url}: HTTP "
                    f"{resp.status_code}, not a {{status, data, time}} "
                    f"envelope: {resp.text[:500]!r}", pytrace=False)
    return body


def ok(resp):
    """Assert HTTP 200 with a matching envelope; return its data."""
    body = envelope(resp)
    assert resp.status_code == 200, (
        f"{resp.request.method} {resp.url}: HTTP {resp.status_code} "
        f"{resp.text[:500]}")
    assert body["status"] == 200
    return body["data"]


def assert_failure(resp, status, text, secret=None, explained=False):
    """Assert an error envelope whose message starts with MCSManager's text.

    Hearth may append an explanation to MCSManager's wording; with
    explained=True the explanation is required (a refusal must name the
    rule that failed). A secret (an API key) must never be echoed back.
    """
    body = envelope(resp)
    where = f"{resp.request.method} {resp.url}"
    assert resp.status_code == status, (
        f"{where}: HTTP {resp.status_code} (expected {status}) "
        f"{resp.text[:500]}")
    assert body["status"] == status, f"{where}: envelope {body}"
    message = body["data"]
    assert isinstance(message, str), f"{where}: data is not text: {body}"
    assert message.startswith(text), (
        f"{where}: message {message!r} does not start with {text!r}")
    if explained:
        assert len(message.strip()) > len(text), (
            f"{where}: refusal {message!r} does not explain the rule")
    if secret:
        assert secret not in message, (
            f"{where}: the message echoes the key: {message!r}")
        assert secret not in resp.text, f"{where}: the body echoes the key"
    return message


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Poll predicate until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what} "
                f"(last value: {last!r})", pytrace=False)


# -------------------------------------------------------------------- stack

def daemon_key(data_dir):
    with open(Path(data_dir) / "Config" / "global.json") as f:
        return json.load(f)["key"]


class Stack:
    """A daemon and a panel, plus the credentials the setup created."""

    def __init__(self, tmp_path):
        self.tmp = Path(tmp_path)
        self.daemon_dir = self.tmp / "daemon"
        self.panel_dir = self.tmp / "panel"
        self.daemon_port = free_port()
        self.panel_port = free_port()
        self.daemon = HearthProcess(
            ["daemon", "--data", str(self.daemon_dir),
             "--listen", f"127.0.0.1:{self.daemon_port}"],
            "daemon", self.tmp)
        self.panel = HearthProcess(
            ["panel", "--data", str(self.panel_dir),
             "--listen", f"127.0.0.1:{self.panel_port}"],
            "panel", self.tmp)
        self.api = Api(f"http://127.0.0.1:{self.panel_port}")
        self.admin_session = None
        self.admin_token = None
        self.admin_key = None
        self.daemon_id = None

    def start(self):
        self.daemon.start()
        self.panel.start()
        return self

    def stop_and_check(self):
        # Signal both at once (each may take a moment to close), check both
        # even when the first check fails, then report.
        pending = [(proc, proc.begin_stop())
                   for proc in (self.panel, self.daemon)]
        errors = []
        for proc, before in pending:
            try:
                proc.check_stopped(*proc.finish_stop(before))
            except AssertionError as err:
                errors.append(str(err))
        assert not errors, "\n".join(errors)

    # -- setup steps, in the order a first-time user takes them

    def install(self):
        """First-run install of the admin; keep its session and token."""
        self.admin_session = requests.Session()
        ok(self.api.post("/api/auth/install", session=self.admin_session,
                         json_body={"username": ADMIN_NAME,
                                    "password": ADMIN_PASSWORD}))
        self.admin_token = ok(self.api.get("/api/auth/token",
                                           session=self.admin_session,
                                           xhr=True))
        return self.admin_token

    def set_api_keys(self, mode):
        """Set the enableApiKey setting (True, False or "ONLY_ADMIN")."""
        ok(self.api.put("/api/overview/setting",
                        session=self.admin_session, token=self.admin_token,
                        xhr=True, json_body={"enableApiKey": mode}))

    def create_key(self, session, token):
        key = ok(self.api.put("/api/auth/api", session=session, token=token,
                              xhr=True, json_body={"enable": True}))
        assert re.fullmatch(r"[0-9a-f]{32}", key), f"API key {key!r}"
        return key

    def add_node(self, key=None, port=None, remarks="local"):
        """Register a daemon; return its uuid (as the POST returns it)."""
        return ok(self.api.post(
            "/api/service/remote_service", key=self.admin_key,
            json_body={"ip": "127.0.0.1",
                       "port": port or self.daemon_port,
                       "apiKey": key or daemon_key(self.daemon_dir),
                       "remarks": remarks}))

    def nodes(self):
        return ok(self.api.get("/api/service/remote_services_list",
                               key=self.admin_key))

    def node(self, uuid):
        for node in self.nodes():
            if node["uuid"] == uuid:
                return node
        return None

    def wait_available(self, uuid, available=True, timeout=30):
        def check():
            node = self.node(uuid)
            return node is not None and node["available"] is available
        wait_for(check, timeout, interval=0.2,
                 what=f"node {uuid} available={available}")

    def setup(self):
        """Install, enable keys, create the admin key, register the node."""
        self.install()
        self.set_api_keys(True)
        self.admin_key = self.create_key(self.admin_session,
                                         self.admin_token)
        self.daemon_id = self.add_node()
        self.wait_available(self.daemon_id)
        return self

    def create_instance(self, nickname="echo", start_command=ECHO_COMMAND,
                        stop_command="^C", **extra):
        config = {
            "nickname": nickname,
            "startCommand": start_command,
            "stopCommand": stop_command,
            "cwd": "",
            "ie": "utf-8",
            "oe": "utf-8",
            "type": "universal",
            "processType": "general",
            "terminalOption": {"pty": False, "haveColor": False},
        }
        config.update(extra)
        data = ok(self.api.post("/api/instance", key=self.admin_key,
                                params={"daemonId": self.daemon_id},
                                json_body=config))
        return data["instanceUuid"]

    def create_user(self, name=USER_NAME, password=USER_PASSWORD,
                    permission=1):
        data = ok(self.api.post("/api/auth", key=self.admin_key,
                                json_body={"username": name,
                                           "password": password,
                                           "permission": permission}))
        return data["uuid"]

    def grant(self, user_uuid, instance_uuids):
        ok(self.api.put("/api/auth", key=self.admin_key, json_body={
            "uuid": user_uuid,
            "config": {"instances": [
                {"instanceUuid": uuid, "daemonId": self.daemon_id}
                for uuid in instance_uuids]}}))

    def login(self, name, password):
        """Log in with a fresh cookie jar; return (session, token)."""
        session = requests.Session()
        token = ok(self.api.post("/api/auth/login", session=session,
                                 json_body={"username": name,
                                            "password": password}))
        return session, token

    def user_key(self, name=USER_NAME, password=USER_PASSWORD):
        session, token = self.login(name, password)
        return self.create_key(session, token)

    def instance(self, uuid, key=None):
        return ok(self.api.get("/api/instance", key=key or self.admin_key,
                               params={"uuid": uuid,
                                       "daemonId": self.daemon_id}))

    def wait_status(self, uuid, status, timeout=20):
        wait_for(lambda: self.instance(uuid)["status"] == status, timeout,
                 interval=0.1, what=f"instance {uuid} status {status}")

    def operate(self, action, uuid, key=None, key_in="query", params=None,
                method="GET"):
        query = {"uuid": uuid, "daemonId": self.daemon_id}
        query.update(params or {})
        return self.api.request(method, f"/api/protected_instance/{action}",
                                key=key or self.admin_key, key_in=key_in,
                                params=query)

    def outputlog(self, uuid, key=None):
        return ok(self.operate("outputlog", uuid, key=key))

    def wait_output(self, uuid, text, timeout=15):
        return wait_for(lambda: text in self.outputlog(uuid), timeout,
                        interval=0.2, what=f"{text!r} in the output log")

    def find_process(self, pattern, timeout=10):
        """Return the pid of the daemon's descendant whose command line
        contains pattern."""
        def search():
            for pid in descendants(self.daemon.pid):
                if pattern in process_cmdline(pid):
                    return pid
            return None
        return wait_for(search, timeout,
                        what=f"a process of the daemon running {pattern!r}")

    def kill_all(self):
        """Stop both processes without checking how they ended."""
        for proc in (self.panel, self.daemon):
            if proc.proc is not None:
                proc.stop()


def start_stack(tmp_path, setup):
    stack = Stack(tmp_path)
    try:
        stack.start()
        if setup:
            stack.setup()
    except BaseException:
        stack.kill_all()
        raise
    return stack


@pytest.fixture
def bare_stack(tmp_path):
    """A daemon and a panel with nothing set up (first run)."""
    stack = start_stack(tmp_path, setup=False)
    yield stack
    stack.stop_and_check()


@pytest.fixture
def stack(tmp_path):
    """A daemon and a panel with admin, API keys on, the node registered."""
    stack = start_stack(tmp_path, setup=True)
    yield stack
    stack.stop_and_check()
