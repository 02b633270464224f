"""A real gunicorn serving config.wsgi with production settings, bound as the
deployment contract says: a UNIX socket (the proxy's way in, the only peer
trusted for X-Forwarded-Proto) and, for the tests, a loopback TCP port that
plays a client reaching gunicorn directly (a peer no setting trusts).

No proxy runs here: a request "through the proxy" is one sent to the socket
with the headers nginx sets (X-Forwarded-For: the client's address,
X-Forwarded-Proto: https).
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from redisops.tests.conftest import APP_DIR, Proc, subprocess_env, wait_for
from redisops.tests.redis_proc import free_port

SECRET = "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789"

# As the gunicorn role renders it for the web host: X-Forwarded-Proto counts
# only from trusted peers, and no TCP peer is trusted (gunicorn always trusts
# a UNIX-socket peer). gunicorn's own default would trust 127.0.0.1.
GUNICORN_CONF = """\
bind = [{unix!r}, {tcp!r}]
workers = 2
secure_scheme_headers = {{"X-FORWARDED-PROTO": "https"}}
forwarded_allow_ips = ""
accesslog = "-"
"""


def production_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Production settings on the test Redis (its ACL users, one per purpose)."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": SECRET,
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "DJANGO_STATE_DIR": str(state_dir),
        # gunicorn is the web process: the test Redis's URLs of its users.
        "APP_PROCESS": "web",
        # The session's token file (clients alice and bob) unless overridden.
        "APP_API_TOKENS_FILE": settings.APP_API_TOKENS_FILE,
        **settings.REDIS_TEST_URLS,
        **extra,
    }


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


@dataclass
class Gunicorn:
    proc: Proc
    socket_path: Path
    port: int

    def _send(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        headers: dict[str, str] | None,
        body: Any,
    ) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        head = {"Host": "localhost", **(headers or {})}
        if data is not None:
            head["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=head)
            response = conn.getresponse()
            return Answer(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read().decode(),
            )
        finally:
            conn.close()

    def via_socket(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> Answer:
        """A request from the proxy: over the UNIX socket."""
        conn = _UnixConnection(str(self.socket_path), timeout=10)
        return self._send(conn, method, path, headers, body)

    def via_tcp(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> Answer:
        """A request from a client that reached gunicorn directly over TCP."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        return self._send(conn, method, path, headers, body)


def start_gunicorn(workdir: Path, **env: str) -> Gunicorn:
    """gunicorn config.wsgi with production settings and ``env``; returns
    once it answers on both the socket and the TCP port. The caller stops
    ``.proc``."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "state"
    state.mkdir(exist_ok=True)
    sock = workdir / "gunicorn.sock"
    port = free_port()
    conf = workdir / "gunicorn.conf.py"
    conf.write_text(GUNICORN_CONF.format(unix=f"unix:{sock}", tcp=f"127.0.0.1:{port}"))
    proc = Proc(
        [sys.executable, "-m", "gunicorn", "--config", str(conf), "config.wsgi"],
        workdir / "gunicorn.log",
        subprocess_env(**production_env(state, **env)),
    )
    server = Gunicorn(proc, sock, port)

    def answers() -> bool:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{proc.output[-3000:]}")
        try:
            return (
                server.via_tcp("GET", "/healthz").status == 200
                and server.via_socket("GET", "/healthz").status == 200
            )
        except OSError as exc:
            raise AssertionError(repr(exc)) from None

    try:
        wait_for(answers, timeout=30, interval=0.1, what="gunicorn on socket and TCP")
    except BaseException:
        proc.stop()
        raise
    return server


__all__ = ["APP_DIR", "Answer", "Gunicorn", "production_env", "start_gunicorn"]
