#!/usr/bin/env bash
# Build the app wheel and download every dependency as a wheel for the app
# hosts' Pythons (manylinux x86_64), so that on a host without PyPI:
#   python3 -m venv v && v/bin/pip install --no-index --find-links OUTDIR redisops-app
# Usage: scripts/wheelhouse.sh [OUTDIR] [PYVER...]
#   default: build/wheelhouse 3.10 3.11 3.12 3.13 (Ubuntu 22.04, Debian 12,
#   Ubuntu 24.04, Debian 13)
# APP_VERSION=0.1.1 builds the wheel with another version (rollback tests).
# WHEELHOUSE_APP_ONLY=1 builds only the app wheel (the dependencies are already
#   in OUTDIR from a full run): how tests add a second version in seconds.
# APP_EXTRAS=postgres adds the extra's dependencies (install with
#   pip install --no-index --find-links OUTDIR "redisops-app[postgres]").
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(dirname "$APP_DIR")
OUT=${1:-$REPO/build/wheelhouse}
shift || true
PYVERS=("$@")
[[ ${#PYVERS[@]} -gt 0 ]] || PYVERS=(3.10 3.11 3.12 3.13)
requirement="redisops-app${APP_EXTRAS:+[$APP_EXTRAS]}"
VENV=${APP_VENV:-$REPO/.venv-app}

bash "$APP_DIR/scripts/venv.sh"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

src=$APP_DIR
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -n ${APP_VERSION:-} ]]; then
    # Build from a copy whose VERSION says otherwise; the tree stays untouched.
    tar -C "$APP_DIR" --exclude=.state --exclude='*.egg-info' --exclude=__pycache__ \
        -cf - . | tar -C "$tmp" -xf -
    echo "$APP_VERSION" >"$tmp/VERSION"
    src=$tmp
fi
version=$(<"$src/VERSION")
echo "wheelhouse: building redisops-app $version into $OUT" >&2
"${PIP[@]}" wheel --quiet --no-deps --wheel-dir "$OUT" "$src"
rm -rf "$APP_DIR/build" "$src/build" "$APP_DIR"/*.egg-info 2>/dev/null || true
[[ -z ${WHEELHOUSE_APP_ONLY:-} ]] || exit 0

# pip evaluates environment markers with the Python running it, not the
# target's: redis needs async-timeout on Python < 3.11.3 (Ubuntu 22.04's 3.10,
# Debian 12's 3.11.2), so it is always downloaded explicitly.
for pyver in "${PYVERS[@]}"; do
    abi=cp${pyver/./}
    echo "wheelhouse: dependencies for CPython $pyver (manylinux x86_64)" >&2
    "${PIP[@]}" download --quiet --dest "$OUT" --find-links "$OUT" \
        --only-binary=:all: --implementation cp --python-version "$pyver" \
        --abi "$abi" --abi abi3 --abi none \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any \
        --constraint "$APP_DIR/constraints.txt" "$requirement==$version" \
        async-timeout
done
ls "$OUT" >&2
