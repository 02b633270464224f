#!/usr/bin/env bash
# make bench-redis: redis-benchmark against the role's hardened Redis and a stock
# one on the same host, then plain vs TLS; prints medians and ratios.
#
#   scripts/bench-redis.sh                 defaults: IMAGE=debian12 N=50000 CLIENTS=50 ROUNDS=5
#   KEEP=1 scripts/bench-redis.sh          keep the container, network and raw results
#
# One throwaway systemd container (redisops-bench-redis) on its own podman network
# (redisops-bench), converged with the real role (playbooks/redis.yml and
# bench/redis/inventory.yml: role defaults plus an admin password and one ACL user).
# bench/redis/guest-setup.sh then adds, on the same container, Debian's stock Redis
# (packaged redis.conf and packaged unit, another port) and one stock instance that
# serves a plain and a TLS port. redis-benchmark runs inside the container against
# 127.0.0.1: no traffic leaves the test host. Variants are interleaved round by
# round (order rotated) and the median of ROUNDS runs is reported, as requests/s
# and as the server's CPU time per request (user+sys of the redis-server process,
# from INFO cpu): the second barely moves when other tenants load the host.
#
#   stock           Debian's packaged config and unit, port 6390: default user
#                   without password, RDB save points, no AOF, no maxmemory
#   hardened        the role's redis-server on 6379, as ACL user "bench" (key
#                   patterns, command categories, deny list), AOF everysec, maxmemory
#   hardened-noaof  the same process after CONFIG SET appendonly no (switched on
#                   again before its next "hardened" run): shows what AOF costs
#   plain / tls     one stock process, plain port 6392 vs TLS port 6393 (the role's
#                   TLS settings, EC P-256 certificate from a throwaway CA)
#
# Target (issue): hardened >= 0.95 x stock on every test. A miss is printed as
# MISSED; the script still exits 0. It fails only when it cannot measure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-debian12}
N=${N:-50000}               # requests per test and run
CLIENTS=${CLIENTS:-50}      # parallel connections
KEYSPACE=${KEYSPACE:-10000} # -r: key:<n>, counter:<n>; the warm-up run fills it (>99%)
ROUNDS=${ROUNDS:-5}         # median of 5 short runs resists a noisy neighbour better than 3 long ones
KEEP=${KEEP:-0}
TARGET=0.95
TESTS=set,get,incr,lpush,xadd # xadd: XADD bench:stream * f <rand>, a custom command
TEST_NAMES=(SET GET INCR LPUSH XADD)

PREFIX=redisops-bench
NAME=$PREFIX-redis
NET=$PREFIX
LABEL=owner=$PREFIX
INV=$ROOT/bench/redis/inventory.yml
HARDENED_PORT=6379 STOCK_PORT=6390 PLAIN_PORT=6392 TLS_PORT=6393
TLS_CA=/etc/redis/$PREFIX-tls/ca.crt

export LC_ALL=C.UTF-8 # byte-order sort/join, "." as decimal point; Ansible needs UTF-8
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_ROLES_PATH=$ROOT/roles ANSIBLE_CONFIG=$ROOT/ansible.cfg

log() { printf '[%3ds] %s\n' "$SECONDS" "$*"; }
die() { echo "bench-redis: $*" >&2; exit 1; }
cx() { podman exec "$NAME" "$@"; }

for tool in podman ansible-playbook python3; do
  command -v "$tool" >/dev/null || die "$tool not found (run: make deps venv)"
done
[ -f "$INV" ] || die "missing $INV"
BENCH_PW=$(python3 - "$INV" <<'PY'
import sys, yaml
inv = yaml.safe_load(open(sys.argv[1]))
users = inv["all"]["children"]["redis_servers"]["hosts"]["redisops-bench-redis"]["redisops_redis_extra_acl_users"]
print(next(u["password"] for u in users if u["name"] == "bench"))
PY
)

WORK=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
RESULTS=$WORK/results.csv
: >"$RESULTS"

# shellcheck source=scripts/lib/bench-hosts.sh
. "$ROOT/scripts/lib/bench-hosts.sh"
HOSTS=("$NAME")
trap 'bench_hosts_cleanup "podman exec -it $NAME redis-admin          # hardened, as the admin user"' EXIT
trap 'exit 130' INT TERM

# ── Test host ─────────────────────────────────────────────────────────────────
"$ROOT/scripts/build-images.sh" "$IMAGE"
log "starting $NAME ($IMAGE) on network $NET"
bench_hosts_up

log "converging the role (playbooks/redis.yml, bench/redis/inventory.yml)"
if ! ansible-playbook -i "$INV" "$ROOT/playbooks/redis.yml" >"$WORK/converge.log" 2>&1; then
  tail -40 "$WORK/converge.log" >&2
  die "converge failed (full log: $WORK/converge.log; KEEP=1 keeps it)"
fi
grep -A1 '^PLAY RECAP' "$WORK/converge.log" | tail -1 | sed 's/^/    /'

# redis-benchmark of Redis 6.0 (Debian 11) has no --tls: compare plain/TLS only where it can.
TLS=0
bench_help=$(cx redis-benchmark --help 2>&1 || true)
if [[ $bench_help == *--tls* ]]; then TLS=1; fi
cx mkdir -p /root/$PREFIX
for f in guest-setup.sh guest-run.sh; do podman cp "$ROOT/bench/redis/$f" "$NAME:/root/$PREFIX/$f"; done
log "adding stock instance(s): Debian's packaged redis.conf and unit"
if [ "$TLS" = 1 ]; then
  cx bash "/root/$PREFIX/guest-setup.sh" "$STOCK_PORT" "$PLAIN_PORT" "$TLS_PORT"
else
  cx bash "/root/$PREFIX/guest-setup.sh" "$STOCK_PORT"
fi

# ── Per-variant connection options ────────────────────────────────────────────
conn() {
  case $1 in
    stock) echo "-h 127.0.0.1 -p $STOCK_PORT" ;;
    hardened | hardened-noaof) echo "-h 127.0.0.1 -p $HARDENED_PORT --user bench -a $BENCH_PW" ;;
    plain) echo "-h 127.0.0.1 -p $PLAIN_PORT" ;;
    tls) echo "-h 127.0.0.1 -p $TLS_PORT --tls --cacert $TLS_CA" ;;
  esac
}
# INFO/CONFIG: the stock instances answer their default user, the hardened one
# only its admin user (redis-admin, over the unix socket).
info_cmd() {
  case $1 in
    stock) echo "redis-cli -h 127.0.0.1 -p $STOCK_PORT" ;;
    hardened | hardened-noaof) echo "redis-admin" ;;
    plain | tls) echo "redis-cli -h 127.0.0.1 -p $PLAIN_PORT" ;;
  esac
}
admin() {
  local -a c
  read -r -a c <<<"$(info_cmd "$1")"
  cx "${c[@]}" "${@:2}"
}

# The bench user must be able to do what the benchmark does, and no more.
acl_check() {
  local -a c args
  local ok=1 out cmd
  read -r -a c <<<"$(conn hardened)"
  for cmd in "SET key:0 v" "GET key:0" "INCR counter:0" "LPUSH mylist v" "XADD bench:stream * f v"; do
    read -r -a args <<<"$cmd"
    out=$(cx redis-cli --no-auth-warning "${c[@]}" "${args[@]}" 2>&1)
    case $out in *ERR* | *NOPERM* | *WRONGPASS* | *NOAUTH*) echo "    bench user: $cmd -> $out"; ok=0 ;; esac
  done
  for cmd in "SET other:0 v" "FLUSHALL" "CONFIG GET maxmemory"; do
    read -r -a args <<<"$cmd"
    out=$(cx redis-cli --no-auth-warning "${c[@]}" "${args[@]}" 2>&1)
    case $out in *NOPERM*) ;; *) echo "    bench user: $cmd was not refused: $out"; ok=0 ;; esac
  done
  [ "$ok" = 1 ] || die "the bench ACL user does not behave as expected"
}
acl_check

# ── What differs between the instances ────────────────────────────────────────
config_of() { admin "$1" CONFIG GET '*' | paste -d'\t' - - | sort; }
echo
REDIS_VERSION=$(cx redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
echo "=== Instances (Redis $REDIS_VERSION, $IMAGE," \
  "$(nproc) CPUs, $(($(podman ps -q | wc -l) - 1)) other running containers on this host," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)) ==="
echo "stock:    Debian's packaged redis.conf (included verbatim) and a copy of its packaged"
echo "          systemd unit; only port ($STOCK_PORT), pidfile, logfile, dir differ."
echo "hardened: the role's redis-server.service on $HARDENED_PORT (packaged unit + the role's drop-in),"
echo "          benchmarked as ACL user bench:"
admin hardened ACL LIST | grep '^user bench ' | sed -E 's/#[0-9a-f]{64}/#<sha256>/g' | fold -s -w 88 |
  sed 's/^/            /'
echo "          config that differs from stock (CONFIG GET *; port/pidfile/logfile/dir left out):"
config_of stock >"$WORK/stock.conf"
config_of hardened >"$WORK/hardened.conf"
join -t $'\t' -a1 -a2 -e '(unset)' -o 0,1.2,2.2 "$WORK/stock.conf" "$WORK/hardened.conf" |
  awk -F'\t' '$2 != $3 && $1 !~ /^(port|pidfile|logfile|dir)$/ {
    printf "            %-26s stock: %-22s hardened: %s\n", $1, ($2 == "" ? "\"\"" : $2), ($3 == "" ? "\"\"" : $3) }'

# ── Benchmark ─────────────────────────────────────────────────────────────────
AOF=yes # the hardened instance's appendonly, as converged
set_aof() {
  [ "$AOF" = "$1" ] && return
  [ "$(admin hardened CONFIG SET appendonly "$1")" = OK ] || die "CONFIG SET appendonly $1 failed"
  AOF=$1
}
# No fork in progress (BGSAVE, AOF rewrite after switching AOF on) when a run starts.
quiesce() {
  local v info
  for v in "$@"; do
    for _ in $(seq 600); do
      info=$(admin "$v" INFO persistence)
      case $info in
        *rdb_bgsave_in_progress:1* | *aof_rewrite_in_progress:1* | *aof_rewrite_scheduled:1*) sleep 0.2 ;;
        *) continue 2 ;;
      esac
    done
    die "$v: background save still running after 120 s"
  done
}
# run VARIANT ROUND: one pass of every test (bench/redis/guest-run.sh in the container).
run() {
  local v=$1 r=$2 err=$WORK/err.$1.$2 c out
  read -r -a c <<<"$(conn "$v")"
  case $v in
    hardened) set_aof yes ;;
    hardened-noaof) set_aof no ;;
  esac
  case $v in stock | hardened | hardened-noaof) quiesce stock hardened ;; *) quiesce plain ;; esac
  out=$(cx bash "/root/$PREFIX/guest-run.sh" "$N" "$CLIENTS" "$KEYSPACE" "$TESTS" "$(info_cmd "$v")" \
    "${c[@]}" 2>"$err") || { cat "$err" >&2; die "benchmark of $v failed"; }
  # Errors (NOPERM, auth, TLS) are printed, not counted as requests: stop on any.
  # redis-benchmark first reads CONFIG GET save/appendonly; the bench user may not (CONFIG is
  # denied), which redis-benchmark only warns about: those messages are expected.
  if grep -viE -e "fetch (server )?CONFIG" -e "permissions to run the 'config' command" -e '^$' "$err" |
    grep -qiE 'error|noperm|wrongpass|noauth|refused|ssl'; then
    cat "$err" >&2
    die "redis-benchmark reported errors for $v"
  fi
  awk -v p="$v,$r," '{ print p $0 }' <<<"$out" >>"$RESULTS"
  [ "$(grep -c "^$v,$r," "$RESULTS")" -eq ${#TEST_NAMES[@]} ] || die "$v round $r: unexpected output: $out"
}
# rounds NAME VARIANT...: ROUNDS rounds, each running every variant, order rotated.
rounds() {
  local title=$1 r i k t0
  shift
  local -a vs=("$@")
  for ((r = 1; r <= ROUNDS; r++)); do
    t0=$SECONDS
    for ((i = 0; i < ${#vs[@]}; i++)); do
      k=$(((i + r - 1) % ${#vs[@]}))
      run "${vs[$k]}" "$r"
    done
    log "$title round $r/$ROUNDS done ($((SECONDS - t0)) s)"
  done
}

echo
echo "=== redis-benchmark -n $N -c $CLIENTS -P 1 -r $KEYSPACE, tests ${TESTS^^};" \
  "$ROUNDS interleaved rounds, medians ==="
# Warm-up pass, not counted: fills the keyspace (>99%), faults memory in.
warm=(stock hardened)
if [ "$TLS" = 1 ]; then warm+=(plain); fi
for v in "${warm[@]}"; do run "$v" 0; done
sed -i '/^[^,]*,0,/d' "$RESULTS"
log "warm-up done"
rounds "hardened vs stock:" stock hardened hardened-noaof
set_aof yes
if [ "$TLS" = 1 ]; then rounds "plain vs TLS:" plain tls; fi

# ── Report ────────────────────────────────────────────────────────────────────
# results.csv: variant,round,test,requests_per_second,server_cpu_us_per_request.
# Medians, ratios, geomeans, spreads and verdicts: scripts/bench-redis-stats.py.
stats() { # REPORT
  python3 "$ROOT/scripts/bench-redis-stats.py" "$RESULTS" "$1" --rounds "$ROUNDS" --target "$TARGET" \
    --tests "$(IFS=,; echo "${TEST_NAMES[*]}")" || die "cannot compute the $1 report from $RESULTS"
}

echo
stats hardened-vs-stock
if [ "$TLS" = 1 ]; then
  echo
  echo "=== plain vs TLS: one stock process (same data, same config), plain port $PLAIN_PORT vs TLS port $TLS_PORT ==="
  echo "Each of the $CLIENTS connections does one TLS handshake per test, then $((N / CLIENTS)) requests: mostly the"
  echo "per-request (record encryption) cost; with small N the handshakes weigh more."
  stats plain-vs-tls
else
  echo
  echo "plain vs TLS: skipped, the redis-benchmark of Redis $REDIS_VERSION ($IMAGE) has no --tls"
fi
echo
log "total runtime (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
