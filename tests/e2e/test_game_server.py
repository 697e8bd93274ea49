"""The main end-to-end test: a real Minecraft server (flying-squid) run,
commanded, pinged and stopped through the panel's API."""

import pytest

from conftest import (DEMO_DIR, free_port, group_members, node_bin, ok,
                      ping, read_proc_stat, require_demo_modules, wait_for,
                      wait_ping)

LAUNCHER = DEMO_DIR / "launcher.js"
# flying-squid's `help` prints a page header and one line per command,
# seven commands a page in alphabetical order.
HELP_ANSWER = "Help, page 1 of"
HELP_LINE = "/bug: to bug report"
MOTD = "Hearth demo server"


@pytest.fixture
def game(stack):
    """A flying-squid instance on a free port, created through the API."""
    require_demo_modules()
    port = free_port()
    command = f"{node_bin()} {LAUNCHER} --port {port}"
    uuid = stack.create_instance(nickname="flying-squid",
                                 start_command=command,
                                 stop_command="stop",
                                 type="minecraft/java",
                                 pingConfig={"ip": "127.0.0.1",
                                             "port": port, "type": 1})
    return uuid, port


def run_cycle(stack, uuid, port, key_in, check_console):
    """Open, (talk to the console,) ping, stop; check nothing is left."""
    data = ok(stack.operate("open", uuid, key_in=key_in))
    assert data["instanceUuid"] == uuid
    stack.wait_status(uuid, 3)
    pid = stack.find_process(f"--port {port}")
    pgid = read_proc_stat(pid)[2]

    answer = wait_ping(port)
    assert answer["description"]["text"].startswith(MOTD), answer
    assert answer["players"]["online"] == 0
    assert answer["version"]["name"] == "1.21.4"

    if check_console:
        data = ok(stack.operate("command", uuid, key_in=key_in,
                                params={"command": "help"}))
        assert data == {"instanceUuid": uuid}
        stack.wait_output(uuid, HELP_LINE, timeout=20)
        log = stack.outputlog(uuid)
        assert HELP_ANSWER in log

    # stopCommand is "stop": flying-squid closes and exits by itself, well
    # before the daemon's stop timeout would force a SIGKILL.
    ok(stack.operate("stop", uuid, key_in=key_in))
    stack.wait_status(uuid, 0, timeout=20)
    assert "Server is closed." in stack.outputlog(uuid)
    wait_for(lambda: not group_members(pgid), 10,
             what=f"process group {pgid} of the game server to end")
    assert ping(port, timeout_ms=1000) is None


def test_game_server_through_api(stack, game):
    uuid, port = game
    for i, key_in in enumerate(["query", "header", "bearer"]):
        run_cycle(stack, uuid, port, key_in, check_console=(i == 0))
    detail = stack.instance(uuid)
    assert detail["started"] == 3


def test_game_server_console_each_carrier(stack, game):
    uuid, port = game
    for key_in in ["header", "bearer"]:
        run_cycle(stack, uuid, port, key_in, check_console=True)


def test_game_server_stopped_by_daemon_exit(stack, game):
    uuid, port = game
    ok(stack.operate("open", uuid))
    stack.wait_status(uuid, 3)
    wait_ping(port)
    pid = stack.find_process(f"--port {port}")
    pgid = read_proc_stat(pid)[2]
    # SIGTERM to the daemon must end the game server too; the fixture's
    # teardown checks the exit status and the descendants again.
    stack.daemon.stop_and_check()
    wait_for(lambda: not group_members(pgid), 10,
             what=f"process group {pgid} to end after the daemon exited")
