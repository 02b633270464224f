# shellcheck shell=bash
# Throwaway systemd test hosts for the benchmarks (sourced by scripts/bench-*.sh).
# The caller sets NET (podman network), LABEL (key=value on everything made
# here), IMAGE, WORK (scratch folder), KEEP (1: leave it all running), HOSTS
# (array of container names) and defines die().

# bench_hosts_up: remove our leftovers (by label only: a same-named container or
# network without LABEL is someone else's and stops the run), then start HOSTS
# on NET and wait until systemd runs in each.
bench_hosts_up() {
  local name state
  for name in "${HOSTS[@]}"; do
    podman container exists "$name" || continue
    [ -n "$(podman ps -aq --filter "name=^$name\$" --filter "label=$LABEL")" ] ||
      die "a container named $name exists without label $LABEL: not touching it"
    podman rm -f -t 0 "$name" >/dev/null
  done
  if podman network exists "$NET"; then
    [ -n "$(podman network ls -q --filter "name=^$NET\$" --filter "label=$LABEL")" ] ||
      die "a network named $NET exists without label $LABEL: not touching it"
    podman network rm "$NET" >/dev/null
  fi
  podman network create --label "$LABEL" "$NET" >/dev/null
  for name in "${HOSTS[@]}"; do
    podman run -d --name "$name" --hostname "$name" --label "$LABEL" --network "$NET" \
      --runtime runc --cgroup-manager=cgroupfs --systemd=always \
      --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
      "localhost/$IMAGE-systemd:latest" >/dev/null
  done
  for name in "${HOSTS[@]}"; do
    # Right after `podman run` systemd may not have its bus yet: retry until it answers.
    state=
    for _ in $(seq 100); do
      state=$(podman exec "$name" systemctl is-system-running --wait 2>/dev/null || true)
      case $state in running | degraded) break ;; esac
      sleep 0.3
    done
    case $state in
      running | degraded) ;;
      *) die "systemd in $name did not finish booting: ${state:-no answer}" ;;
    esac
  done
}

# bench_hosts_cleanup HINT...: the EXIT trap. Removes HOSTS, NET and WORK, or with
# KEEP=1 says what was left and prints each HINT line (how to look around).
bench_hosts_cleanup() {
  local rc=$? hint
  if [ "$KEEP" = 1 ]; then
    echo
    echo "KEEP=1: left running: containers ${HOSTS[*]}, network $NET; raw results in $WORK"
    for hint in "$@"; do echo "  $hint"; done
    echo "  podman rm -f ${HOSTS[*]} && podman network rm $NET && rm -rf $WORK   # clean up"
  else
    podman rm -f -t 0 "${HOSTS[@]}" >/dev/null 2>&1 || true
    podman network rm "$NET" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  exit "$rc"
}
