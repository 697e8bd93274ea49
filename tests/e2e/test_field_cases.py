"""Failures that operators of game-server panels have reported.

Each test reproduces one reported kind of failure against the real panel
and daemon. The programs are POSIX sh one-liners that stand in for a game
server. Where MCSManager 10.18.2 replies differently from what a report
expected, the test follows 10.18.2 and its comment states that.
"""

import os
import re
import threading
import time
from pathlib import Path

import pytest
import requests
import socketio

from conftest import (HTTP_TIMEOUT, STARTED_PIDS, all_processes,
                      assert_failure, descendants, live_pids, ok,
                      process_cmdline, reap_orphans, wait_for)

# The text that MCSManager's instance guard starts its 403 with.
FORBIDDEN = ("[Forbidden] [Middleware] Incorrect parameters or "
             "unauthorized access to the instance.")

# Seconds to watch a stopped instance for an unwanted automatic restart:
# five times the daemon's 2 s auto-restart delay, so a restart would show.
NO_RESTART_WATCH = 10


# ---------------------------------------------------------------- helpers

def create(stack, command, pty=False, **extra):
    """Create an instance running command; return its uuid."""
    extra.setdefault("nickname", "field")
    return stack.create_instance(start_command=command,
                                 terminalOption={"pty": pty,
                                                 "haveColor": False},
                                 **extra)


def create_default_terminal(stack, command):
    """Create an instance without terminalOption in the request."""
    data = ok(stack.api.post("/api/instance", key=stack.admin_key,
                             params={"daemonId": stack.daemon_id},
                             json_body={"nickname": "field",
                                        "startCommand": command,
                                        "stopCommand": "^C",
                                        "processType": "general"}))
    return data["instanceUuid"]


def instance_cwd(stack, uuid):
    return Path(stack.instance(uuid)["config"]["cwd"])


def status(stack, uuid):
    return stack.instance(uuid)["status"]


def open_running(stack, uuid):
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)


def kill_stopped(stack, uuid):
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0)


def matching_processes(pattern):
    """Return the live pids (not zombies) whose command line matches."""
    reap_orphans(STARTED_PIDS)
    regex = re.compile(pattern)
    me = os.getpid()
    return [pid for pid, (state, _, _) in all_processes().items()
            if state != "Z" and pid != me
            and regex.search(process_cmdline(pid))]


def daemon_pids(stack, pattern):
    """Return the pids of the daemon's live processes matching pattern."""
    regex = re.compile(pattern)
    return sorted(pid for pid in live_pids(descendants(stack.daemon.pid))
                  if regex.search(process_cmdline(pid)))


def watch_status(stack, uuid, seconds, interval=0.25):
    """Poll the status for seconds; return every value seen."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(status(stack, uuid))
        time.sleep(interval)
    return seen


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Terminal:
    """A browser-like terminal on the daemon, through a stream passport.

    The daemon replies to stream/auth on the same event name with
    MCSManager's packet {uuid, status, event, data}, and pushes instance/stdout packets
    whose data is {instanceUuid, text}.
    """

    def __init__(self, channel):
        self.channel = channel
        self.texts = []
        self.auth = []
        self._lock = threading.Lock()
        self._authed = threading.Event()
        self.client = socketio.Client(reconnection=False)
        self.client.on("instance/stdout", self._on_stdout)
        self.client.on("stream/auth", self._on_auth)

    def _on_stdout(self, packet):
        with self._lock:
            self.texts.append(packet["data"]["text"])

    def _on_auth(self, packet):
        self.auth.append(packet)
        self._authed.set()

    def connect(self):
        prefix = self.channel["prefix"].rstrip("/")
        self.client.connect(f"http://{self.channel['addr']}",
                            socketio_path=f"{prefix}/socket.io",
                            transports=["websocket"], wait_timeout=10)
        self.client.emit("stream/auth",
                         {"data": {"password": self.channel["password"]}})
        assert self._authed.wait(10), "no stream/auth answer within 10 s"
        assert self.auth[-1]["status"] == 200, self.auth[-1]
        assert self.auth[-1]["data"] is True, self.auth[-1]
        return self

    def text(self):
        with self._lock:
            return "".join(self.texts)

    def wait_text(self, needle, timeout=15):
        return wait_for(lambda: needle in self.text(), timeout,
                        what=f"{needle!r} in the live stream")

    def close(self):
        if self.client.connected:
            self.client.disconnect()


def stream_channel(stack, uuid, key=None):
    return ok(stack.operate("stream_channel", uuid, key=key, method="POST"))


@pytest.fixture
def terminals():
    """Terminals opened by a test; all are disconnected at the end."""
    opened = []

    def open_terminal(channel):
        term = Terminal(channel)
        opened.append(term)
        return term.connect()
    yield open_terminal
    for term in opened:
        term.close()


# ------------------------------------------------- API key spelling

SYSTEM_ROUTE = "/api/service/remote_services_system"


def overview_illegal_access(stack):
    return ok(stack.api.get("/api/overview",
                            key=stack.admin_key))["record"]["illegalAccess"]


def test_apikey_query_lists_systems(stack):
    data = ok(stack.api.get(SYSTEM_ROUTE, key=stack.admin_key))
    assert isinstance(data, list)
    assert len(data) == len(stack.nodes())


def test_apikey_camel_case_refused(stack):
    # MCSManager reads only "apikey", so "apiKey" leaves the request
    # anonymous, and this token route then requires the browser header:
    # a 403 envelope, never a 500, HTML or a redirect.
    resp = requests.get(stack.api.base + SYSTEM_ROUTE,
                        params={"apiKey": stack.admin_key},
                        allow_redirects=False, timeout=HTTP_TIMEOUT)
    message = assert_failure(resp, 403, "Unable to find the request header",
                             secret=stack.admin_key, explained=True)
    assert "'apiKey'" in message


def test_apikey_header_same_as_query(stack):
    by_query = ok(stack.api.get(SYSTEM_ROUTE, key=stack.admin_key))
    by_header = ok(stack.api.get(SYSTEM_ROUTE, key=stack.admin_key,
                                 key_in="header"))
    # Figures such as uptime change between two calls; the shape may not.
    assert len(by_header) == len(by_query)
    assert set(by_header[0]) == set(by_query[0])
    assert by_header[0]["version"] == by_query[0]["version"]


def test_apikey_wrong_counts_illegal_access(stack):
    before = overview_illegal_access(stack)
    resp = stack.api.get(SYSTEM_ROUTE, key="0" * 32)
    assert_failure(resp, 403, "Incorrect key", secret="0" * 32)
    assert overview_illegal_access(stack) == before + 1


# ----------------------------------- remote_uuid in place of daemonId

LOOP_COMMAND = "sh -c 'trap \"exit 0\" INT; while :; do sleep 1; done'"


@pytest.fixture
def alice(stack):
    """alice owns instance I; returns (I, alice's key)."""
    uuid = create(stack, LOOP_COMMAND)
    alice_uuid = stack.create_user("alice", "AlicePass123")
    stack.grant(alice_uuid, [uuid])
    return uuid, stack.user_key("alice", "AlicePass123")


def test_open_with_daemon_id(stack, alice):
    uuid, key = alice
    ok(stack.api.get("/api/protected_instance/open", key=key,
                     params={"uuid": uuid, "daemonId": stack.daemon_id}))
    stack.wait_status(uuid, 3)
    kill_stopped(stack, uuid)


def test_open_with_remote_uuid(stack, alice):
    uuid, key = alice
    ok(stack.api.get("/api/protected_instance/open", key=key,
                     params={"uuid": uuid, "remote_uuid": stack.daemon_id}))
    stack.wait_status(uuid, 3)
    kill_stopped(stack, uuid)


def test_open_second_question_mark(stack, alice):
    uuid, key = alice
    # The second "?" is literal, so apikey becomes part of daemonId.
    url = (f"{stack.api.base}/api/protected_instance/open?uuid={uuid}"
           f"&daemonId={stack.daemon_id}?apikey={key}")
    resp = requests.get(url, timeout=HTTP_TIMEOUT)
    message = assert_failure(resp, 403, FORBIDDEN, secret=key,
                             explained=True)
    assert "no API key or session was found" in message
    assert status(stack, uuid) == 0


@pytest.mark.parametrize("node_param", ["daemonId", "remote_uuid"])
def test_instance_list_node_param(stack, node_param):
    for _ in range(3):
        create(stack, LOOP_COMMAND)
    data = ok(stack.api.get("/api/service/remote_service_instances",
                            key=stack.admin_key,
                            params={node_param: stack.daemon_id, "page": 1,
                                    "page_size": 10, "instance_name": ""}))
    assert len(data["data"]) == 3
    assert data["maxPage"] == 1


# ---------------------------- ordinary user's key, own and other's

@pytest.fixture
def alice_and_bob(stack):
    """alice owns I, bob owns J; returns (I, J, alice's key)."""
    mine = create(stack, "sh -c 'echo alice-log-line; sleep 3600'")
    theirs = create(stack, "sh -c 'echo bob-secret-line; sleep 3600'",
                    nickname="bob-instance")
    alice_uuid = stack.create_user("alice", "AlicePass123")
    bob_uuid = stack.create_user("bob", "BobPass12345")
    stack.grant(alice_uuid, [mine])
    stack.grant(bob_uuid, [theirs])
    return mine, theirs, stack.user_key("alice", "AlicePass123")


def test_user_key_reads_own_detail(stack, alice_and_bob):
    # The report expected 403, but MCSManager 10.18.2 checks the grant in
    # this route and lets an owner read the detail with 200.
    mine, _, key = alice_and_bob
    resp = stack.api.get("/api/instance", key=key,
                         params={"uuid": mine, "daemonId": stack.daemon_id})
    assert ok(resp)["instanceUuid"] == mine


def test_user_key_profile_lists_own(stack, alice_and_bob):
    # MCSManager 10.18.2 fills GET /api/auth only for requests with
    # X-Requested-With (its web UI sends it); without it the route is 404.
    mine, _, key = alice_and_bob
    data = ok(stack.api.get("/api/auth/", key=key, xhr=True,
                            params={"advanced": "true"}))
    pairs = [(i["instanceUuid"], i["daemonId"]) for i in data["instances"]]
    assert pairs == [(mine, stack.daemon_id)]


def test_user_key_profile_needs_ajax(stack, alice_and_bob):
    _, _, key = alice_and_bob
    resp = stack.api.get("/api/auth/", key=key, params={"advanced": "true"})
    assert_failure(resp, 404, "[404] Not Found")


def test_user_key_reads_own_log(stack, alice_and_bob):
    mine, _, key = alice_and_bob
    open_running(stack, mine)
    stack.wait_output(mine, "alice-log-line")
    assert "alice-log-line" in stack.outputlog(mine, key=key)
    kill_stopped(stack, mine)


def test_user_key_other_log_refused(stack, alice_and_bob):
    _, theirs, key = alice_and_bob
    open_running(stack, theirs)
    stack.wait_output(theirs, "bob-secret-line")
    resp = stack.operate("outputlog", theirs, key=key)
    assert_failure(resp, 403, FORBIDDEN, secret=key, explained=True)
    assert "bob-secret-line" not in resp.text
    assert "bob-instance" not in resp.text
    kill_stopped(stack, theirs)


def test_user_key_other_files_refused(stack, alice_and_bob):
    # NOTE: the file manager is not built yet, so this only checks that
    # nothing about J comes back; MCSManager's guard returns 403 here.
    _, theirs, key = alice_and_bob
    resp = stack.api.get("/api/files/list", key=key,
                         params={"uuid": theirs, "daemonId": stack.daemon_id,
                                 "target": "/", "page": 0, "page_size": 50})
    assert resp.status_code in (403, 404), resp.text
    assert "bob" not in resp.text


# ----------------------------------- auto-restart after stop or kill

CRASH_COMMAND = ("sh -c 'trap \"exit 0\" INT TERM; while :; do if [ -e "
                 "crash.flag ]; then rm -f crash.flag; exit 7; fi; sleep 1; "
                 "done'")
CRASH_PATTERN = r"crash\.flag"


@pytest.fixture
def restarting(stack):
    """A running instance with eventTask.autoRestart on."""
    uuid = create(stack, CRASH_COMMAND,
                  eventTask={"autoRestart": True, "autoStart": False})
    open_running(stack, uuid)
    return uuid


def assert_stays_stopped(stack, uuid):
    started = stack.instance(uuid)["started"]
    seen = watch_status(stack, uuid, NO_RESTART_WATCH)
    assert set(seen) == {0}, seen
    assert stack.instance(uuid)["started"] == started
    assert daemon_pids(stack, CRASH_PATTERN) == []


def test_auto_restart_not_after_stop(stack, restarting):
    ok(stack.operate("stop", restarting))
    stack.wait_status(restarting, 0)
    assert_stays_stopped(stack, restarting)


def test_auto_restart_not_after_kill(stack, restarting):
    ok(stack.operate("kill", restarting))
    stack.wait_status(restarting, 0)
    assert_stays_stopped(stack, restarting)


def test_auto_restart_after_crash(stack, restarting):
    first = daemon_pids(stack, CRASH_PATTERN)
    (instance_cwd(stack, restarting) / "crash.flag").touch()

    def restarted():
        pids = daemon_pids(stack, CRASH_PATTERN)
        detail = stack.instance(restarting)
        return detail["status"] == 3 and pids and pids != first and detail
    detail = wait_for(restarted, 10, interval=0.2,
                      what="the instance to run again after exit code 7")
    assert detail["autoRestarted"] == 1
    assert "auto restart" in stack.outputlog(restarting)
    kill_stopped(stack, restarting)


# ------------------------------------------ stop that never finishes

STUBBORN_COMMAND = "sh -c 'trap \"\" INT TERM; while :; do sleep 1; done'"
STUBBORN_PATTERN = r"^sh -c trap"


def test_stop_ignored_stays_stopping(stack):
    uuid = create(stack, STUBBORN_COMMAND)
    open_running(stack, uuid)
    ok(stack.operate("stop", uuid))
    seen = watch_status(stack, uuid, 15)
    assert set(seen) == {1}, seen
    kill_stopped(stack, uuid)


def test_kill_while_stopping(stack):
    uuid = create(stack, STUBBORN_COMMAND)
    open_running(stack, uuid)
    ok(stack.operate("stop", uuid))
    time.sleep(1)
    assert status(stack, uuid) == 1
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0, timeout=5)
    assert daemon_pids(stack, STUBBORN_PATTERN) == []


def test_restart_force_kills_after_timeout(stack):
    uuid = create(stack, STUBBORN_COMMAND, stopTimeout=5)
    open_running(stack, uuid)
    [first] = daemon_pids(stack, STUBBORN_PATTERN)
    began = time.monotonic()
    ok(stack.operate("restart", uuid))
    wait_for(lambda: first not in daemon_pids(stack, STUBBORN_PATTERN), 15,
             interval=0.1, what=f"the first process {first} to end")
    waited = time.monotonic() - began
    assert 4 <= waited <= 8, f"force kill after {waited:.1f} s"

    def running_again():
        pids = daemon_pids(stack, STUBBORN_PATTERN)
        return status(stack, uuid) == 3 and pids
    [second] = wait_for(running_again, 10, interval=0.2,
                        what="the instance to run again")
    assert second != first
    kill_stopped(stack, uuid)


def test_killed_outside_reports_stopped(stack):
    uuid = create(stack, STUBBORN_COMMAND)
    open_running(stack, uuid)
    [pid] = daemon_pids(stack, STUBBORN_PATTERN)
    os.kill(pid, 9)
    stack.wait_status(uuid, 0, timeout=5)
    resp = stack.operate("stop", uuid)
    assert_failure(resp, 500, "Instance not running and cannot be stopped.")
    assert status(stack, uuid) == 0
    ok(stack.operate("kill", uuid))
    assert status(stack, uuid) == 0
    assert daemon_pids(stack, STUBBORN_PATTERN) == []


# ----------------------------------- kill ends children of a wrapper

WRAPPER_COMMAND = "sh -c 'sleep 7771 & sleep 7772 & wait'"
WRAPPER_CHILDREN = r"sleep 777[12]"


@pytest.mark.parametrize("pty", [False, True, None],
                         ids=["pipes", "pty", "default"])
def test_kill_ends_wrapper_children(stack, pty):
    if pty is None:
        uuid = create_default_terminal(stack, WRAPPER_COMMAND)
    else:
        uuid = create(stack, WRAPPER_COMMAND, pty=pty)
    # MCSManager's default terminal is a PTY, which Hearth runs as pipes.
    terminal = stack.instance(uuid)["config"]["terminalOption"]
    assert terminal["pty"] is (pty is not False)
    open_running(stack, uuid)
    wait_for(lambda: len(daemon_pids(stack, r"^sleep 777[12]")) == 2, 10,
             what="both sleep children")
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0, timeout=5)
    time.sleep(5)
    assert matching_processes(WRAPPER_CHILDREN) == []
    open_running(stack, uuid)
    kill_stopped(stack, uuid)


@pytest.mark.parametrize("pty", [False, True], ids=["pipes", "pty"])
def test_stop_ends_wrapper_children(stack, pty):
    uuid = create(stack, WRAPPER_COMMAND, pty=pty)
    open_running(stack, uuid)
    wait_for(lambda: len(daemon_pids(stack, r"^sleep 777[12]")) == 2, 10,
             what="both sleep children")
    ok(stack.operate("stop", uuid))
    stack.wait_status(uuid, 0)
    time.sleep(5)
    assert matching_processes(WRAPPER_CHILDREN) == []


# ------------------------------- overlapping power actions, no lock

def send_later(stack, action, uuid, delay, results):
    def run():
        time.sleep(delay)
        began = time.monotonic()
        resp = stack.operate(action, uuid)
        results.append((action, resp.status_code,
                        time.monotonic() - began))
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_stable(stack, uuid, quiet=5, timeout=60):
    """Wait until the status has not changed for quiet seconds."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = status(stack, uuid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
        time.sleep(0.2)
    pytest.fail(f"status still changing after {timeout} s (last {last})")


def test_overlapping_actions_settle(stack):
    uuid = create(stack, LOOP_COMMAND)
    open_running(stack, uuid)
    results = []
    threads = [send_later(stack, "restart", uuid, 0.0, results),
               send_later(stack, "stop", uuid, 0.2, results),
               send_later(stack, "kill", uuid, 0.4, results)]
    for thread in threads:
        thread.join(30)
    for action, _, seconds in results:
        assert seconds < 5, f"{action} took {seconds:.1f} s"
    assert wait_stable(stack, uuid) in (0, 3)
    if status(stack, uuid) == 3:
        kill_stopped(stack, uuid)
    for _ in range(2):
        open_running(stack, uuid)
        ok(stack.operate("stop", uuid))
        stack.wait_status(uuid, 0)


def test_concurrent_opens_spawn_once(stack):
    uuid = create(stack, LOOP_COMMAND)
    barrier = threading.Barrier(2)
    results = []

    def open_now():
        barrier.wait()
        began = time.monotonic()
        resp = stack.operate("open", uuid)
        results.append((resp, time.monotonic() - began))
    threads = [threading.Thread(target=open_now) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    codes = sorted(resp.status_code for resp, _ in results)
    assert codes == [200, 500]
    refused = next(resp for resp, _ in results if resp.status_code == 500)
    assert_failure(refused, 500,
                   "The instance is running and cannot be started again")
    assert max(seconds for _, seconds in results) < 5
    stack.wait_status(uuid, 3)
    assert len(daemon_pids(stack, r"^sh -c trap")) == 1
    kill_stopped(stack, uuid)
    open_running(stack, uuid)
    ok(stack.operate("stop", uuid))
    stack.wait_status(uuid, 0)


# ------------------------------------------ output decoding (GBK)

GBK_LINE = r"sh -c 'printf " + '"\\304\\343\\272\\303\\n"' + r"; sleep 3600'"
GBK_SPLIT = (r"sh -c 'printf " + '"\\304"; sleep 1; printf '
             + '"\\343\\272\\303\\n"' + r"; sleep 3600'")
UTF8_SPLIT = (r"sh -c 'printf " + '"\\344\\275"; sleep 1; printf '
              + '"\\240\\345\\245\\275\\n"' + r"; sleep 3600'")


def log_after_start(stack, uuid, wait=3):
    open_running(stack, uuid)
    time.sleep(wait)
    text = stack.outputlog(uuid)
    kill_stopped(stack, uuid)
    return text


@pytest.mark.parametrize("command,encoding", [
    (GBK_LINE, "gbk"), (GBK_SPLIT, "gbk"), (UTF8_SPLIT, "utf-8")],
    ids=["gbk", "gbk-split", "utf8-split"])
def test_output_decoded_once(stack, command, encoding):
    uuid = create(stack, command, oe=encoding)
    text = log_after_start(stack, uuid)
    assert text.count("你好\n") == 1, repr(text)


def test_output_invalid_bytes_replaced(stack):
    uuid = create(stack, GBK_LINE, oe="utf-8")
    text = log_after_start(stack, uuid)
    assert re.search("\ufffd+\n", text), repr(text)


def test_output_encoding_change_applies_later(stack):
    command = (r"sh -c 'while read x; do printf " + '"\\304\\343\\272\\303'
               + '\\n"' + r"; done'")
    uuid = create(stack, command, oe="gbk")
    open_running(stack, uuid)
    ok(stack.operate("command", uuid, params={"command": "one"}))
    stack.wait_output(uuid, "你好\n")
    ok(stack.api.put("/api/instance", key=stack.admin_key,
                     params={"uuid": uuid, "daemonId": stack.daemon_id},
                     json_body={"oe": "utf-8"}))
    ok(stack.operate("command", uuid, params={"command": "two"}))
    text = wait_for(lambda: re.search("\ufffd+\n", stack.outputlog(uuid)),
                    10, what="the line decoded as UTF-8").string
    assert text.count("你好\n") == 1, repr(text)
    kill_stopped(stack, uuid)


# ------------------------------------- line ending of console input

CAT_COMMAND = "sh -c 'cat > stdin.bin'"


@pytest.mark.parametrize("crlf,expected", [
    (1, b"list\nsay hi\n"), (2, b"list\r\nsay hi\r\n")],
    ids=["lf", "crlf"])
def test_command_line_ending(stack, crlf, expected):
    uuid = create(stack, CAT_COMMAND, crlf=crlf)
    path = instance_cwd(stack, uuid) / "stdin.bin"
    open_running(stack, uuid)
    ok(stack.operate("command", uuid, params={"command": "list"}))
    ok(stack.operate("command", uuid, params={"command": "say hi"}))
    wait_for(lambda: path.is_file() and len(path.read_bytes())
             >= len(expected), 10, what=f"{len(expected)} bytes in {path}")
    kill_stopped(stack, uuid)
    assert path.read_bytes() == expected


def test_start_command_newline_rejected(stack):
    uuid = create(stack, CAT_COMMAND)
    resp = stack.api.put("/api/instance", key=stack.admin_key,
                         params={"uuid": uuid, "daemonId": stack.daemon_id},
                         json_body={"startCommand": "sh -c 'sleep 100'\n"})
    message = assert_failure(resp, 500, "")
    assert "newline" in message
    assert stack.instance(uuid)["config"]["startCommand"] == CAT_COMMAND


# ------------------------------------------ ANSI colour sequences

ANSI_COMMAND = (r"sh -c 'printf " + '"\\033[36mINFO\\033[0m ready\\n'
                + '\\033[1;31mERROR\\033[m boom\\n"' + r"; sleep 3600'")
ANSI_TEXT = "\x1b[36mINFO\x1b[0m ready\n\x1b[1;31mERROR\x1b[m boom\n"


def assert_no_bare_csi(text):
    """Every "[..m" colour sequence must follow an ESC byte."""
    for match in re.finditer(r"\[[0-9;]*m", text):
        assert text[match.start() - 1:match.start()] == "\x1b", (
            f"bare {match.group()!r} at {match.start()} in {text!r}")


def test_ansi_outputlog_verbatim(stack):
    uuid = create(stack, ANSI_COMMAND)
    open_running(stack, uuid)
    text = stack.wait_output(uuid, "boom") and stack.outputlog(uuid)
    assert ANSI_TEXT in text, repr(text)
    assert_no_bare_csi(text)
    kill_stopped(stack, uuid)


def test_ansi_live_stream_verbatim(stack, terminals):
    uuid = create(stack, ANSI_COMMAND)
    term = terminals(stream_channel(stack, uuid))
    open_running(stack, uuid)
    term.wait_text("boom")
    time.sleep(0.5)
    assert ANSI_TEXT in term.text(), repr(term.text())
    assert_no_bare_csi(term.text())
    kill_stopped(stack, uuid)



def sequence_spans(data):
    """Return the (start, end) byte spans of the CSI sequences in data."""
    return [m.span() for m in re.finditer(rb"\x1b\[[0-9;]*[A-Za-z]", data)]


def test_ansi_outputlog_tail_never_splits(stack):
    # outputlog?size=N cuts the log at a byte offset; a cut inside a
    # sequence must move past it instead of leaving "[36m" behind.
    uuid = create(stack, ANSI_COMMAND)
    open_running(stack, uuid)
    stack.wait_output(uuid, "boom")
    full = stack.outputlog(uuid).encode()
    spans = sequence_spans(full)
    for span_start, span_end in spans:
        for cut in range(span_start + 1, span_end):
            size = len(full) - cut
            tail = ok(stack.operate("outputlog", uuid,
                                    params={"size": str(size)})).encode()
            start = len(full) - len(tail)
            assert full.endswith(tail)
            assert not any(s < start < e for s, e in spans), (
                f"size={size} starts inside a sequence: {tail[:12]!r}")
    kill_stopped(stack, uuid)


COLOUR_LINE = "\x1b[1;31mred\x1b[0m \x1b[36mcyan\x1b[0m line"
COLOUR_FLOOD = (r"sh -c 'i=0; while [ $i -lt 9000 ]; do printf "
                + '"\\033[1;31mred\\033[0m \\033[36mcyan\\033[0m line\\n"'
                + r"; i=$((i+1)); done; echo done; sleep 3600'")


def test_ansi_history_starts_whole_line(stack):
    # 9000 lines are more than the 256 KiB the daemon keeps, so the kept
    # history starts where older text was dropped: at a whole line, never
    # in the middle of a colour sequence.
    uuid = create(stack, COLOUR_FLOOD)
    open_running(stack, uuid)
    text = stack.wait_output(uuid, "done\n", timeout=60) and \
        stack.outputlog(uuid)
    lines = text.split("\n")
    assert lines[0] == COLOUR_LINE, repr(lines[0])
    assert_no_bare_csi(text)
    kill_stopped(stack, uuid)

# --------------------------------------- history on (re)connection

HISTORY_COMMAND = ("sh -c 'for i in $(seq 1 50); do echo line$i; done; "
                   "while read x; do echo \"got:$x\"; done'")
HISTORY_LINES = [f"line{i}" for i in range(1, 51)]


def history_lines(text):
    return [line for line in text.splitlines()
            if re.fullmatch(r"line\d+", line)]


def test_history_in_outputlog(stack):
    uuid = create(stack, HISTORY_COMMAND)
    open_running(stack, uuid)
    time.sleep(3)
    assert history_lines(stack.outputlog(uuid)) == HISTORY_LINES
    kill_stopped(stack, uuid)


def test_stream_channel_shape(stack):
    uuid = create(stack, HISTORY_COMMAND)
    data = stream_channel(stack, uuid)
    assert set(data) == {"password", "addr", "prefix", "remoteMappings"}
    assert data["addr"] == f"127.0.0.1:{stack.daemon_port}"
    assert data["prefix"] == ""
    assert data["remoteMappings"] == []


def test_stream_channel_other_refused(stack, alice_and_bob):
    _, theirs, key = alice_and_bob
    resp = stack.operate("stream_channel", theirs, key=key, method="POST")
    assert_failure(resp, 403, FORBIDDEN, secret=key, explained=True)


def test_history_on_reconnect(stack, terminals):
    uuid = create(stack, HISTORY_COMMAND)
    open_running(stack, uuid)
    time.sleep(3)
    channel = stream_channel(stack, uuid)
    first = terminals(channel)
    # The web UI loads the history through outputlog after each connect.
    assert history_lines(stack.outputlog(uuid)) == HISTORY_LINES
    first.close()
    second = terminals(channel)
    assert history_lines(stack.outputlog(uuid)) == HISTORY_LINES
    ok(stack.operate("command", uuid, params={"command": "after"}))
    second.wait_text("got:after")
    time.sleep(1)
    assert second.text().count("got:after") == 1
    assert history_lines(second.text()) == []
    kill_stopped(stack, uuid)


# ------------------------------------------------------ output flood

FLOOD_BYTES = 200_000_000
FLOOD_COMMAND = (f"sh -c 'yes 0123456789abcdef0123456789abcdef | head -c "
                 f"{FLOOD_BYTES}; echo END; sleep 3600'")
# The newest console text that outputlog returns (see docs/API.md).
OUTPUTLOG_CAP = 256 * 1024
TRUNCATED = "output truncated"


def timed_get(stack, path, params=None):
    began = time.monotonic()
    resp = stack.api.get(path, key=stack.admin_key, params=params)
    return resp, time.monotonic() - began


def test_flood_stays_responsive(stack, terminals):
    uuid = create(stack, FLOOD_COMMAND)
    term = terminals(stream_channel(stack, uuid))
    baseline = rss_kib(stack.daemon.pid)
    peak = baseline
    slowest = 0.0
    open_running(stack, uuid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for path, params in [(SYSTEM_ROUTE, None),
                             ("/api/instance", {"uuid": uuid,
                                                "daemonId":
                                                    stack.daemon_id})]:
            resp, seconds = timed_get(stack, path, params)
            ok(resp)
            slowest = max(slowest, seconds)
        peak = max(peak, rss_kib(stack.daemon.pid))
        if stack.outputlog(uuid).endswith("END\n"):
            break
        time.sleep(0.5)
    text = stack.outputlog(uuid)
    assert slowest < 2, f"slowest request took {slowest:.2f} s"
    assert peak - baseline < 200 * 1024, f"daemon RSS {baseline}->{peak} KiB"
    assert text.endswith("END\n"), repr(text[-200:])
    assert len(text.encode()) <= OUTPUTLOG_CAP
    assert TRUNCATED in term.text()
    began = time.monotonic()
    ok(stack.operate("kill", uuid))
    stack.wait_status(uuid, 0, timeout=5)
    assert time.monotonic() - began < 5
