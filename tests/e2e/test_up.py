"""`hearth up`: the single-machine start with the demo game server.

`hearth up` listens on the default ports 127.0.0.1:23333 (panel) and
127.0.0.1:24444 (daemon); the test checks first that both are free.
"""

import re
import shlex
import socket
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from conftest import (DEMO_DIR, HTTP_TIMEOUT, HearthProcess, descendants,
                      envelope, group_members, hearth_bin, ok, ping,
                      process_cmdline, read_proc_stat, require_demo_modules,
                      wait_for, wait_ping)

PANEL_PORT = 23333
DAEMON_PORT = 24444


def port_in_use(port):
    """Return True when a listener is bound to 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Connections of an earlier run in TIME_WAIT do not stop a server
        # that sets SO_REUSEADDR, so they must not count here either.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def parse_curl(line):
    """Turn a printed curl command into (method, url, headers, body)."""
    words = shlex.split(line)
    assert words[0] == "curl", f"not a curl command: {line!r}"
    method, url, headers, body = None, None, {}, None
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-X", "--request"):
            method = words[i + 1]
            i += 2
        elif word in ("-H", "--header"):
            name, _, value = words[i + 1].partition(":")
            headers[name.strip()] = value.strip()
            i += 2
        elif word in ("-d", "--data", "--data-raw", "--json"):
            body = words[i + 1]
            if word == "--json":
                headers.setdefault("Content-Type", "application/json")
            i += 2
        elif word.startswith("http://") or word.startswith("https://"):
            url = word
            i += 1
        elif word.startswith("-"):
            # Output flags such as -s, -i, -sS take no value.
            i += 1
        else:
            pytest.fail(f"unexpected word {word!r} in the curl line "
                        f"{line!r}", pytrace=False)
    assert url is not None, f"no URL in the curl line {line!r}"
    if method is None:
        method = "POST" if body is not None else "GET"
    return method, url, headers, body


@pytest.fixture
def up(tmp_path):
    require_demo_modules()
    for port in (PANEL_PORT, DAEMON_PORT):
        if port_in_use(port):
            pytest.fail(f"127.0.0.1:{port} is in use (another `hearth up` "
                        f"or MCSManager?); the `hearth up` test needs it "
                        f"free.", pytrace=False)
    data = tmp_path / "hearth-data"
    proc = HearthProcess(["up", "--data", str(data), "--demo",
                          str(DEMO_DIR)], "up", tmp_path)
    proc.start(wait_ready=False)
    try:
        yield proc, data
    finally:
        proc.stop_and_check()


def test_up_help_mentions_up():
    result = subprocess.run([hearth_bin(), "--help"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0
    assert "hearth up" in result.stdout


def test_up_prints_working_curl_line(up):
    proc, data = up
    match = proc.wait_output(r"(?m)^\s*(curl .*)$", timeout=60)
    line = match.group(1).strip()
    method, url, headers, body = parse_curl(line)
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port == PANEL_PORT
    assert parts.path == "/api/protected_instance/open"

    # The same facts are written to the first-run file.
    first_run = data / "panel" / "first-run.txt"
    assert first_run.is_file(), f"{first_run} missing"
    assert line in first_run.read_text()

    # Run exactly the command that was printed.
    resp = requests.request(method, url, headers=headers, data=body,
                            timeout=HTTP_TIMEOUT)
    body_json = envelope(resp)
    assert resp.status_code == 200, resp.text
    assert body_json["status"] == 200

    query = parse_qs(parts.query)
    uuid = query["uuid"][0]
    assert body_json["data"]["instanceUuid"] == uuid

    # Find the key the same way a user would: in the curl line.
    key = headers.get("X-Request-Api-Key") or query.get("apikey", [None])[0]
    if key is None:
        auth = headers.get("Authorization", "")
        key = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
    assert key, f"no API key in the curl line {line!r}"
    daemon_id = (query.get("daemonId") or query.get("daemon_id")
                 or query.get("remote_uuid"))[0]
    base = f"http://127.0.0.1:{PANEL_PORT}"
    detail = ok(requests.get(f"{base}/api/instance", timeout=HTTP_TIMEOUT,
                             params={"uuid": uuid, "daemonId": daemon_id,
                                     "apikey": key}))
    command = detail["config"]["startCommand"]
    assert "launcher.js" in command, command
    port_match = re.search(r"--port[ =](\d+)", command)
    game_port = int(port_match.group(1)) if port_match else 25565

    answer = wait_ping(game_port)
    assert answer["version"]["name"] == "1.21.4"

    # Stop the game server through the API, then `up` itself.
    game_pid = wait_for(
        lambda: next((p for p in _descendants_running(proc.pid,
                                                      "launcher.js")), None),
        10, what="the demo game server process")
    pgid = read_proc_stat(game_pid)[2]
    ok(requests.get(f"{base}/api/protected_instance/stop",
                    timeout=HTTP_TIMEOUT,
                    params={"uuid": uuid, "daemonId": daemon_id,
                            "apikey": key}))
    wait_for(lambda: not group_members(pgid), 30,
             what="the demo game server to exit after stop")
    assert ping(game_port, timeout_ms=1000) is None


def test_up_prints_admin_password(up):
    proc, data = up
    proc.wait_output(r"(?m)^\s*curl ", timeout=60)
    text = (data / "panel" / "first-run.txt").read_text()
    assert "admin" in text
    assert re.search(r"[0-9a-f]{32}", text), "no API key in first-run.txt"


def test_up_second_start_keeps_data(up):
    proc, data = up
    proc.wait_output(r"(?m)^\s*curl ", timeout=60)
    proc.stop_and_check()
    first = (data / "panel" / "first-run.txt").read_text()
    proc.start(wait_ready=False)
    # The second start finds the admin and the demo instance in place.
    wait_for(lambda: _panel_answers(), 60, what="the panel to answer")
    assert (data / "panel" / "first-run.txt").read_text() == first


def _panel_answers():
    try:
        resp = requests.get(f"http://127.0.0.1:{PANEL_PORT}/api/auth/status",
                            timeout=5)
    except requests.ConnectionError:
        return False
    return resp.status_code == 200 and resp.json()["data"]["isInstall"]


def _descendants_running(root, pattern):
    return [pid for pid in descendants(root)
            if pattern in process_cmdline(pid)]
