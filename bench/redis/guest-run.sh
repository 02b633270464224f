#!/usr/bin/env bash
# Runs INSIDE the bench container: one benchmark pass against one instance.
# scripts/bench-redis.sh copies it in and calls it once per variant and round.
#
#   guest-run.sh N CLIENTS KEYSPACE TESTS INFO_CMD CONNECTION_OPTION...
#     TESTS     comma-separated redis-benchmark -t tests; "xadd" runs
#               XADD bench:stream * f <rand> as a custom command
#     INFO_CMD  how to ask this instance for INFO (e.g. "redis-admin" or
#               "redis-cli -p 6390"), split on spaces
#
# Prints one line per test: TEST,requests_per_second,server_cpu_us_per_request.
# The CPU figure is the server process's user+sys time (all threads: AOF fsync
# included) across the test, from INFO cpu, divided by N. It barely depends on
# how much CPU other tenants of the host take, unlike requests per second.
# redis-benchmark's own messages go to stderr for the caller to check.
set -euo pipefail

n=$1 clients=$2 keyspace=$3 tests=$4
read -r -a info <<<"$5"
shift 5

cpu() { "${info[@]}" INFO cpu | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }

IFS=, read -r -a list <<<"$tests"
for t in "${list[@]}"; do
  opts=("$@" -n "$n" -c "$clients" -P 1 -r "$keyspace" --csv)
  c0=$(cpu)
  if [ "$t" = xadd ]; then
    out=$(redis-benchmark "${opts[@]}" XADD bench:stream '*' f __rand_int__)
  else
    out=$(redis-benchmark "${opts[@]}" -t "$t")
  fi
  c1=$(cpu)
  # CSV: "TEST","rps",... (Redis 7 adds a header line and latency columns).
  awk -F, -v c0="$c0" -v c1="$c1" -v n="$n" '{ gsub(/"/, "") } $1 != "test" && NF >= 2 {
    t = $1; sub(/ .*/, "", t); printf "%s,%s,%.2f\n", t, $2, (c1 - c0) * 1e6 / n }' <<<"$out"
done
