#!/usr/bin/env bash
# Build this checkout as the collection redisops.bundle (galaxy.yml) and install
# the tarball into a collections path, as a user would, without Galaxy: the
# dependencies (ansible.posix) must already be there, as the ansible package
# bundles them. The Molecule scenario tls runs this as its dependency step, then
# converges the role by its full name from that path.
#
#   scripts/install-collection.sh DIR   ->  DIR/ansible_collections/redisops/bundle
#   ANSIBLE_COLLECTIONS_PATH=DIR ansible-playbook ...   # roles: [redisops.bundle.redis_server]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:?usage: install-collection.sh COLLECTIONS_DIR}
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT

ansible-galaxy collection build --output-path "$dist" "$ROOT"
tarball=$(find "$dist" -name 'redisops-bundle-*.tar.gz')
rm -rf "$dest/ansible_collections/redisops/bundle"
mkdir -p "$dest"
ANSIBLE_COLLECTIONS_PATH=$dest ansible-galaxy collection install --offline -p "$dest" "$tarball"
echo "install-collection: $(tar -tzf "$tarball" | wc -l) entries of $(basename "$tarball")" \
  "in $dest/ansible_collections/redisops/bundle"
