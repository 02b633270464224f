#!/bin/sh
# The production scenario's vault password (ANSIBLE_VAULT_PASSWORD_FILE): made
# at random on first use and kept next to the secrets prepare.yml encrypts with
# it, in host_vars/ (outside git: see its .gitignore).
set -eu
file="$(dirname "$0")/host_vars/.vault-password"
if [ ! -s "$file" ]; then
    umask 077
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file.tmp"
    mv "$file.tmp" "$file"
fi
cat "$file"
