#!/usr/bin/env bash
# The app's checks, as `make test` runs them: venv, ruff lint + format, pytest
# (real redis-server and Celery worker started by the fixtures).
# Extra arguments go to pytest, e.g. scripts/test.sh -k streams
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(dirname "$APP_DIR")
VENV=${APP_VENV:-$REPO/.venv-app}

bash "$APP_DIR/scripts/venv.sh"
if ! command -v redis-server >/dev/null && [[ ! -x /usr/bin/redis-server ]]; then
    echo "test.sh: redis-server is missing (apt-get install -y redis-server)" >&2
    exit 1
fi
# The tests assert what Redis 6.2 brought (XAUTOCLAIM, channel ACLs, CLIENT
# PAUSE WRITE). The app itself runs on 6.0 too (XPENDING + XCLAIM; channels
# unrestricted): the drill lane of `make test` proves that on a 6.0 host.
redis_version=$(PATH=/usr/bin:$PATH redis-server --version | sed -n 's/.* v=\([0-9]*\.[0-9]*\).*/\1/p')
if [[ $(printf '%s\n' 6.2 "$redis_version" | sort -V | head -1) != 6.2 ]]; then
    echo "test.sh: the app's tests need redis-server >= 6.2 on this machine; it has $redis_version" \
        "(Ubuntu 22.04 ships 6.0: run them on Ubuntu 24.04 / Debian 12 or later)" >&2
    exit 1
fi

cd "$APP_DIR"
echo "== ruff check" >&2
"$VENV/bin/ruff" check .
echo "== ruff format --check" >&2
"$VENV/bin/ruff" format --check .
echo "== pytest" >&2
"$VENV/bin/python" -m pytest "$@"
