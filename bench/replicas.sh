#!/bin/bash
# Side by side in one run: `serve` on SQLite, one replica on PostgreSQL, two replicas on one
# PostgreSQL (a wrk per replica, at once), each with a fresh database; then the drain of
# 10,000 pending log deliveries by one and by two replicas. Usage:
#   bench/replicas.sh target/release/failover-notify [ROUNDS]
# Needs PostgreSQL (initdb, pg_ctl, psql) and wrk. Runs the server as `nobody` when root.
set -u
BIN=$(readlink -f "$1"); ROUNDS=${2:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
PGBIN=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
W=$(mktemp -d); chmod 755 "$W"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
PGPORT=$((20000 + RANDOM % 20000))
mkdir "$W/pg"; [ "$(id -u)" = 0 ] && chown nobody "$W/pg"
as_pg "$PGBIN/initdb" -D "$W/pg/data" -U postgres --auth=trust -N -E UTF8 --locale=C >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -c unix_socket_directories='' -c max_connections=200" start >/dev/null
trap 'as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate stop >/dev/null; rm -rf "$W"' EXIT
PSQL=$(command -v psql || echo "$PGBIN/psql")
psql() { "$PSQL" -h 127.0.0.1 -p $PGPORT -U postgres -qAt "$@"; }

inventory() { # $1 = log file
  printf '[[customers]]\nname = "acme"\n\n[[channels]]\nname = "file"\nkind = "log"\npath = "%s"\n\n[[routes]]\nchannels = ["file"]\n\n' "$1"
  printf '[[keys]]\nname = "acme-nodes"\ncustomer = "acme"\nhash = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"\n\n'
  for i in $(seq 0 9999); do printf '[[clusters]]\nname = "c%d"\ncustomer = "acme"\nnodes = ["n%da", "n%db"]\n' $i $i $i; done
}
inventory "$W/a.log" > "$W/a.toml"; inventory "$W/b.log" > "$W/b.toml"

PIDS=()
start() { # $1 = name, $2 = port, $3 = --db
  RUST_LOG=warn "$BIN" serve --config "$W/$1.toml" --db "$3" --listen 127.0.0.1:$2 2>>"$W/$1.err" &
  PIDS+=($!)
  for _ in $(seq 1 200); do curl -s -o /dev/null http://127.0.0.1:$2/healthz && return; sleep 0.05; done
  echo "serve $1 did not start"; cat "$W/$1.err"; exit 1
}
stop_all() { for p in "${PIDS[@]}"; do kill $p; wait $p 2>/dev/null; done; PIDS=(); }
summary() { # wrk output on stdin
  awk '/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} /Non-2xx/ {bad=$4}
       END {printf "rps=%s p50=%s p99=%s non2xx=%s", r, p50, p99, bad+0}'
}
# $1 threads, $2 connections, $3 port, $4 script (default: reports spread over the clusters)
wrk_run() { WRK_RUN=$3 HOST=n1a wrk -t$1 -c$2 -d10s --latency -s "$HERE/${4:-report_spread.lua}" http://127.0.0.1:$3 | summary; }
fresh_db() { psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"; echo "postgres://postgres@127.0.0.1:$PGPORT/$1?sslmode=disable"; }

for r in $(seq 1 $ROUNDS); do
  start a 18190 "sqlite://$W/sqlite-$r.db"
  echo "round $r sqlite      $(wrk_run 2 64 18190)"
  stop_all
  url=$(fresh_db one)
  start a 18191 "$url"
  echo "round $r pg x1       $(wrk_run 2 64 18191)"
  stop_all
  url=$(fresh_db two)
  start a 18192 "$url"; start b 18193 "$url"
  wrk_run 1 32 18192 > "$W/wa" & wa=$!
  wrk_run 1 32 18193 > "$W/wb" & wb=$!
  wait $wa $wb
  echo "round $r pg x2 (a)   $(cat "$W/wa")"
  echo "round $r pg x2 (b)   $(cat "$W/wb")"
  stop_all
  # Every report for one cluster: they take its lock one after the other.
  start a 18196 "sqlite://$W/one-$r.db"
  echo "round $r sqlite, one cluster  $(wrk_run 2 64 18196 report.lua)"
  stop_all
  url=$(fresh_db hot)
  start a 18197 "$url"; start b 18198 "$url"
  wrk_run 1 32 18197 report.lua > "$W/wa" & wa=$!
  wrk_run 1 32 18198 report.lua > "$W/wb" & wb=$!
  wait $wa $wb
  echo "round $r pg x2, one cluster (a) $(cat "$W/wa")"
  echo "round $r pg x2, one cluster (b) $(cat "$W/wb")"
  stop_all
done

# Drain: 10,000 events with a pending log delivery each, written straight into the
# database (copies of one real event), then the replicas started; time until none is pending.
for n in 1 2; do
  url=$(fresh_db drain$n)
  start a 18194 "$url"
  curl -s -o /dev/null -H 'x-api-key: secret' -d '{"hostname":"n1a"}' http://127.0.0.1:18194/v1/reports
  sleep 1; stop_all
  psql -d drain$n -c "
    INSERT INTO events (cluster, customer, active, previous, verdict, at_ms, received_ms, flapping,
        classification, context, channels, reports)
    SELECT cluster, customer, active, previous, verdict, at_ms, received_ms, flapping,
        classification, context, channels, 1 FROM events, generate_series(1, 10000);
    INSERT INTO deliveries (event_id, channel, created_ms, next_ms)
    SELECT id, 'file', received_ms, received_ms FROM events WHERE id > 1;"
  : > "$W/a.log"; : > "$W/b.log"
  pending=$(psql -d drain$n -c "SELECT count(*) FROM deliveries WHERE status = 'pending'")
  t0=$(date +%s.%N)
  start a 18194 "$url"; [ $n = 2 ] && start b 18195 "$url"
  while [ "$(psql -d drain$n -c "SELECT count(*) FROM deliveries WHERE status = 'pending'")" != 0 ]; do sleep 0.02; done
  t1=$(date +%s.%N)
  stop_all
  lines=$(cat "$W/a.log" "$W/b.log" | wc -l)
  echo "drain $pending pending with $n replica(s): $(echo "$t1 - $t0" | bc) s from the first start; log lines a=$(wc -l < "$W/a.log") b=$(wc -l < "$W/b.log") total=$lines"
done
