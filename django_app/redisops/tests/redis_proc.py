"""Start and stop a throwaway redis-server (tests and the benchmark)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from redisops import redis_acl
from redisops.tests.tls_pki import client_tls_kwargs, server_tls_lines

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
ADMIN_USER = "test_admin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_version() -> tuple[int, int]:
    out = subprocess.run(  # noqa: S603 - fixed redis-server path, no shell
        [REDIS_SERVER, "--version"], capture_output=True, text=True, check=True
    ).stdout
    version = out.split("v=", 1)[1].split()[0]
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def password(user: str) -> str:
    """Test-only password convention: '<user>-pw'."""
    return f"{user}-pw"


class RedisProcess:
    """redis-server on 127.0.0.1:<port>, no persistence, optional ACL users
    and ``extra_lines`` of configuration; TLS only with the certificates of
    ``pki`` (tls_pki.make_pki) when given.

    With ``acl=True`` the default user is off and the users of
    redisops.redis_acl exist (password '<name>-pw'), plus test_admin (+@all).
    ``maxmemory`` (e.g. "8mb"), as the redis_server role sets one: the app's
    storage budget is a share of it.
    """

    def __init__(
        self,
        port: int,
        workdir: Path,
        *,
        acl: bool = True,
        maxmemory: str | None = None,
        extra_lines: tuple[str, ...] = (),
        pki: Path | None = None,
    ) -> None:
        self.port = port
        self.workdir = Path(workdir)
        self.acl = acl
        self.maxmemory = maxmemory
        self.extra_lines = extra_lines
        self.pki = pki
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf_path(self) -> Path:
        return self.workdir / f"redis-{self.port}.conf"

    def write_conf(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"dir {self.workdir}",
            'save ""',
            "appendonly no",
            f"logfile {self.workdir / f'redis-{self.port}.log'}",
            "maxmemory-policy noeviction",
        ]
        if self.maxmemory:
            lines.append(f"maxmemory {self.maxmemory}")
        if self.acl:
            version = server_version()
            if version >= (7, 0):
                # Let the ACL, not this switch, be what refuses DEBUG.
                lines.append("enable-debug-command yes")
            lines.append("user default off resetkeys -@all")
            lines.append(
                f"user {ADMIN_USER} on >{password(ADMIN_USER)} ~* &* +@all"
                if version >= (6, 2)
                else f"user {ADMIN_USER} on >{password(ADMIN_USER)} ~* +@all"
            )
            for user in redis_acl.USERS:
                lines.append(
                    f"user {user.name} on >{password(user.name)} {user.rule(version)}"
                )
        lines.extend(self.extra_lines)
        if self.pki:
            lines.extend(server_tls_lines(self.pki, self.port))
        self.conf_path.write_text("\n".join(lines) + "\n")

    def url(self, user: str | None = ADMIN_USER, db: int = 0) -> str:
        if self.acl and user:
            return f"redis://{user}:{password(user)}@127.0.0.1:{self.port}/{db}"
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> None:
        self.write_conf()
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf_path)])  # noqa: S603 - our redis-server, our conf
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.workdir / f"redis-{self.port}.log"
                raise RuntimeError(f"redis-server exited: {log.read_text()[-2000:]}")
            if self._answers():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def _answers(self) -> bool:
        try:
            if self.pki:
                return bool(self.admin().ping())
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except (OSError, redis.RedisError):
            return False

    def admin(self) -> redis.Redis:
        """A client as the test's admin user (over TLS when the server is)."""
        tls = client_tls_kwargs(self.pki) if self.pki else {}
        return redis.Redis(
            port=self.port,
            username=ADMIN_USER,
            password=password(ADMIN_USER),
            decode_responses=True,
            socket_timeout=5,
            **tls,
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def celery_argv(command: str, *args: str) -> list[str]:
    """``celery --app config.celery_app COMMAND ARGS`` with this interpreter."""
    return [
        sys.executable,
        "-m",
        "celery",
        "--app",
        "config.celery_app",
        command,
        *args,
    ]


def worker_argv(loglevel: str, *args: str) -> list[str]:
    """A prefork worker (2 processes) on both queues, without the control-bus
    chatter (gossip, mingle, heartbeat) that only slows a one-worker setup."""
    from django.conf import settings  # the queues are defined once, in settings

    queues = ",".join(q.name for q in settings.CELERY_TASK_QUEUES)
    return celery_argv(
        "worker",
        "--loglevel",
        loglevel,
        "--queues",
        queues,
        "--concurrency",
        "2",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *args,
    )
