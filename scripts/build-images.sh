#!/usr/bin/env bash
# Build the local systemd test-host images from the Debian mirror (no registry needed).
#
#   scripts/build-images.sh [debian11] [debian12] [debian13]     (default: debian12)
#
# Each image is tagged localhost/<name>-systemd:latest and labelled with a hash of this
# script and its suite; an image whose label matches is reused, so a re-run costs seconds.
# Debian 11/12/13 stand in for Ubuntu 22.04/24.04/26.04 (same Redis generations 6.0/7.0/8.x).
set -euo pipefail

declare -A SUITES=([debian11]=bullseye [debian12]=bookworm [debian13]=trixie)
# What every test host needs before Ansible runs: systemd as PID 1, Python for Ansible,
# python3-apt for ansible.builtin.apt, iproute2 so facts report addresses.
PACKAGES=systemd,systemd-sysv,python3,python3-apt,sudo,dbus,iproute2,ca-certificates
LABEL=io.redisops.image-inputs

self_hash=$(sha256sum "$0" | cut -c1-16)
[ $# -gt 0 ] || set -- debian12

build() {
  local name=$1 suite=${SUITES[$1]:?unknown image $1 (known: ${!SUITES[*]})}
  local tag="localhost/$name-systemd:latest" want="$self_hash-$suite" have root
  have=$(podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$tag" 2>/dev/null || true)
  if [ "$have" = "$want" ]; then
    echo "image $tag is up to date"
    return
  fi
  echo "building $tag from Debian $suite (about a minute)"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$root" >"$root.log" 2>&1 ||
    { tail -20 "$root.log"; exit 1; }
  rm -f "$root.log"
  : >"$root/etc/machine-id"                     # else every container shares one id
  rm -f "$root/var/lib/dbus/machine-id" "$root"/var/cache/apt/archives/*.deb
  # No loadable modules in a container: this unit can only fail there.
  ln -sf /dev/null "$root/etc/systemd/system/systemd-modules-load.service"
  tar -C "$root" -c . | podman import --quiet \
    --change 'CMD ["/sbin/init"]' --change "LABEL $LABEL=$want" - "$tag" >/dev/null
  echo "built $tag"
}

pids=()
for name in "$@"; do build "$name" & pids+=($!); done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
exit $rc
