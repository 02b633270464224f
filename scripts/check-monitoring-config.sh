#!/usr/bin/env bash
# Renders the monitoring role's Prometheus config, Alertmanager config and
# rule files with the role's defaults and roles/monitoring/tests/lint-vars.yml,
# then checks them with promtool and amtool (make lint), as the role's
# `validate:` does on a host. Needs build/tools/bin (scripts/install-prom-tools.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=build/tools/bin
ROLE=roles/monitoring
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
render() { # template, destination, extra -e
  ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
    ansible localhost -c local -m ansible.builtin.template \
    -a "src=$ROLE/templates/$1 dest=$2 mode=0600" \
    -e "@$ROLE/defaults/main.yml" -e "@$ROLE/tests/lint-vars.yml" "${@:3}" >/dev/null
}
mkdir -p "$out/rules"
for rules in "$ROLE"/files/rules/*.rules.yml; do
  render etc/prometheus/rules/rules.yml.j2 "$out/rules/$(basename "$rules")" -e "item=$PWD/$rules"
done
render etc/prometheus/prometheus.yml.j2 "$out/prometheus.yml"
render etc/prometheus/alertmanager.yml.j2 "$out/alertmanager.yml"
# The rendered rules are the shipped ones (RedisDown's `for` from lint-vars).
"$BIN/promtool" check rules "$out"/rules/*.rules.yml
grep -q '"for": "20s"' "$out/rules/redis.rules.yml" || { echo "monitoring_alert_for not applied" >&2; exit 1; }
sed -i "s|/etc/prometheus/rules/|$out/rules/|" "$out/prometheus.yml"
"$BIN/promtool" check config "$out/prometheus.yml"
"$BIN/amtool" check-config "$out/alertmanager.yml"
