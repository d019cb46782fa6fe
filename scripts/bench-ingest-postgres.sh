#!/usr/bin/env bash
# Ingest benchmark on PostgreSQL: two release `switchboard serve` instances on one database
# (events and read models in a fresh schema of it), driven over loopback by tools/loadgen,
# whose connections alternate between the instances. Prints throughput and latency for two
# instances and, for comparison, for one.
#
#   scripts/bench-ingest-postgres.sh                              # the machine's PostgreSQL
#   PG_URL=postgres://u@host/db DURATION=20 scripts/bench-ingest-postgres.sh
#
# Everything stays on the given database and 127.0.0.1; every run stops by itself after
# DURATION seconds, and the schema is dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
PG_URL="${PG_URL:-${SWITCHBOARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}}"
SECRET="bench-secret"
export PGOPTIONS="-c client_min_messages=warning"
cargo build --release -q -p switchboard-cli -p switchboard-loadgen

work="$(mktemp -d)"
pids=()
schema=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  pids=()
  if [[ -n "$schema" ]]; then
    psql "$PG_URL" -qAtc "DROP SCHEMA IF EXISTS $schema CASCADE; DROP SCHEMA IF EXISTS ${schema}_read_models CASCADE" >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

started_url=""
start() { # start NAME: one instance on the current schema; sets started_url
  local log="$work/$1.log"
  SWITCHBOARD_RETELL_SECRETS="$SECRET" RUST_LOG=warn \
    ./target/release/switchboard serve --listen 127.0.0.1:0 --data-dir "$work/$1" \
    --store "$PG_URL?schema=$schema" >"$log" 2>&1 &
  pids+=($!)
  started_url=""
  for _ in $(seq 1 100); do
    started_url="$(sed -n 's/^switchboard listening on //p' "$log" | head -n1)"
    [[ -n "$started_url" ]] && break
    sleep 0.1
  done
  [[ -n "$started_url" ]] || { cat "$log" >&2; echo "instance $1 did not start" >&2; exit 1; }
}

loadgen() { ./target/release/switchboard-loadgen --secret "$SECRET" --duration "$DURATION" "$@"; }

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); date: $(date -u +%FT%TZ)"
echo "database: $(psql "$PG_URL" -qAtc 'SHOW server_version') (synchronous_commit=$(psql "$PG_URL" -qAtc 'SHOW synchronous_commit'))"

for instances in 1 2; do
  schema="sb_bench_$$_$instances"
  urls=()
  for i in $(seq 1 "$instances"); do
    start "run$instances-i$i"
    urls+=(--url "$started_url")
  done
  echo "== $instances instance(s), 64 connections, as fast as they go"
  loadgen --connections 64 "${urls[@]}"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  pids=()
  psql "$PG_URL" -qAtc "DROP SCHEMA IF EXISTS $schema CASCADE; DROP SCHEMA IF EXISTS ${schema}_read_models CASCADE" >/dev/null
  schema=""
done
