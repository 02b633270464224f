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

cd "$APP_DIR"
echo "== ruff check" >&2
"$VENV/bin/ruff" check .
echo "== ruff format --check" >&2
"$VENV/bin/ruff" format --check .
echo "== pytest" >&2
"$VENV/bin/python" -m pytest "$@"
