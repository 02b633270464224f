#!/bin/sh
# The ha scenario's network on a subnet of its own (10.0.30.0/24; production
# uses 10.0.20.0/24), made before Molecule's create, which reuses a network
# that exists (its schema takes no subnet). Molecule's destroy removes it.
set -eu
podman network exists redisops-ha ||
    podman network create --subnet 10.0.30.0/24 redisops-ha >/dev/null
