"""The panel's first-start setup when the local daemon is not reachable
at first: the demo instance is created on a later start."""

import re

from conftest import DEMO_DIR, HearthProcess, free_port, wait_for

NOT_CREATED = "demo instance: not created yet"


def start(args, name, log_dir):
    proc = HearthProcess(args, name, log_dir)
    proc.start()
    return proc


def stop(proc):
    proc.check_stopped(*proc.stop())


def test_demo_created_on_later_start(tmp_path):
    daemon_dir = tmp_path / "daemon"
    panel_dir = tmp_path / "panel"
    first_run = panel_dir / "first-run.txt"
    daemon_args = ["daemon", "--data", str(daemon_dir), "--listen",
                   f"127.0.0.1:{free_port()}"]
    panel_args = ["panel", "--data", str(panel_dir), "--listen",
                  f"127.0.0.1:{free_port()}", "--local-daemon",
                  str(daemon_dir), "--demo", str(DEMO_DIR)]

    # The daemon writes its key and port, then is stopped, so the panel's
    # first start registers a node that does not respond.
    stop(start(daemon_args, "daemon-1", tmp_path))
    panel = start(panel_args, "panel-1", tmp_path)
    wait_for(lambda: first_run.exists(), 10, what="first-run.txt")
    stop(panel)
    first = first_run.read_text()
    assert NOT_CREATED in first
    key = re.search(r"API key:\s+(\w+)", first).group(1)
    password = re.search(r"password:\s+(\S+)", first).group(1)

    daemon = start(daemon_args, "daemon-2", tmp_path)
    panel = start(panel_args, "panel-2", tmp_path)
    try:
        panel.wait_output(r"The demo instance is ready")
        second = first_run.read_text()
        assert NOT_CREATED not in second
        assert re.search(r"demo instance: [0-9a-f]{32}", second)
        assert f"apikey={key}" in second
        assert password in second
        # The password was printed once, at the first start.
        assert password not in panel.output()
    finally:
        stop(panel)
        stop(daemon)
