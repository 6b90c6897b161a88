#!/usr/bin/env bash
# Idle RSS of `serve`: start it, wait for /healthz, wait 2 s, print VmRSS and VmHWM in kB.
# usage: bench/idle_rss.sh BINARY PORT [CONFIG]   (no CONFIG = the built-in example)
set -euo pipefail
bin=$1 port=$2 config=${3:-}
data=$(mktemp -d)
args=(serve --db "$data/db.sqlite" --listen "127.0.0.1:$port")
[[ -n $config ]] && args+=(--config "$config")
"$bin" "${args[@]}" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 200); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
sleep 2
awk '/^VmRSS|^VmHWM/ {printf "%s %s ", $1, $2} END {print ""}' "/proc/$pid/status"
