#!/usr/bin/env bash
# Run the benchmark (bench/bench.py) in the app's venv against a redis-server
# it starts on loopback. Arguments go to bench.py (--quick, --duration, ...).
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(dirname "$APP_DIR")
VENV=${APP_VENV:-$REPO/.venv-app}

bash "$APP_DIR/scripts/venv.sh"
cd "$APP_DIR"
exec "$VENV/bin/python" bench/bench.py "$@"
