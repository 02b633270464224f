"""A replicated Redis under three Sentinels on loopback, as the redis_server and
redis_sentinel roles set them up (ACL everywhere, default user off): a master,
one replica and three ``redis-server --sentinel`` (quorum 2). With a ``pki``
(tls_pki.make_pki, its server certificate naming IP:127.0.0.1, the address
the Sentinels report) every connection is TLS with client certificates:
clients', replication's and the Sentinels' own."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from redisops.tests.redis_proc import REDIS_SERVER, RedisProcess, free_port, password
from redisops.tests.tls_pki import client_tls_kwargs, server_tls_lines

# The data nodes' users for replication and Sentinel (roles/redis_server's
# replication users; the test's copy of their rules).
DATA_NODE_USERS = (
    f"user replicator on >{password('replicator')} -@all +psync +replconf +ping",
    f"user sentinel on >{password('sentinel')} resetchannels &__sentinel__:hello -@all "
    "+multi +exec +slaveof +replicaof +ping +subscribe +publish +info +role "
    "+config|rewrite +client|setname +client|kill +script|kill",
    "masteruser replicator",
    f"masterauth {password('replicator')}",
)
# Sentinel's users (roles/redis_sentinel): what redis-py's Sentinel client needs.
SENTINEL_CLIENT_RULE = (
    "-@all +ping +hello +client|setname +sentinel|masters +sentinel|master "
    "+sentinel|slaves +sentinel|replicas +sentinel|sentinels "
    "+sentinel|get-master-addr-by-name"
)


def _pairs(flat: list[str]) -> dict[str, str]:
    """A Sentinel reply's flat field/value list as a mapping."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


class SentinelGroup:
    """Master + ``replicas`` replicas + three Sentinels; ``stop()`` ends them all."""

    def __init__(
        self, workdir: Path, pki: Path | None = None, replicas: int = 1
    ) -> None:
        self.workdir = workdir
        self.pki = pki
        first = free_port()
        replica = (*DATA_NODE_USERS, f"replicaof 127.0.0.1 {first}")
        self.nodes = [
            # maxmemory as the role sets one (the app's storage budget needs it).
            RedisProcess(
                first,
                workdir / "a",
                maxmemory="64mb",
                extra_lines=DATA_NODE_USERS,
                pki=pki,
            ),
            *(
                RedisProcess(
                    free_port(),
                    workdir / chr(ord("b") + i),
                    maxmemory="64mb",
                    extra_lines=replica,
                    pki=pki,
                )
                for i in range(replicas)
            ),
        ]
        # A name of its own: django-redis keeps connection pools per process,
        # keyed by the cache URL, which holds the master's name.
        self.master_name = f"group-{first}"
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []
        # When the last switchover paused, saw every Sentinel name the new
        # master, lifted the pause (time.monotonic()).
        self.paused_at = self.named_at = self.unpaused_at = 0.0

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for port in self.sentinel_ports:
            self.sentinels.append(self._start_sentinel(port))
        self.wait_ready()

    def _start_sentinel(self, port: int) -> subprocess.Popen[bytes]:
        folder = self.workdir / f"sentinel-{port}"
        folder.mkdir(parents=True)
        conf = folder / "sentinel.conf"  # Sentinel rewrites it: its own, writable
        name, master = self.master_name, self.nodes[0].port
        conf.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    f"dir {folder}",
                    f"logfile {folder / 'sentinel.log'}",
                    f"sentinel monitor {name} 127.0.0.1 {master} 2",
                    f"sentinel down-after-milliseconds {self.master_name} 1000",
                    f"sentinel failover-timeout {self.master_name} 10000",
                    f"sentinel auth-user {self.master_name} sentinel",
                    f"sentinel auth-pass {self.master_name} {password('sentinel')}",
                    "sentinel sentinel-user peer",
                    f"sentinel sentinel-pass {password('peer')}",
                    "user default off",
                    f"user admin on >{password('admin')} ~* &* +@all",
                    f"user peer on >{password('peer')} &__sentinel__:hello -@all +ping "
                    "+hello +publish +client|setname +sentinel|is-master-down-by-addr",
                    f"user client on >{password('client')} {SENTINEL_CLIENT_RULE}",
                    *(server_tls_lines(self.pki, port) if self.pki else []),
                ]
            )
            + "\n"
        )
        return subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"])  # noqa: S603 - our redis-server, our conf

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port,
            username="admin",
            password=password("admin"),
            decode_responses=True,
            socket_timeout=5,
            **(client_tls_kwargs(self.pki) if self.pki else {}),
        )

    def master_port(self) -> int | None:
        """The master's port as a majority of the Sentinels report it."""
        answers: dict[int, int] = {}
        for port in self.sentinel_ports:
            try:
                reply = self.sentinel(port).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
                )
            except redis.RedisError:
                continue
            if reply:
                answers[int(reply[1])] = answers.get(int(reply[1]), 0) + 1
        best = max(answers.items(), key=lambda kv: kv[1], default=(None, 0))
        return best[0] if best[1] >= 2 else None

    def node(self, port: int) -> redis.Redis:
        """The data node on ``port``, as the test's admin user."""
        (node,) = [n for n in self.nodes if n.port == port]
        return node.admin()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every Sentinel knows the two others and a replica whose link to the
        master is up (a failover needs one), and none is in TILT (one that
        reports a stale master to clients)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ok = all(
                    not int(s.info("sentinel")["sentinel_tilt"])
                    and len(
                        s.execute_command("SENTINEL", "SENTINELS", self.master_name)
                    )
                    == 2
                    and sum(
                        r.get("flags") == "slave"
                        and r.get("master-link-status") == "ok"
                        for r in map(
                            _pairs,
                            s.execute_command("SENTINEL", "REPLICAS", self.master_name),
                        )
                    )
                    >= len(self.nodes) - 1
                    for s in map(self.sentinel, self.sentinel_ports)
                )
            except redis.RedisError:
                ok = False
            if ok:
                return
            time.sleep(0.1)
        logs = [
            (self.workdir / f"sentinel-{p}" / "sentinel.log").read_text()[-1500:]
            for p in self.sentinel_ports
        ]
        raise RuntimeError(f"the Sentinels did not settle: {logs}")

    def failover(self, timeout: float = 30.0) -> int:
        """SENTINEL FAILOVER; return the new master's port once a majority
        reports it, it answers as master and the old master replicates from it.
        (A forced failover leaves the old master accepting writes until
        Sentinel converts it, up to its 10 s INFO period later: writes it takes
        meanwhile are lost. The switchover playbook pauses them first.)"""
        self.wait_ready(timeout=45)
        old = self.master_port()
        assert old, "no master agreed by a majority of the Sentinels"
        # A planned switchover: every write so far on the replica first
        # (SENTINEL FAILOVER itself does not wait for it).
        self.node(old).execute_command("WAIT", 1, 5000)
        self.sentinel(self.sentinel_ports[0]).execute_command(
            "SENTINEL", "FAILOVER", self.master_name
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.master_port()
            try:
                settled = (
                    new
                    and new != old
                    and self.node(new).role()[0] == "master"
                    and self.node(old).info("replication").get("master_link_status")
                    == "up"
                )
            except redis.ConnectionError:
                # Sentinel kills the nodes' client connections (ours too) as it
                # reconfigures them: not yet.
                settled = False
            if settled:
                # The old master replicates from the new one: Sentinel is done
                # reconfiguring (and killing client connections) for this failover.
                return new
            time.sleep(0.1)
        raise RuntimeError("no new master after SENTINEL FAILOVER")

    def switchover(self, pause_ms: int = 5000, timeout: float = 30.0) -> int:
        """What redis-sentinel-switchover does (roles/redis_sentinel), step by
        step: pause the master's writes, wait until every replica has its
        offset, SENTINEL FAILOVER through the first Sentinel, wait until every
        Sentinel names the new master (GET-MASTER-ADDR-BY-NAME), REPLICAOF the
        new master on the old one and wait for the link, then drop its clients
        (they reconnect through the Sentinels) and lift the pause in one
        connection. Return the new master's port."""
        self.wait_ready(timeout=45)
        old = self.master_port()
        assert old, "no master agreed by a majority of the Sentinels"
        master = self.node(old)
        replicas = [self.node(n.port) for n in self.nodes if n.port != old]
        master.execute_command("CLIENT", "PAUSE", pause_ms, "WRITE")
        self.paused_at = time.monotonic()
        deadline = self.paused_at + (pause_ms - 500) / 1000
        try:
            offset = master.info("replication")["master_repl_offset"]
            while any(
                r.info("replication").get("slave_repl_offset") != offset
                for r in replicas
            ):
                if time.monotonic() >= deadline:
                    raise RuntimeError("the replicas did not catch up in the pause")
                time.sleep(0.05)
            self.sentinel(self.sentinel_ports[0]).execute_command(
                "SENTINEL", "FAILOVER", self.master_name
            )
            new = None
            while time.monotonic() < deadline:
                named = {self.named_by(port) for port in self.sentinel_ports}
                if len(named) == 1 and (new := named.pop()) not in (None, old):
                    break
                time.sleep(0.05)
            if new in (None, old):
                raise RuntimeError("no new master named within the pause")
            self.named_at = time.monotonic()
            master.execute_command("REPLICAOF", "127.0.0.1", new)
            while time.monotonic() < deadline:
                if master.info("replication").get("master_link_status") == "up":
                    break
                time.sleep(0.02)
            # One connection (the kills drop this client's others).
            pipe = master.pipeline(transaction=False)
            pipe.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            pipe.execute_command("CLIENT", "UNPAUSE")
            pipe.execute()
            self.unpaused_at = time.monotonic()
        finally:
            if self.unpaused_at < self.paused_at:  # failed before the kills
                self.node(old).execute_command("CLIENT", "UNPAUSE")
                self.unpaused_at = time.monotonic()
        deadline = time.monotonic() + timeout
        while (new := self.master_port()) in (None, old):
            if time.monotonic() >= deadline:
                raise RuntimeError("no new master after the switchover")
            time.sleep(0.1)
        return new

    def named_by(self, port: int) -> int | None:
        """The master's port one Sentinel names (GET-MASTER-ADDR-BY-NAME)."""
        try:
            reply = self.sentinel(port).execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
            )
        except redis.RedisError:
            return None
        return int(reply[1]) if reply else None

    @contextmanager
    def hung(self, index: int) -> Iterator[int]:
        """SIGSTOP one Sentinel (its port still accepts, nothing answers). Once
        continued it sees the clock jump and stays in TILT for 30 s."""
        proc = self.sentinels[index]
        proc.send_signal(signal.SIGSTOP)
        try:
            yield self.sentinel_ports[index]
        finally:
            proc.send_signal(signal.SIGCONT)

    def url(self, user: str, db: int = 0, sentinels: list[int] | None = None) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in sentinels or self.sentinel_ports)
        return (
            f"sentinel://{user}:{password(user)}@{hosts}/{db}?master_name={self.master_name}"
            f"&sentinel_username=client&sentinel_password={password('client')}"
        )

    def stop(self) -> None:
        for proc in self.sentinels:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            proc.wait(10)
        for node in self.nodes:
            node.stop()
