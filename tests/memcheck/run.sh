#!/bin/sh
# Runs a daemon and a panel under valgrind's memcheck through one life
# cycle (first start, node link, instance create, open, command, outputlog,
# stop, delete, refusals, SIGTERM) and fails on any memcheck error or
# definitely lost block. ASan builds cannot run under valgrind, so this
# takes the release build: HEARTH_BIN defaults to build/hearth.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HEARTH_BIN=${HEARTH_BIN:-$ROOT/build/hearth}
WORK=$(mktemp -d /tmp/hearth-memcheck.XXXXXX)
VALGRIND="valgrind --error-exitcode=3 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite -q"
PIDS=""

cleanup() {
    for pid in $PIDS; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_for FILE PATTERN: up to 60 s (valgrind starts slowly).
wait_for() {
    i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 600 ]; then
            echo "memcheck: \"$2\" never appeared in $1:" >&2
            cat "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
}

fail() {
    echo "memcheck: $*" >&2
    exit 1
}

DPORT=$(free_port)
PPORT=$(free_port)
mkdir -p "$WORK/demo"
# shellcheck disable=SC2086 # VALGRIND must split into words
$VALGRIND "$HEARTH_BIN" daemon --data "$WORK/daemon" \
    --listen "127.0.0.1:$DPORT" 2>"$WORK/daemon.log" &
DPID=$!
PIDS="$DPID"
wait_for "$WORK/daemon.log" "daemon ready"
# shellcheck disable=SC2086
$VALGRIND "$HEARTH_BIN" panel --data "$WORK/panel" \
    --listen "127.0.0.1:$PPORT" --local-daemon "$WORK/daemon" \
    --demo "$WORK/demo" >"$WORK/panel.out" 2>"$WORK/panel.log" &
PPID_=$!
PIDS="$PIDS $PPID_"
wait_for "$WORK/panel.log" "created the demo instance"

KEY=$(awk '/API key/ { print $3 }' "$WORK/panel.out")
NODE=$(sed -n 's/.*remote_uuid=\([0-9a-f]*\).*/\1/p' "$WORK/panel.out")
API="http://127.0.0.1:$PPORT/api"
H="X-Request-Api-Key: $KEY"

curl -sf -H "$H" "$API/service/remote_services_list" >/dev/null ||
    fail "node list failed"
INSTANCE=$(curl -sf -H "$H" -H 'Content-Type: application/json' \
    -d '{"nickname":"memcheck","startCommand":"sh -c \"while read l; do echo got:$l; done\"","stopCommand":"^C","terminalOption":{"pty":false}}' \
    "$API/instance?daemonId=$NODE" |
    /usr/bin/python3 -c 'import json, sys
print(json.load(sys.stdin)["data"]["instanceUuid"])')
Q="uuid=$INSTANCE&daemonId=$NODE"
curl -sf -H "$H" "$API/protected_instance/open?$Q" >/dev/null ||
    fail "open failed"
curl -sf -H "$H" "$API/protected_instance/command?$Q&command=hello" \
    >/dev/null || fail "command failed"
i=0
until curl -sf -H "$H" "$API/protected_instance/outputlog?$Q" |
    grep -q got:hello; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || fail "the command's output never appeared"
    sleep 0.1
done
curl -s -H "Authorization: Bearer wrong.key" "$API/auth/search" >/dev/null
curl -s -H 'Content-Type: application/json' -d '{not json' \
    -H "$H" "$API/auth" >/dev/null
curl -sf -H "$H" "$API/protected_instance/stop?$Q" >/dev/null ||
    fail "stop failed"
i=0
until curl -sf -H "$H" "$API/instance?$Q" | grep -q '"status":0,"config"'; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || fail "the instance never stopped"
    sleep 0.1
done
curl -sf -X DELETE -H "$H" -H 'Content-Type: application/json' \
    -d "{\"uuids\":[\"$INSTANCE\"],\"deleteFile\":true}" \
    "$API/instance?daemonId=$NODE" >/dev/null || fail "delete failed"

status=0
kill -TERM "$PPID_"
wait "$PPID_" || status=$?
[ "$status" -eq 0 ] || { cat "$WORK/panel.log" >&2; fail "panel: exit $status"; }
kill -TERM "$DPID"
wait "$DPID" || status=$?
[ "$status" -eq 0 ] || { cat "$WORK/daemon.log" >&2; fail "daemon: exit $status"; }
PIDS=""
echo "memcheck: daemon and panel clean (no errors, nothing definitely lost)"
