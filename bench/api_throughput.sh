#!/bin/sh
# Requests per second of GET /api/service/remote_services_list (admin key
# in the X-Request-Api-Key header, one node registered), measured with
# `wrk -t2 -c8 -d10s` on loopback, next to a baseline server that returns
# a fixed JSON body for the same wrk settings on the same machine.
#
# Baseline: nginx when installed, else Hearth's own HTTP layer responding with a
# fixed body (bench/static_server.c), else a Node.js http server. The
# script prints which one it used.
set -eu
. "$(dirname "$0")/lib.sh"

WRK_ARGS="-t2 -c8 -d10s --latency"
BODY='{"status":200,"data":[],"time":0}'

# wrk_rps LOG: the Requests/sec figure of a wrk output.
wrk_rps() {
    awk '/^Requests\/sec:/ { print $2 }' "$1"
}

# wrk_errors LOG: the non-2xx and socket error lines of a wrk output.
wrk_errors() {
    grep -E 'Non-2xx|Socket errors' "$1" || true
}

start_stack
setup_stack

echo "== Hearth: GET /api/service/remote_services_list (key header)"
# shellcheck disable=SC2086 # WRK_ARGS must split into words
wrk $WRK_ARGS -H "X-Request-Api-Key: $API_KEY" \
    "$PANEL_URL/api/service/remote_services_list" >"$WORK/wrk-hearth.txt"
cat "$WORK/wrk-hearth.txt"
HEARTH_RPS=$(wrk_rps "$WORK/wrk-hearth.txt")
HEARTH_ERRORS=$(wrk_errors "$WORK/wrk-hearth.txt")
echo "panel VmRSS after the run: $(rss_kb "$PANEL_PID") kB"

BASE_PORT=$(free_port)
STATIC_BIN=$(dirname "$HEARTH_BIN")/bench_static
if command -v nginx >/dev/null 2>&1; then
    BASELINE="nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), fixed JSON body"
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    server {
        listen 127.0.0.1:$BASE_PORT;
        location / {
            default_type application/json;
            return 200 '$BODY';
        }
    }
}
NGINX
    start_bg baseline nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
elif [ -x "$STATIC_BIN" ]; then
    # Hearth's own HTTP layer with a fixed body: the ratio is then the share
    # of the HTTP stack's throughput that the API logic keeps.
    BASELINE="Hearth's HTTP layer (h2o 2.2.5) with a fixed JSON body"
    BASELINE="$BASELINE (nginx is not installed)"
    start_bg baseline "$STATIC_BIN" "$BASE_PORT"
else
    BASELINE="Node.js $(node --version) http server, fixed JSON body"
    BASELINE="$BASELINE (nginx and bench_static are not available)"
    start_bg baseline node -e "
const http = require('http');
const body = '$BODY';
http.createServer((req, res) => {
  res.writeHead(200, {'Content-Type': 'application/json',
                      'Content-Length': Buffer.byteLength(body)});
  res.end(body);
}).listen($BASE_PORT, '127.0.0.1', () => console.error('ready'));
"
fi
BASE_PID=$LAST_PID
i=0
until curl -s -o /dev/null "http://127.0.0.1:$BASE_PORT/"; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$BASE_PID" 2>/dev/null; then
        echo "bench: the baseline server did not start:" >&2
        cat "$WORK/baseline.log" >&2
        exit 1
    fi
    sleep 0.1
done

echo
echo "== Baseline: $BASELINE"
# shellcheck disable=SC2086
wrk $WRK_ARGS "http://127.0.0.1:$BASE_PORT/" >"$WORK/wrk-base.txt"
cat "$WORK/wrk-base.txt"
BASE_RPS=$(wrk_rps "$WORK/wrk-base.txt")

echo
echo "== Summary (wrk $WRK_ARGS, loopback, $(nproc) cores shared with wrk)"
echo "hearth panel, remote_services_list: $HEARTH_RPS req/s"
if [ -n "$HEARTH_ERRORS" ]; then
    echo "  errors: $HEARTH_ERRORS"
fi
echo "baseline, $BASELINE: $BASE_RPS req/s"
awk -v h="$HEARTH_RPS" -v b="$BASE_RPS" \
    'BEGIN { printf "hearth / baseline: %.2f\n", h / b }'
# MCSManager was not run here: its figure comes from a recorded run of
# panel 10.18.2 with the same wrk settings on a 2-core machine.
awk -v h="$HEARTH_RPS" \
    'BEGIN { printf "hearth / MCSManager 10.18.2 (9455 req/s, recorded " \
             "measurement, not this run): %.1f\n", h / 9455 }'
