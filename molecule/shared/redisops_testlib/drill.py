"""What every drill does: seed data, fingerprint it, wait until it is on disk; and
read an AOF to know what a repair may lose."""

from testinfra.host import Host

from redisops_testlib.hosts import STATE_DIR, install, write_file
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin, admin_pipe


def fingerprint(server: Host, pattern: str = "*") -> tuple[int, str]:
    """(count, SHA-1) of the keys matching pattern, types and values included (fingerprint.lua)."""
    out = admin(server, "--eval", install(server, "fingerprint.lua"), ",", pattern).splitlines()
    return int(out[0]), out[1]


def key_count(server: Host) -> int:
    return int(admin(server, "DBSIZE"))


def seed(server: Host, prefix: str, n: int = 2000) -> None:
    """Strings <prefix>:s:<i> = v<i>, a hash, a list, a set and a stream under prefix, acknowledged."""
    cmds = [f"SET {prefix}:s:{i} v{i}" for i in range(n)]
    cmds += [f"HSET {prefix}:h f{i} {i}" for i in range(100)]
    cmds += [f"RPUSH {prefix}:l item{i}" for i in range(100)]
    cmds += [f"SADD {prefix}:set m{i}" for i in range(100)]
    cmds += [f"XADD {prefix}:stream * n {i}" for i in range(100)]
    write_file(server, f"{STATE_DIR}/seed.txt", "\n".join(cmds))
    admin_pipe(server, f"cat {STATE_DIR}/seed.txt", len(cmds))


def wait_fsync(server: Host, seconds: int = 2) -> None:
    """appendfsync everysec: wait by Redis's clock until the writes are on disk."""
    t0 = int(admin(server, "TIME").splitlines()[0])
    wait_for(lambda: int(admin(server, "TIME").splitlines()[0]) >= t0 + seconds, timeout=15)


def aof_commands(data: bytes, offset: int = 0) -> list[tuple[int, list[bytes]]]:
    """The commands in a piece of an AOF's RESP part that starts at a command (at
    `offset` in the file), each with the offset where it starts. Annotations (#...)
    are skipped; ValueError on anything else, or on a command cut short."""
    commands, pos = [], 0
    while pos < len(data):
        start, end = pos, data.index(b"\r\n", pos)
        line, pos = data[pos:end], end + 2
        if line.startswith(b"#"):
            continue
        if not line.startswith(b"*"):
            raise ValueError(f"no command at offset {offset + start}: {line[:40]!r}")
        words = []
        for _ in range(int(line[1:])):
            end = data.index(b"\r\n", pos)
            if data[pos : pos + 1] != b"$":
                raise ValueError(f"no bulk string at offset {offset + pos}")
            size, pos = int(data[pos + 1 : end]), end + 2
            words.append(data[pos : pos + size])
            pos += size + 2
        if pos > len(data):
            raise ValueError(f"the command at offset {offset + start} is cut short")
        commands.append((offset + start, words))
    return commands
