# Helpers sourced by the bench scripts. They start a daemon and a panel of
# the release build on free loopback ports in a temporary folder. They set
# them up with an admin, API keys on, the admin's key and the node
# registered, and stop everything on exit.

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HEARTH_BIN=${HEARTH_BIN:-$ROOT/build/hearth}
PY=/usr/bin/python3

if [ ! -x "$HEARTH_BIN" ]; then
    echo "bench: $HEARTH_BIN not found; run \`make build\` first" >&2
    exit 1
fi

WORK=$(mktemp -d /tmp/hearth-bench.XXXXXX)
BG_PIDS=""

cleanup() {
    for pid in $BG_PIDS; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $BG_PIDS; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_bg NAME COMMAND...: run COMMAND in the background, stderr to
# $WORK/NAME.log; the pid is in $LAST_PID.
start_bg() {
    name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    LAST_PID=$!
    BG_PIDS="$BG_PIDS $LAST_PID"
}

# wait_ready NAME PID: wait up to 30 s for a "ready" line in NAME's log.
wait_ready() {
    i=0
    while ! grep -q ready "$WORK/$1.log" 2>/dev/null; do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "bench: $1 exited before it was ready:" >&2
            cat "$WORK/$1.log" >&2
            exit 1
        fi
        i=$((i + 1))
        if [ "$i" -gt 300 ]; then
            echo "bench: $1 logged no \"ready\" line within 30 s" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# start_stack: sets DAEMON_PORT, PANEL_PORT, DAEMON_PID, PANEL_PID, PANEL_URL.
start_stack() {
    DAEMON_PORT=$(free_port)
    PANEL_PORT=$(free_port)
    start_bg daemon "$HEARTH_BIN" daemon --data "$WORK/daemon" \
        --listen "127.0.0.1:$DAEMON_PORT"
    DAEMON_PID=$LAST_PID
    start_bg panel "$HEARTH_BIN" panel --data "$WORK/panel" \
        --listen "127.0.0.1:$PANEL_PORT"
    PANEL_PID=$LAST_PID
    wait_ready daemon "$DAEMON_PID"
    wait_ready panel "$PANEL_PID"
    PANEL_URL="http://127.0.0.1:$PANEL_PORT"
}

# setup_stack: sets API_KEY and DAEMON_ID.
setup_stack() {
    out=$("$PY" - "$PANEL_URL" "$WORK/daemon" "$DAEMON_PORT" <<'PYEOF'
import json
import sys
import time

import requests

base, daemon_dir, daemon_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
xhr = {"X-Requested-With": "XMLHttpRequest"}


def data(resp):
    body = resp.json()
    if resp.status_code != 200:
        sys.exit(f"bench: {resp.request.method} {resp.url}: "
                 f"HTTP {resp.status_code} {resp.text[:300]}")
    return body["data"]


s = requests.Session()
data(s.post(f"{base}/api/auth/install",
            json={"username": "admin", "password": "AdminPass123"}))
token = data(s.get(f"{base}/api/auth/token", headers=xhr))
data(s.put(f"{base}/api/overview/setting", params={"token": token},
           headers=xhr, json={"enableApiKey": True}))
key = data(s.put(f"{base}/api/auth/api", params={"token": token},
                 headers=xhr, json={"enable": True}))
with open(f"{daemon_dir}/Config/global.json") as f:
    daemon_key = json.load(f)["key"]
hdr = {"X-Request-Api-Key": key}
node = data(requests.post(f"{base}/api/service/remote_service", headers=hdr,
                          json={"ip": "127.0.0.1", "port": daemon_port,
                                "apiKey": daemon_key, "remarks": "bench"}))
deadline = time.monotonic() + 30
while True:
    nodes = data(requests.get(f"{base}/api/service/remote_services_list",
                              headers=hdr))
    if any(n["uuid"] == node and n["available"] for n in nodes):
        break
    if time.monotonic() > deadline:
        sys.exit("bench: the node did not become available within 30 s")
    time.sleep(0.1)
print(key, node)
PYEOF
) || exit 1
    API_KEY=${out% *}
    DAEMON_ID=${out#* }
}

# rss_kb PID: the process's resident set size in kB (VmRSS).
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
