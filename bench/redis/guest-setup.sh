#!/usr/bin/env bash
# Runs INSIDE the bench container, after the role has converged its hardened
# redis-server (port 6379). scripts/bench-redis.sh copies it in and runs it.
#
#   guest-setup.sh STOCK_PORT [TLS_PLAIN_PORT TLS_PORT]
#
# Adds the comparison instances, each as Debian ships Redis: the packaged
# redis.conf (taken verbatim from the installed .deb, since the role replaced
# /etc/redis/redis.conf) and a copy of the packaged systemd unit (same User,
# same sandboxing). Only what two instances on one host must not share is
# changed: port, pidfile, logfile, dir, runtime directory.
#   redisops-bench-stock  STOCK_PORT                  the "stock" baseline
#   redisops-bench-tls    TLS_PLAIN_PORT and TLS_PORT one process serving the
#                         same data on a plain and a TLS port (plain vs TLS)
set -euo pipefail

stock_port=${1:?usage: guest-setup.sh STOCK_PORT [TLS_PLAIN_PORT TLS_PORT]}
tls_plain_port=${2:-}
tls_port=${3:-}
prefix=redisops-bench
debian_conf=/etc/redis/$prefix-debian.conf
tls_dir=/etc/redis/$prefix-tls

# ── Debian's packaged redis.conf, verbatim ────────────────────────────────────
version=$(dpkg-query -W -f '${Version}' redis-server)
deb=/var/cache/apt/archives/redis-server_${version//:/%3a}_$(dpkg --print-architecture).deb
if [ ! -f "$deb" ]; then
  dl=$(mktemp -d)
  (cd "$dl" && apt-get download -qq "redis-server=$version" 2>/dev/null)
  deb=$(find "$dl" -name 'redis-server_*.deb' | head -1)
fi
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/redis/redis.conf >"$debian_conf"
chown root:redis "$debian_conf"
chmod 0640 "$debian_conf"

packaged_unit=$(systemctl show -P FragmentPath redis-server.service)

# instance NAME DIRECTIVE...: a config that includes the packaged one, plus a
# copy of the packaged unit pointing at it.
instance() {
  local name=$1 conf=/etc/redis/$1.conf unit=/etc/systemd/system/$1.service
  shift
  {
    echo "# $name: Debian's packaged redis.conf, then only what must differ per instance."
    echo "include $debian_conf"
    echo "pidfile /run/$name/redis-server.pid"
    echo "logfile /var/log/redis/$name.log"
    echo "dir /var/lib/$name"
    printf '%s\n' "$@"
  } >"$conf"
  chown root:redis "$conf"
  chmod 0640 "$conf"
  install -d -o redis -g redis -m 0750 "/var/lib/$name"
  sed -e "/^ExecStart=/s|/etc/redis/redis\.conf|$conf|" \
      -e "s|^PIDFile=.*|PIDFile=/run/$name/redis-server.pid|" \
      -e "s|^RuntimeDirectory=.*|RuntimeDirectory=$name|" \
      -e "s|^ReadWritePaths=-/var/lib/redis\$|ReadWritePaths=-/var/lib/$name|" \
      -e "s|^ReadWritePaths=-/var/run/redis\$|ReadWritePaths=-/run/$name|" \
      -e "s|^ReadWritePaths=-/run/redis\$|ReadWritePaths=-/run/$name|" \
      -e '/^Alias=/d' \
      "$packaged_unit" >"$unit"
  # Must not share /run/redis (RuntimeDirectory) with the role's instance.
  if ! grep -q "^ExecStart=.*$conf" "$unit" || ! grep -q "^RuntimeDirectory=$name\$" "$unit"; then
    echo "guest-setup: could not adapt $packaged_unit for $name" >&2
    exit 1
  fi
}

units=("$prefix-stock")
plain_ports=("$stock_port")
instance "$prefix-stock" "port $stock_port"

if [ -n "$tls_port" ]; then
  # Throwaway CA and server certificate (EC P-256), valid for two days.
  install -d -o root -g redis -m 0750 "$tls_dir"
  (
    cd "$tls_dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj "/CN=$prefix-ca" -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt 2>/dev/null
    rm -f server.csr server.ext ca.key ca.srl
    chown root:redis ./*
    chmod 0640 ./*
  )
  # The TLS directives are the ones the role writes with redis_server_tls_enabled.
  units+=("$prefix-tls")
  plain_ports+=("$tls_plain_port")
  instance "$prefix-tls" "port $tls_plain_port" "tls-port $tls_port" \
    "tls-cert-file $tls_dir/server.crt" "tls-key-file $tls_dir/server.key" \
    "tls-ca-cert-file $tls_dir/ca.crt" "tls-auth-clients optional" \
    'tls-protocols "TLSv1.2 TLSv1.3"' "tls-prefer-server-ciphers yes"
fi

systemctl daemon-reload
systemctl restart "${units[@]}"
for port in "${plain_ports[@]}"; do
  for _ in $(seq 50); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ] && continue 2
    sleep 0.2
  done
  echo "guest-setup: no PONG on port $port" >&2
  systemctl status "${units[@]}" --no-pager >&2 || true
  exit 1
done
