#!/usr/bin/env bash
# Puts promtool and amtool (make lint: rule checks and tests, Alertmanager
# config check) into build/tools/bin, from the distribution's packages
# `prometheus` and `prometheus-alertmanager`, without installing them: an
# install would start Prometheus and Alertmanager on the controller. Downloads
# the two .debs with apt-get and extracts only the two binaries. No root needed
# (apt's lists must exist: scripts/install-deps.sh runs apt-get update).
# A no-op when both are there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=build/tools/bin
if [ -x "$BIN/promtool" ] && [ -x "$BIN/amtool" ]; then
  exit 0
fi
mkdir -p "$BIN"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt drops to the _apt user to download: it must be able to write here.
chmod 0777 "$tmp"
(cd "$tmp" && apt-get download -qq prometheus prometheus-alertmanager 2>/dev/null) || {
  echo "install-prom-tools: apt-get download failed (run apt-get update, or make deps as root)" >&2
  exit 1
}
for deb in "$tmp"/prometheus_*.deb "$tmp"/prometheus-alertmanager_*.deb; do
  dpkg-deb -x "$deb" "$tmp/root"
done
install -m 0755 "$tmp/root/usr/bin/promtool" "$tmp/root/usr/bin/amtool" "$BIN/"
echo "install-prom-tools: $("$BIN/promtool" --version 2>&1 | head -1); $("$BIN/amtool" --version 2>&1 | head -1)"
