#!/usr/bin/env bash
# Smoke test of the installed zart-tui in a real terminal (tmux): a journal made by `zart demo`, then
# keys sent to the app and its screen checked. Prints the executions screen as captured.
#   tests/scripts/tui_smoke.sh          (needs tmux, and zart / zart-tui on PATH)
set -euo pipefail

work=$(mktemp -d)
session="zart-smoke-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT

screen() { tmux capture-pane -p -t "$session"; }

wait_for() {  # wait_for PATTERN [what]: the screen shows PATTERN within 30 s
    local deadline=$((SECONDS + 30))
    until screen | grep -q -- "$1"; do
        if ((SECONDS > deadline)); then
            echo "FAIL: the screen never showed ${2:-$1}" >&2
            screen >&2
            exit 1
        fi
        sleep 0.2
    done
}

key() {  # one key at a time: an escape followed at once by a key reads as alt+key in a terminal
    tmux send-keys -t "$session" "$@"
    sleep 0.4
}

cd "$work"
ZART_WORKERS=2 zart demo --execution-id smoke-1 >/dev/null
ZART_WORKERS=2 zart demo --execution-id smoke-2 >/dev/null

tmux new-session -d -s "$session" -x 132 -y 30 "cd '$work' && zart-tui"
wait_for "smoke-2" "the executions table"
wait_for "completed 2" "the counts per status"
wait_for "journal: file" "how the journal is read"
captured=$(screen)

key Enter
wait_for "check-service#2" "the execution screen's steps"
wait_for "worker-" "the timeline"

key Enter
wait_for "captured output" "the step screen"
key Escape
wait_for "check-service#2" "the execution screen again"
key Escape
wait_for "journal: file" "the executions screen again"

key "?"
wait_for "Everywhere" "the help screen"
key Escape

key "/"
key "smoke-1"
key Enter
wait_for "search: smoke-1" "the search"
if screen | grep -q "smoke-2"; then echo "FAIL: the search kept smoke-2" >&2; exit 1; fi

key q
deadline=$((SECONDS + 10))
while tmux has-session -t "$session" 2>/dev/null; do
    if ((SECONDS > deadline)); then echo "FAIL: q did not quit" >&2; exit 1; fi
    sleep 0.2
done

echo "$captured" | sed -e 's/[[:space:]]*$//' | awk 'NF || blank++ < 1'
echo "tui smoke: OK"
