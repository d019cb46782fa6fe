#!/usr/bin/env bash
# Ingest benchmark: a release `switchboard serve` on a fresh temp data dir (embedded store,
# durable appends), driven over loopback by tools/loadgen. Prints throughput and latency.
#
#   scripts/bench-ingest.sh                # all three runs below
#   DURATION=20 scripts/bench-ingest.sh    # longer runs
#   SERVER=/tmp/switchboard-old scripts/bench-ingest.sh   # another build of the server (A/B)
#   LOADGEN_ARGS=--sequential-ids scripts/bench-ingest.sh # call ids in order, as before 2026-12-06
#   LOADGEN_ARGS='--lifecycle-lag 2000' scripts/bench-ingest.sh # calls started, ended, analysed
#
# By default every delivery is a new call; its id is scattered over the id space like Retell's
# random ids (sequential ids fill the indexes' last leaves and flatter every figure, see
# benchmarks.md). `--lifecycle-lag N` follows calls through their life instead: a third of the
# deliveries start calls, a third end the calls started N calls earlier, a third analyse them.
# Runs share one server: each later run meets the calls of the runs before it, once the
# projections have caught up with them.
#
# Runs: (1) as fast as 64 connections go; (2) paced at 10,000 deliveries/s for latency;
# (3) 5,000 deliveries/s with check_availability calls alongside (their p99 reported apart).
# RUNS picks and orders them (default "1 2 3"). `floor` in RUNS is a run whose every delivery
# is signed with a wrong secret: each is read, verified and refused (401), nothing is stored,
# so it shows what HTTP and the signature check cost on this machine (with RUST_LOG=error;
# at the default `warn` each refusal also writes a log line). CONNECTIONS sets the
# connections of runs floor and 1 (default 128 and 64), RUN3_RATE run 3's pace.
#   RUST_LOG=error RUNS='floor 1' scripts/bench-ingest.sh
#   UNREGISTERED=1 CONNECTIONS=128 RUNS=1 scripts/bench-ingest.sh
#   RUN3_RATE=2000 RUNS=3 DURATION=8 scripts/bench-ingest.sh
# Every run prints the server's CPU per response split by thread name, as Linux keeps it (15
# characters): event-store-wri(ter), -che(ckpointer) and -syn(cer) are the store's,
# tokio-rt-worker the handlers, the live projections and the blocking pool, and threads that
# ended during the run are counted apart.
# Everything stays on 127.0.0.1 and every run stops by itself after DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

for run in ${RUNS:-1 2 3}; do
  case "$run" in
    floor | 1 | 2 | 3) ;;
    *) echo "unknown run '$run' in RUNS (floor, 1, 2, 3)" >&2; exit 2 ;;
  esac
done
DURATION="${DURATION:-10}"
SECRET="bench-secret"
cargo build --release -q -p switchboard-cli -p switchboard-loadgen

data_dir="$(mktemp -d)"
log="$data_dir/server.log"
cleanup() {
  [[ -n "${server_pid:-}" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$data_dir"
}
trap cleanup EXIT

ADMIN_TOKEN="bench-admin"
SWITCHBOARD_RETELL_SECRETS="$SECRET" SWITCHBOARD_CALCOM_SECRETS="$SECRET" \
  SWITCHBOARD_ADMIN_TOKEN="$ADMIN_TOKEN" RUST_LOG="${RUST_LOG:-warn}" \
  "${SERVER:-./target/release/switchboard}" serve --listen 127.0.0.1:0 --data-dir "$data_dir/data" >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  url="$(sed -n 's/^switchboard listening on //p' "$log" | head -n1)"
  [[ -n "$url" ]] && break
  sleep 0.1
done
[[ -n "${url:-}" ]] || { cat "$log"; echo "server did not start" >&2; exit 1; }

# The business the load's calls ring (tools/loadgen's TO number), as in production: every call
# is attributed to its branch, and `check_availability` finds that branch and queries its
# calendar: Marie's bookings (Cal.com, organizer 12345), five a day over the week the function
# calls ask about (from 14 days ahead). UNREGISTERED=1 leaves the number unregistered and the
# calendar empty, as every run before 2026-12-07 15:08 UTC did (each call then unattributed,
# and each function call answered from the default week after two lookups that found nothing).
if [[ "${UNREGISTERED:-0}" != 1 ]]; then
  curl -sf -X PUT "$url/api/tenants/bench" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' \
    -d '{"name": "Bench salon", "branches": [{"branch_id": "main", "name": "Main",
         "phone_numbers": ["+493083793369"]}], "calcom_organizer_ids": [12345]}' >/dev/null \
    || { cat "$log"; echo "could not register the bench tenant" >&2; exit 1; }
  bookings=()
  for day in $(seq 14 21); do
    for hour in 09 10 12 14 16; do
      start="$(date -u -d "+$day days" +%F)T$hour:00:00.000Z"
      end="$(date -u -d "+$day days" +%F)T$hour:30:00.000Z"
      file="$data_dir/booking-$day-$hour.json"
      cat >"$file" <<JSON
{"triggerEvent": "BOOKING_CREATED", "createdAt": "$(date -u +%FT%T.000Z)",
 "payload": {"uid": "bench-$day-$hour", "title": "Herrenhaarschnitt", "startTime": "$start",
  "endTime": "$end", "organizer": {"id": 12345, "name": "Marie Schmidt",
  "email": "marie@salon.example", "timeZone": "Europe/Berlin"},
  "attendees": [{"name": "Max Mustermann", "email": "max@example.com",
  "timeZone": "Europe/Berlin"}], "status": "ACCEPTED"}}
JSON
      bookings+=("$file")
    done
  done
  # Each line is "FILE STATUS …"; a refusal or a failed send stops the script.
  if ! sent="$(./target/release/switchboard send --url "$url/api/calcom/webhook" \
      --provider calcom --secret "$SECRET" "${bookings[@]}" 2>&1)" \
    || grep -qv ' 20[01]' <<<"$sent"; then
    echo "$sent"; cat "$log"; echo "a bench booking was not recorded" >&2; exit 1
  fi
fi

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); date: $(date -u +%F)"
echo "server: $url (embedded SQLite, WAL synced before each answer)"
# Each run also reports the server's CPU time (user + system, /proc/PID/stat) per accepted
# delivery: steadier than throughput on a machine whose cores others share.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
# "TID:NAME TICKS" per thread, sorted for `join`. A thread may end while this reads it.
thread_ticks() {
  local task name ticks
  for task in /proc/"$server_pid"/task/*; do
    name="$(tr ' ' '_' <"$task/comm" 2>/dev/null)" || continue
    ticks="$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null)" || continue
    echo "${task##*/}:$name $ticks"
  done | sort
}
loadgen() {
  local secret="$SECRET"
  if [[ "$1" == --wrong-secret ]]; then secret="not-$SECRET"; shift; fi
  local before after threads_before out accepted responses
  before="$(cpu_ticks)"
  threads_before="$(thread_ticks)"
  out="$(./target/release/switchboard-loadgen --url "$url" --secret "$secret" --duration "$DURATION" ${LOADGEN_ARGS:-} "$@")"
  echo "$out"
  accepted="$(echo "$out" | sed -n 's/^ingest[^:]*: \([0-9]*\) accepted.*/\1/p')"
  responses="$(echo "$out" | sed -n 's/^ingest[^:]*: [0-9]* accepted of \([0-9]*\) responses.*/\1/p')"
  after="$(cpu_ticks)"
  if [[ "${accepted:-0}" -gt 0 ]]; then
    echo "server CPU: $(( (after - before) * 1000000 / $(getconf CLK_TCK) / accepted )) µs per accepted delivery"
  fi
  if [[ "${responses:-0}" -gt 0 ]]; then
    # A thread born during the run counts from 0; what the whole process spent beyond the
    # threads still there is what threads that ended during the run spent.
    echo "server CPU per response by thread:$(join -a 2 -e 0 -o 0,1.2,2.2 \
      <(echo "$threads_before") <(thread_ticks) \
      | awk -v n="$responses" -v hz="$(getconf CLK_TCK)" -v process="$((after - before))" '
          { name = $1; sub(/^[0-9]+:/, "", name); spent[name] += $3 - $2; live += $3 - $2 }
          END {
            for (name in spent) if (spent[name] > 0) printf " %s %.1f µs;", name, spent[name] * 1000000 / hz / n
            if (process > live) printf " ended threads %.1f µs;", (process - live) * 1000000 / hz / n
          }')"
  fi
}

# The projections may end a run behind the store (run 2 offers more than the server takes):
# the next run starts once they have caught up, so that it does not pay for the previous
# one's backlog. Bounded: after 120 s it starts anyway and says so.
settle() {
  local lag started=$SECONDS
  while true; do
    # A server that does not answer counts as not caught up (bounded below), not as a reason
    # to abort the script.
    lag="$(curl -s --max-time 2 "$url/metrics" | sed -n 's/^switchboard_projection_lag_events{[^}]*} \([0-9]*\).*/\1/p' | head -n1 || true)"
    [[ "$lag" == 0 ]] && break
    if (( SECONDS - started >= 120 )); then
      echo "projections not caught up after 120 s (lag: ${lag:-unknown}); going on"
      return
    fi
    sleep 0.1
  done
  echo "(projections caught up within $(( SECONDS - started + 1 )) s of the run's end)"
}

for run in ${RUNS:-1 2 3}; do
  case "$run" in
    floor)
      echo "== floor: every delivery signed with a wrong secret (read, verified, refused; nothing stored), ${CONNECTIONS:-128} connections"
      loadgen --wrong-secret --connections "${CONNECTIONS:-128}"
      ;;
    1)
      echo "== 1. maximum throughput, ${CONNECTIONS:-64} connections"
      loadgen --connections "${CONNECTIONS:-64}"
      settle
      ;;
    2)
      echo "== 2. paced at 10,000 deliveries/s"
      loadgen --connections 64 --rate 10000
      settle
      ;;
    3)
      echo "== 3. ${RUN3_RATE:-5000} deliveries/s with check_availability at 50/s"
      loadgen --connections 32 --rate "${RUN3_RATE:-5000}" --function-rate 50
      ;;
  esac
done
