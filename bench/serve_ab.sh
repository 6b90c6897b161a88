#!/bin/bash
# Alternates the old and new serve under the same wrk load; prints reports/s and latency.
set -u
OLD=$1; NEW=$2; ROUNDS=${3:-3}
for r in $(seq 1 $ROUNDS); do
  for which in old new; do
    bin=$OLD; [ $which = new ] && bin=$NEW
    d=$(mktemp -d)
    FAILOVER_NOTIFY_DATA=$d RUST_LOG=warn $bin serve --listen 127.0.0.1:18090 > $d/out.log 2>$d/err.log &
    pid=$!
    for i in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:18090/healthz && break; sleep 0.05; done
    out=$(wrk -t2 -c64 -d10s --latency -s "$(dirname "$0")/report.lua" http://127.0.0.1:18090)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
    echo "round $r $which rps=$rps p50=$p50 p99=$p99 non2xx=${non2xx:-0}"
    kill $pid; wait $pid 2>/dev/null; rm -rf $d
  done
done
