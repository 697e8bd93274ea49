#!/bin/sh
# Time of GET /api/protected_instance/open (admin key) on an instance that
# runs a `sh -c` read loop, and of the stop that follows, over 5 trials.
# MCSManager sleeps 2 s inside every open; Hearth starts at once.
set -eu
. "$(dirname "$0")/lib.sh"

TRIALS=5

start_stack
setup_stack

"$PY" - "$PANEL_URL" "$API_KEY" "$DAEMON_ID" "$TRIALS" <<'PYEOF'
import statistics
import sys
import time

import requests

base, key, daemon_id, trials = sys.argv[1:5]
hdr = {"X-Request-Api-Key": key}
http = requests.Session()


def data(resp):
    if resp.status_code != 200:
        sys.exit(f"bench: {resp.request.method} {resp.url}: "
                 f"HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json()["data"]


created = data(http.post(
    f"{base}/api/instance", headers=hdr, params={"daemonId": daemon_id},
    json={"nickname": "bench-echo",
          "startCommand": 'sh -c "while read l; do echo got:$l; done"',
          "stopCommand": "^C", "cwd": "", "type": "universal",
          "processType": "general", "terminalOption": {"pty": False}}))
query = {"uuid": created["instanceUuid"], "daemonId": daemon_id}


def status():
    return data(http.get(f"{base}/api/instance", headers=hdr,
                         params=query))["status"]


def wait_status(wanted, since):
    while True:
        if status() == wanted:
            return (time.perf_counter() - since) * 1000
        if time.perf_counter() - since > 30:
            sys.exit(f"bench: status {wanted} not reached within 30 s")
        time.sleep(0.002)


opens = []
for trial in range(1, int(trials) + 1):
    t0 = time.perf_counter()
    data(http.get(f"{base}/api/protected_instance/open", headers=hdr,
                  params=query))
    open_ms = (time.perf_counter() - t0) * 1000
    running_ms = wait_status(3, t0)
    t1 = time.perf_counter()
    data(http.get(f"{base}/api/protected_instance/stop", headers=hdr,
                  params=query))
    stop_ms = (time.perf_counter() - t1) * 1000
    stopped_ms = wait_status(0, t1)
    opens.append(open_ms)
    print(f"trial {trial}: open HTTP {open_ms:.1f} ms; status=3 seen "
          f"{running_ms:.1f} ms after sending /open; stop HTTP "
          f"{stop_ms:.1f} ms; status=0 seen {stopped_ms:.1f} ms after /stop")

print(f"open: median {statistics.median(opens):.1f} ms, "
      f"min {min(opens):.1f} ms, max {max(opens):.1f} ms over {trials} trials")
print("MCSManager 10.18.2 (recorded measurement, not this run): open "
      "2009-2013 ms, because the daemon sleeps 2 s before every start")
PYEOF
