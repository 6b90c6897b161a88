#!/bin/bash
# The dashboard's server time with a long history: fills a fresh SQLite store with 100,000
# events through the API (10,000 clusters, every report a new event), signs in, then times
# the Now page (the last 24 h: all 100,000 events are in it, the newest 500 shown), two
# events' pages, the Windows week and month (a customer's weekly window: every occurrence
# covers the 10,000 clusters) and the first and last page of Clusters (100 a page), each
# with wrk on one connection for 10 s.
# Usage: bench/dashboard.sh target/release/failover-notify
set -u
BIN=$(readlink -f "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$W"' EXIT
{
  printf '[events]\nflapping_count = 1000\n\n[[customers]]\nname = "acme"\n\n'
  printf '[[channels]]\nname = "file"\nkind = "log"\npath = "%s"\n\n[[routes]]\nchannels = ["file"]\n\n' "$W/deliveries.log"
  printf '[[keys]]\nname = "acme-nodes"\ncustomer = "acme"\nhash = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"\n\n'
  printf '[[windows]]\nname = "weekly"\ncustomer = "acme"\ndays = ["sun"]\nstart = "02:00"\nduration = "2h"\n\n'
  for i in $(seq 0 9999); do printf '[[clusters]]\nname = "c%d"\ncustomer = "acme"\nnodes = ["n%da", "n%db"]\n' $i $i $i; done
} > "$W/inventory.toml"
PORT=$((20000 + RANDOM % 20000))
URL=http://127.0.0.1:$PORT
RUST_LOG=warn "$BIN" serve --config "$W/inventory.toml" --db "sqlite://$W/db.sqlite" --listen 127.0.0.1:$PORT 2>"$W/err" &
PID=$!
for _ in $(seq 1 200); do curl -s -o /dev/null $URL/healthz && break; sleep 0.05; done
start=$(date +%s.%N)
LIMIT=100000 wrk -t1 -c32 -d600s -s "$HERE/fill.lua" $URL > "$W/fill.out" &
FILL=$!
newest() { curl -s -H 'x-api-key: secret' "$URL/v1/events?limit=1" | grep -o '"id":"[0-9]*"' | head -1 | tr -dc 0-9; }
# Until the fill's reports are all in (a report or two may merge: fewer events than reports).
last=0
while sleep 2; do
  now=$(newest); [ -n "$now" ] || continue
  [ "$now" -ge 99000 ] && [ "$now" = "$last" ] && break
  kill -0 $FILL 2>/dev/null || { echo "wrk ended before 100,000 reports: $now events"; exit 1; }
  last=$now
done
kill $FILL; wait $FILL 2>/dev/null
printf 'filled %d events in %.1f s\n' "$(newest)" "$(echo "$(date +%s.%N) - $start" | bc)"
# Sign in as a browser does: the form's CSRF cookie, then the key.
csrf=$(curl -s -c "$W/jar" $URL/ui/signin | grep -o 'name="csrf" value="[^"]*"' | cut -d'"' -f4)
curl -s -b "$W/jar" -c "$W/jar" -o /dev/null -d "key=secret&csrf=$csrf" $URL/ui/signin
COOKIE="failover_session=$(awk '$6 == "failover_session" {print $7}' "$W/jar")"
for page in "/ui/now" "/ui/events/50000" "/ui/events/$(newest)" "/ui/windows" "/ui/windows?view=month" "/ui/clusters" "/ui/clusters?page=100"; do
  code=$(curl -s -o "$W/page" -w '%{http_code}' -H "Cookie: $COOKIE" "$URL$page")
  printf '%-24s %s %6d bytes  ' "$page" "$code" "$(wc -c < "$W/page")"
  wrk -t1 -c1 -d10s --latency -H "Cookie: $COOKIE" "$URL$page" |
    awk '/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {printf "rps=%s p50=%s p99=%s\n", r, p50, p99}'
done
