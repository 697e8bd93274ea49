#!/bin/sh
# Resident memory (VmRSS from /proc) of an idle daemon and an idle panel,
# 5 s after both logged "ready", with nothing configured, compared with
# MCSManager's figures for the same moment.
set -eu
. "$(dirname "$0")/lib.sh"

# MCSManager panel 10.18.2 and daemon 4.18.2 on Node.js 20, 5 s after
# start, idle, nothing configured (`ps -o rss`). These come from a recorded
# measurement, not from this run.
MCSM_DAEMON_KB=94220
MCSM_PANEL_KB=91240

start_stack
sleep 5
DAEMON_KB=$(rss_kb "$DAEMON_PID")
PANEL_KB=$(rss_kb "$PANEL_PID")

echo "== Idle RSS 5 s after start (VmRSS, kB)"
echo "hearth daemon: $DAEMON_KB kB"
echo "hearth panel:  $PANEL_KB kB"
echo "MCSManager (recorded measurement, not this run): daemon" \
    "$MCSM_DAEMON_KB kB, panel $MCSM_PANEL_KB kB (about 95 MB each)"
awk -v d="$DAEMON_KB" -v p="$PANEL_KB" -v md="$MCSM_DAEMON_KB" \
    -v mp="$MCSM_PANEL_KB" 'BEGIN {
    printf "daemon: MCSManager / hearth = %.1f\n", md / d
    printf "panel:  MCSManager / hearth = %.1f\n", mp / p
    printf "both:   MCSManager / hearth = %.1f\n", (md + mp) / (d + p)
}'
