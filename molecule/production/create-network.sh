#!/bin/sh
# The production scenario's network, on the example inventory's private
# subnet (its Redis firewall admits 10.0.20.0/24), made before Molecule's
# create, which reuses a network that exists (its schema takes no subnet).
# Molecule's destroy removes it.
set -eu
podman network exists redisops-prod ||
    podman network create --subnet 10.0.20.0/24 redisops-prod >/dev/null
