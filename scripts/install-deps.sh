#!/usr/bin/env bash
# Install the controller's system packages (Debian/Ubuntu, as root): podman with
# runc for the local systemd test hosts, debootstrap to build their images,
# redis-server for the app's tests and the benchmarks, shellcheck for make lint;
# then promtool and amtool for make lint, extracted from the distribution's
# packages without installing them (scripts/install-prom-tools.sh).
# A no-op when present.
set -euo pipefail
PACKAGES=(podman runc debootstrap redis-server redis-tools python3-venv make shellcheck)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exec "$(dirname "$0")/install-prom-tools.sh"
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
# The tests start their own redis-server instances; the packaged one is not needed.
if [[ " ${missing[*]} " == *" redis-server "* ]]; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
exec "$(dirname "$0")/install-prom-tools.sh"
