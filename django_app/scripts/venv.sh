#!/usr/bin/env bash
# Create or update the app's virtualenv ($REPO/.venv-app, or $APP_VENV) with
# the app (editable) and its test and bench dependencies, pinned by
# pyproject.toml + constraints.txt. Fast no-op when already up to date: a stamp
# holds the hash of the files that decide what is installed.
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(dirname "$APP_DIR")
VENV=${APP_VENV:-$REPO/.venv-app}
PYTHON=${PYTHON:-python3}
STAMP=$VENV/.redisops-stamp
PIP_VERSION=25.3

want=$(cat "$APP_DIR/pyproject.toml" "$APP_DIR/constraints.txt" "$APP_DIR/VERSION" \
    "$0" | sha256sum | cut -d' ' -f1)
if [[ -x $VENV/bin/python && -f $STAMP && $(<"$STAMP") == "$want" ]]; then
    exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "venv.sh: need Python >= 3.10 as '$PYTHON' (set PYTHON=...)" >&2
    exit 1
fi

if [[ ! -x $VENV/bin/python ]]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        # Debian's python3 has no ensurepip without python3-venv.
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            echo "venv.sh: installing python3-venv" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
            "$PYTHON" -m venv "$VENV"
        else
            echo "venv.sh: '$PYTHON -m venv' failed; install python3-venv" >&2
            exit 1
        fi
    fi
fi

echo "venv.sh: installing redisops-app and test/bench dependencies into $VENV" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pip==$PIP_VERSION"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --constraint "$APP_DIR/constraints.txt" --editable "${APP_DIR}[test,bench]"
echo "$want" >"$STAMP"
