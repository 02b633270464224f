#!/bin/sh
# The monitoring scenario's network on a subnet of its own (no other scenario
# uses 10.0.40.0/24), made before Molecule's create, which reuses a network
# that exists (its schema takes no subnet). Molecule's destroy removes it.
set -eu
podman network exists redisops-mon ||
    podman network create --subnet 10.0.40.0/24 redisops-mon >/dev/null
