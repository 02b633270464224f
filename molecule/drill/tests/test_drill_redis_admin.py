"""redis-admin (root's redis-cli as the admin user) talks only to this host's Redis as the
role configured it, and never without a password: with Redis down and another program
listening on its port, it fails and that program receives nothing, not even AUTH.
On the second Redis host (redis-drill-new), which the other drills leave alone after
the restore drill: first as converged (unix socket), then on another port without a
socket, then back. The scenario's Redis serves TLS only: its port is the TLS port.

Runbook: docs/runbooks/redis-down.md
"""

import shlex
import uuid

from redisops_testlib.hosts import STATE_DIR, write_file
from redisops_testlib.playbooks import run_playbook
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin, admin_run, ping
from redisops_testlib.scenario import scenario_of

SCENARIO = scenario_of(__file__)
PORT = SCENARIO.redis_port  # the port Redis serves (TLS, in this scenario)
# The setting and Redis's config parameter of that port.
PORT_VAR, PORT_PARAM = ("redis_server_tls_port", "tls-port") if SCENARIO.redis_tls else ("redis_server_port", "port")
OTHER_PORT = 6390
TAGS = "redis_server"  # the whole role, on that host only

# Another local program on Redis's port: it answers +OK to anything (as a thief
# would, to get the next command) and writes down every byte it receives.
LISTENER = """import socket, sys, time
port, log, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(8)
s.settimeout(0.5)
open(log + ".ready", "w").close()
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.settimeout(1)
    try:
        while data := c.recv(65536):
            with open(log, "ab") as f:
                f.write(data)
            c.sendall(b"+OK\\r\\n")
    except OSError:
        pass
    c.close()
"""


class Listener:
    """LISTENER on 127.0.0.1:port of the host, for 120 s at most."""

    def __init__(self, host, port: int) -> None:
        self.host, self.log = host, f"{STATE_DIR}/listener-{uuid.uuid4().hex[:8]}"
        write_file(host, f"{STATE_DIR}/listener.py", LISTENER)
        args = shlex.join(["python3", f"{STATE_DIR}/listener.py", str(port), self.log, "120"])
        host.check_output(f"setsid {args} >{self.log}.out 2>&1 </dev/null & echo $! >{self.log}.pid")
        wait_for(lambda: host.file(self.log + ".ready").exists, timeout=10)

    def received(self) -> str:
        f = self.host.file(self.log)
        return f.content_string if f.exists else ""

    def stop(self) -> None:
        self.host.run(f"kill $(cat {self.log}.pid)")


def _redis_admin_sends_nothing_to(host, port: int, says: str) -> None:
    """Redis stopped, a listener on its port: redis-admin fails, naming why, and the
    listener received nothing; then the listener is shown to work (it records what an
    unauthenticated redis-cli sends), and Redis is started again."""
    host.check_output("systemctl stop redis-server")
    listener = Listener(host, port)
    try:
        r = admin_run(host, "ACL", "LIST")
        print(f"redis-admin with Redis down, a listener on {port}: exit {r.rc}: {r.stderr.strip()}")
        assert listener.received() == ""
        assert r.rc == 1
        assert says in r.stderr
        assert host.run(f"redis-cli -h 127.0.0.1 -p {port} PING </dev/null").stdout.strip() == "OK"
        assert "PING" in listener.received()
    finally:
        listener.stop()
        host.check_output("systemctl start redis-server")
    wait_for(lambda: ping(host) == "PONG", timeout=30)


def test_redis_admin_never_talks_to_another_program_on_the_port(new_server):
    # Converged with the unix socket: only the socket, which Redis creates as the
    # redis user; never the TCP port, with or without a password.
    assert ping(new_server) == "PONG"
    _redis_admin_sends_nothing_to(new_server, PORT, "no socket /run/redis/redis-server.sock owned by redis")


def test_redis_admin_uses_the_configured_port_when_there_is_no_socket(new_server):
    new_host = new_server.backend.get_hostname()
    try:
        run_playbook(
            SCENARIO.converge,
            {"redis_server_unixsocket": "", PORT_VAR: OTHER_PORT},
            tags=TAGS,
            limit=new_host,
        )
        # It reaches the Redis on the configured port, authenticated as the admin.
        assert admin(new_server, "CONFIG", "GET", PORT_PARAM).splitlines()[-1] == str(OTHER_PORT)
        assert admin(new_server, "CONFIG", "GET", "unixsocket").splitlines()[1:] in ([], [""])
        assert admin(new_server, "ACL", "WHOAMI") == "admin"
        # Another program on that port, Redis down: nothing sent to it.
        _redis_admin_sends_nothing_to(new_server, OTHER_PORT, f"127.0.0.1:{OTHER_PORT} is not served by redis-server")
    finally:
        run_playbook(SCENARIO.converge, tags=TAGS, limit=new_host)
    assert admin(new_server, "CONFIG", "GET", PORT_PARAM).splitlines()[-1] == str(PORT)
