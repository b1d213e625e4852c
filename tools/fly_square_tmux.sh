#!/usr/bin/env bash
# Fly the square from the keyboard: `qiki run --serve` (virtual rig, lockstep paced to real
# time) in one tmux window, `qiki console` in another, the keys sent with `tmux send-keys`
# as an operator would type them (docs/console.md). Exits 0 once the console shows all
# four waypoints reached, 1 otherwise. Leaves nothing running.
#
#   tools/fly_square_tmux.sh            # run it
#   KEEP=1 tools/fly_square_tmux.sh     # leave the tmux session open (tmux attach -t qiki-fly)
#   RIG=my_rig.yaml PORT=8766 tools/fly_square_tmux.sh
#
# The controlling console must send a heartbeat within the rig's console.heartbeat_timeout_s
# (default 0.3 s). On a heavily loaded machine (load average 15 on 2 cores) the console
# process was descheduled for up to 0.36 s and lost the lock (link-loss action: disarm);
# there, use a rig with `console: {heartbeat_timeout_s: 0.4}` (the most a rig allows).
set -euo pipefail
cd "$(dirname "$0")/.."
QIKI=${QIKI:-$PWD/.venv/bin/qiki}
PORT=${PORT:-8765}
S=${SESSION:-qiki-fly}
RIG=${RIG:-rigs/virtual.yaml}
MISSION=${MISSION:-missions/square.yaml}
command -v tmux >/dev/null || { echo "tmux is not installed (apt-get install tmux)"; exit 2; }

cleanup() { [ -n "${KEEP:-}" ] || tmux kill-session -t "$S" 2>/dev/null || true; }
trap cleanup EXIT
tmux kill-session -t "$S" 2>/dev/null || true
tmux new-session -d -s "$S" -n serve -x 160 -y 50 \
    "$QIKI run --serve --listen 127.0.0.1:$PORT --rig $RIG --mission $MISSION --no-progress; sleep 3"
# wait for the gateway
for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    sleep 0.2
done
tmux new-window -t "$S" -n console "$QIKI console ws://127.0.0.1:$PORT/ws"
screen() { tmux capture-pane -p -t "$S:console"; }
wait_for() {  # wait_for TEXT SECONDS
    local deadline=$((SECONDS + $2))
    until screen | grep -q -- "$1"; do
        [ $SECONDS -lt $deadline ] || { echo "timed out waiting for '$1'"; screen; return 1; }
        sleep 0.2
    done
}
wait_for "IDLE" 30
tmux send-keys -t "$S:console" c                 # request control
wait_for "(you)" 10
tmux send-keys -t "$S:console" a                 # arm: press a, the bar fills for 1 s ...
sleep 1.3
tmux send-keys -t "$S:console" y                 # ... then confirm with y (within 3 s)
wait_for " ARMED " 10
tmux send-keys -t "$S:console" m                 # mission start
wait_for " ACTIVE " 10
wait_for "wp 1/4" 60
wait_for "wp 4/4" 240
screen
tmux send-keys -t "$S:console" d                 # disarm
wait_for " IDLE " 10
echo "square flown: 4/4 waypoints reached"
tmux send-keys -t "$S:console" q
tmux send-keys -t "$S:serve" C-c
sleep 2
