"""HTTP from a test host (hosts have no curl: the host's python3 and urllib).

Shared by the scenarios that call the deployed API (app, drill).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

_GUNICORN_DEFAULTS = Path(__file__).resolve().parents[2] / "roles/gunicorn/defaults/main.yml"

# Production settings redirect plain HTTP to HTTPS except for the probes; the
# proxy that ends TLS says so with this header (the app trusts one proxy).
HTTPS = {"X-Forwarded-Proto": "https"}

_HTTP = r"""
import json, sys, urllib.request, urllib.error
req = json.loads(sys.argv[1])
data = None if req["body"] is None else json.dumps(req["body"]).encode()
r = urllib.request.Request(req["url"], data=data, method=req["method"], headers=req["headers"])
if data is not None:
    r.add_header("Content-Type", "application/json")
try:
    resp = urllib.request.urlopen(r, timeout=req["timeout"])
except urllib.error.HTTPError as e:
    resp = e
body = resp.read().decode()
print(json.dumps({"status": resp.status, "headers": dict(resp.headers), "body": body}))
"""


def http(host, method: str, url: str, body: Any = None, headers: dict | None = None,
         timeout: float = 10) -> dict[str, Any]:
    """One HTTP request made on `host`; returns status, headers and body (JSON if it is)."""
    req = {"method": method, "url": url, "body": body, "headers": headers or {}, "timeout": timeout}
    r = host.run(f"python3 -c {shlex.quote(_HTTP)} {shlex.quote(json.dumps(req))}")
    assert r.rc == 0, r.stderr
    out = json.loads(r.stdout)
    try:
        out["json"] = json.loads(out["body"])
    except ValueError:
        out["json"] = None
    return out


def api_url(host_name: str) -> str:
    """The API as other hosts reach it: the gunicorn role's default socket on
    host_name (the one place that port is set)."""
    listen = yaml.safe_load(_GUNICORN_DEFAULTS.read_text())["gunicorn_listen"][0]
    return f"http://{host_name}:{str(listen).rsplit(':', 1)[-1]}"
