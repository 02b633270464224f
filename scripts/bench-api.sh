#!/usr/bin/env bash
# make bench-api: wrk against the deployed app through the TLS proxy (nginx,
# keep-alive) and straight to gunicorn on the same host; prints medians, the
# ratio proxy/direct and where the CPU time goes.
#
#   scripts/bench-api.sh             defaults: IMAGE=debian12 CONNECTIONS=16 THREADS=2 DURATION=10 ROUNDS=5
#   KEEP=1 scripts/bench-api.sh      keep the containers, network and raw results
#   WHEELHOUSE=/path/build/wheelhouse scripts/bench-api.sh   the app's wheels (default: build/wheelhouse)
#
# Three throwaway systemd containers on their own podman network
# (redisops-bench-api): redis, web (gunicorn + nginx), worker (Celery), converged
# with the real playbooks (playbooks/local/pki.yml, then redis.yml, app.yml,
# web.yml, workers.yml) and bench/api/inventory.yml: the roles' defaults plus
# credentials, one API client, limits no run reaches, and a loopback TCP
# listener for gunicorn besides the proxy's unix socket. wrk (Debian's package,
# installed on the web host) runs ON the web host: no traffic leaves the bench's
# containers.
#
#   direct  http://127.0.0.1:8001, gunicorn's loopback port (with X-Forwarded-Proto:
#           https, which gunicorn believes from 127.0.0.1 here, as it does from the
#           proxy's socket: the same Django code answers both sides)
#   proxy   https://redisops-bench-api-web/, nginx (the web_proxy role: TLS 1.2/1.3,
#           keep-alive to the client) -> gunicorn's unix socket
#
# Endpoints: GET /healthz, GET /api/limited (rate limited per client address,
# the limit far above what a run reaches: every answer is the 200 path) and
# POST /api/tasks (bearer token, {"task": "add", "args": {"x": 1, "y": 2}}, 202;
# the worker runs the tasks, and every run starts with an empty queue).
# CONNECTIONS connections for DURATION seconds per run; a warm-up pass, then
# ROUNDS rounds, each running every endpoint on both sides back to back (order
# rotated), medians reported. Besides requests/s and latency: the CPU time per
# request of gunicorn, nginx, journald, wrk (web host), Redis and the worker.
#
# Target (issue 11): proxy >= 0.8 x direct requests/s at 16 connections on every
# endpoint. A miss is printed as MISSED; the script still exits 0. It fails only
# when it cannot measure (deploy failed, wrong status codes, socket errors).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-debian12}
CONNECTIONS=${CONNECTIONS:-16} # the issue's target is at 16
THREADS=${THREADS:-2}          # wrk threads (2 cores)
DURATION=${DURATION:-10}       # seconds per run
WARMUP=${WARMUP:-3}            # seconds per endpoint and side, not counted
ROUNDS=${ROUNDS:-5}
KEEP=${KEEP:-0}
WHEELHOUSE=${WHEELHOUSE:-$ROOT/build/wheelhouse}
TARGET=0.8
ENDPOINTS=(healthz limited tasks)

PREFIX=redisops-bench-api
NET=$PREFIX
LABEL=owner=$PREFIX
REDIS=$PREFIX-redis WEB=$PREFIX-web WORKER=$PREFIX-worker
HOSTS=("$REDIS" "$WEB" "$WORKER")
INV=$ROOT/bench/api/inventory.yml
DIRECT_PORT=8001
GUEST=/root/$PREFIX
APP=redisops # django_app_name: units, /etc/$APP, /opt/$APP

export LC_ALL=C.UTF-8 # "." as decimal point; Ansible needs UTF-8
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_ROLES_PATH=$ROOT/roles ANSIBLE_CONFIG=$ROOT/ansible.cfg

log() { printf '[%3ds] %s\n' "$SECONDS" "$*"; }
die() { echo "bench-api: $*" >&2; exit 1; }
web() { podman exec "$WEB" "$@"; }

for tool in podman ansible-playbook python3 timeout; do
  command -v "$tool" >/dev/null || die "$tool not found (run: make deps venv)"
done
[ -f "$INV" ] || die "missing $INV"
VERSION=$(cat "$ROOT/django_app/VERSION")
compgen -G "$WHEELHOUSE/redisops_app-$VERSION-*.whl" >/dev/null ||
  die "no wheel of the app $VERSION in $WHEELHOUSE (run: make wheelhouse, or set WHEELHOUSE)"
TOKEN=$(python3 - "$INV" <<'PY'
import sys, yaml
inv = yaml.safe_load(open(sys.argv[1]))
print(inv["all"]["children"]["app"]["vars"]["django_app_api_clients"]["bench"][0])
PY
)

WORK=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
RESULTS=$WORK/results.csv
: >"$RESULTS"
export BENCH_API_PKI_DIR=$WORK/pki # local_pki_dir of bench/api/inventory.yml

# shellcheck source=scripts/lib/bench-hosts.sh
. "$ROOT/scripts/lib/bench-hosts.sh"
trap 'bench_hosts_cleanup "podman exec -it $WEB bash      # wrk and curl are installed there"' EXIT
trap 'exit 130' INT TERM

# ── Test hosts ────────────────────────────────────────────────────────────────
"$ROOT/scripts/build-images.sh" "$IMAGE"
log "starting ${HOSTS[*]} ($IMAGE) on network $NET"
bench_hosts_up

# playbook LOG PLAYBOOK... [-e ...]: a bounded ansible-playbook run, its log kept.
playbook() {
  local logfile=$WORK/$1.log
  shift
  if ! timeout 1200 ansible-playbook -i "$INV" "$@" >"$logfile" 2>&1; then
    tail -40 "$logfile" >&2
    die "ansible-playbook $* failed (full log: $logfile; KEEP=1 keeps it)"
  fi
  # The last recap (one per playbook): every host's totals.
  awk '/^PLAY RECAP/ { n = 0; delete h; next } NF && /: ok=/ { h[++n] = $0 }
    END { for (i = 1; i <= n; i++) print "    " h[i] }' "$logfile"
}
log "making the throwaway PKI (playbooks/local/pki.yml)"
playbook pki "$ROOT/playbooks/local/pki.yml"
log "converging the stack (playbooks/redis.yml app.yml web.yml workers.yml, bench/api/inventory.yml)"
playbook converge -e "django_app_wheelhouse=$WHEELHOUSE" \
  "$ROOT"/playbooks/{redis,app,web,workers}.yml

log "installing wrk and curl on $WEB (Debian's packages)"
web env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk curl \
  >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log" >&2; die "apt-get install wrk curl failed"; }
web mkdir -p "$GUEST"
for f in wrk.lua guest-run.py; do podman cp "$ROOT/bench/api/$f" "$WEB:$GUEST/$f"; done

# ── Endpoints and sides ───────────────────────────────────────────────────────
DIRECT=http://127.0.0.1:$DIRECT_PORT
PROXY=https://$WEB:443 # the port spelled out: a minbase host has no /etc/services
path_of() { case $1 in healthz) echo /healthz ;; limited) echo /api/limited ;; tasks) echo /api/tasks ;; esac; }
status_of() { case $1 in tasks) echo 202 ;; *) echo 200 ;; esac; }
base_of() { case $1 in direct) echo "$DIRECT" ;; proxy) echo "$PROXY" ;; esac; }
# wrk.lua's arguments: mode, token, X-Forwarded-Proto (direct side only).
wrk_args() {
  local mode=get proto=
  if [ "$1" = tasks ]; then mode=post; fi
  if [ "$2" = direct ]; then proto=https; fi
  printf '%s\n' "$mode" "$TOKEN" "$proto"
}

# One request per endpoint and side with curl (the proxy's certificate verified
# against the CA pki.yml installed): the status wrk's runs will get.
for ep in "${ENDPOINTS[@]}"; do
  for side in direct proxy; do
    args=(-s -o "$GUEST/answer" -w '%{http_code}' --max-time 10)
    if [ "$side" = direct ]; then args+=(-H 'X-Forwarded-Proto: https'); fi
    if [ "$ep" = tasks ]; then
      args+=(-X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN"
        --data '{"task": "add", "args": {"x": 1, "y": 2}}')
    fi
    code=$(web curl "${args[@]}" "$(base_of "$side")$(path_of "$ep")" || true)
    [ "$code" = "$(status_of "$ep")" ] || {
      web cat "$GUEST/answer" >&2 || true
      die "$side $(path_of "$ep"): HTTP ${code:-no answer}, expected $(status_of "$ep")"
    }
  done
done
# Only loopback on the direct port, and what answers behind each side.
listen=$(web ss -Hltn "sport = :$DIRECT_PORT" | awk '{ print $4 }' | sort -u | paste -sd' ')
[ "$listen" = "127.0.0.1:$DIRECT_PORT" ] || die "gunicorn's TCP port listens on '$listen', expected 127.0.0.1 only"

# Cumulative CPU time (us) of a whole container, read on this host from its
# cgroup (v1 cpuacct or v2 cpu.stat); -1 when neither is readable.
declare -A CGROUP
for name in "$REDIS" "$WORKER"; do
  p=$(podman inspect --format '{{.State.CgroupPath}}' "$name" 2>/dev/null || true)
  if [ -n "$p" ] && [ -r "/sys/fs/cgroup/cpuacct$p/cpuacct.usage" ]; then
    CGROUP[$name]=v1:/sys/fs/cgroup/cpuacct$p/cpuacct.usage
  elif [ -n "$p" ] && [ -r "/sys/fs/cgroup$p/cpu.stat" ]; then
    CGROUP[$name]=v2:/sys/fs/cgroup$p/cpu.stat
  else
    CGROUP[$name]=none
  fi
done
cpu_us() {
  local f=${CGROUP[$1]}
  case $f in
    v1:*) echo $(($(cat "${f#v1:}") / 1000)) ;;
    v2:*) awk '$1 == "usage_usec" { print $2 }' "${f#v2:}" ;;
    *) echo -1 ;;
  esac
}

# Tasks still queued or running (kombu's keys, prefix broker:): 0 before a run.
backlog() {
  podman exec "$REDIS" sh -c 'redis-admin LLEN broker:default; redis-admin HLEN broker:unacked' |
    awk '$1 !~ /^[0-9]+$/ { print "redis-admin: " $0 > "/dev/stderr"; bad = 1 } { n += $1 }
      END { if (bad || NR != 2) exit 1; print n }'
}
quiesce() {
  local n
  for _ in $(seq 600); do
    n=$(backlog) || die "cannot read the queue length on $REDIS"
    [ "$n" = 0 ] && return
    sleep 0.5
  done
  die "the worker did not drain the queue in 300 s ($n tasks left)"
}

# run ENDPOINT SIDE ROUND SECONDS: one wrk run; appends a line to results.csv:
# endpoint,side,round,requests,duration_us,p50_us,p99_us,max_us,connect,read,write,
# status,timeout,gunicorn_us,nginx_us,journald_us,wrk_us,redis_us,worker_us
run() {
  local ep=$1 side=$2 r=$3 secs=$4 err=$WORK/err.$1.$2.$3 out r0 r1 w0 w1 line cpu
  local -a a
  mapfile -t a < <(wrk_args "$ep" "$side")
  quiesce
  r0=$(cpu_us "$REDIS") w0=$(cpu_us "$WORKER")
  out=$(web python3 "$GUEST/guest-run.py" "$CONNECTIONS" "$THREADS" "$secs" \
    "$(base_of "$side")$(path_of "$ep")" "${a[@]}" 2>"$err") || {
    cat "$err" >&2
    die "wrk run $ep/$side failed"
  }
  r1=$(cpu_us "$REDIS") w1=$(cpu_us "$WORKER")
  line=$(grep '^wrk,' <<<"$out" || true)
  cpu=$(grep '^cpu,' <<<"$out" || true)
  if [ -z "$line" ] || [ -z "$cpu" ]; then die "$ep/$side: unexpected output: $out"; fi
  # Any error (an answer >= 400, a socket error, a timeout) means the run did not
  # measure what it says: stop.
  IFS=, read -r _ req _ _ _ _ c rd wr st to <<<"$line"
  if [ $((c + rd + wr + st + to)) -ne 0 ] || [ "$req" -eq 0 ]; then
    die "$ep/$side round $r: $req requests, errors connect $c read $rd write $wr status $st timeout $to"
  fi
  local redis_us=-1 worker_us=-1
  if [ "$r0" -ge 0 ]; then redis_us=$((r1 - r0)); fi
  if [ "$w0" -ge 0 ]; then worker_us=$((w1 - w0)); fi
  echo "$ep,$side,$r,${line#wrk,},${cpu#cpu,},$redis_us,$worker_us" >>"$RESULTS"
}

# ── What is measured ──────────────────────────────────────────────────────────
echo
echo "=== Hosts ($IMAGE, $(nproc) CPUs shared by all three, $(($(podman ps -q | wc -l) - 3)) other running" \
  "containers on this host, load average $(cut -d' ' -f1-3 /proc/loadavg)) ==="
gunicorn_conf=$(web cat "/etc/$APP/gunicorn.conf.py")
echo "web:    $(web nginx -v 2>&1 | sed 's/^nginx version: //'), worker_processes" \
  "$(web sh -c "grep -m1 -E '^\s*worker_processes' /etc/nginx/nginx.conf | tr -d ';' | awk '{ print \$2 }'");" \
  "gunicorn $(web "/opt/$APP/venv/bin/gunicorn" --version | awk '{ print $NF }' | tr -d ')'):" \
  "$(grep -E '^(workers|threads|max_requests) =' <<<"$gunicorn_conf" | tr '\n' ' ')"
echo "        wrk $(web dpkg-query -W -f "\${Version}" wrk), $THREADS threads, $CONNECTIONS connections"
echo "redis:  $(podman exec "$REDIS" redis-server --version | sed 's/.*v=\([^ ]*\).*/Redis \1/')"
echo "worker: $(podman exec "$WORKER" systemctl list-units --plain --no-legend "$APP-worker@*" |
  awk '{ print $1 }' | paste -sd' ')"

# What one gunicorn worker's boot costs: the app is imported in every new worker
# (no preload, so that a reload picks up a new release), and a worker is replaced
# after max_requests (+ jitter) requests. Measured on a reload with no traffic:
# gunicorn's CPU until it is idle again, divided by its workers.
gunicorn_cpu() { web python3 "$GUEST/guest-run.py" --cpu | cut -d, -f2; }
conf_int() { awk -v k="$1" '$1 == k && $2 == "=" { print $3 }' <<<"$gunicorn_conf"; }
WORKERS=$(conf_int workers) MAX_REQUESTS=$(conf_int max_requests) JITTER=$(conf_int max_requests_jitter)
c0=$(gunicorn_cpu)
web systemctl reload "$APP-web.service"
prev=$c0
for _ in $(seq 60); do
  sleep 1
  c=$(gunicorn_cpu)
  if [ $((c - prev)) -lt 20000 ] && [ "$c" -gt "$c0" ]; then break; fi
  prev=$c
done
BOOT_US=$(((c - c0) / WORKERS))
echo "        a gunicorn worker's boot (reload, no traffic): $((BOOT_US / 1000)) ms CPU;" \
  "one per ~$((MAX_REQUESTS + JITTER / 2)) requests per worker"

# ── Benchmark ─────────────────────────────────────────────────────────────────
echo
echo "=== wrk -c $CONNECTIONS -t $THREADS -d ${DURATION}s per run; $ROUNDS interleaved rounds, medians ==="
for ep in "${ENDPOINTS[@]}"; do
  for side in direct proxy; do run "$ep" "$side" 0 "$WARMUP"; done
done
sed -i '/^[^,]*,[^,]*,0,/d' "$RESULTS"
log "warm-up done"
n=${#ENDPOINTS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  t0=$SECONDS
  for ((i = 0; i < n; i++)); do
    ep=${ENDPOINTS[$(((i + r - 1) % n))]}
    # Both sides back to back, the first one alternating: the ratio of a
    # round compares runs seconds apart.
    if ((r % 2)); then sides=(direct proxy); else sides=(proxy direct); fi
    for side in "${sides[@]}"; do run "$ep" "$side" "$r" "$DURATION"; done
  done
  log "round $r/$ROUNDS done ($((SECONDS - t0)) s)"
done

# ── Report ────────────────────────────────────────────────────────────────────
echo
python3 "$ROOT/scripts/bench-api-stats.py" "$RESULTS" --rounds "$ROUNDS" --target "$TARGET" \
  --connections "$CONNECTIONS" --worker-boot-us "$BOOT_US" --requests-per-boot $((MAX_REQUESTS + JITTER / 2)) || die "cannot compute the report from $RESULTS"
echo
log "total runtime (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
