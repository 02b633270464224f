"""The one program the tests run on the test hosts: HTTP to the app, RESP to Redis.
Standard library only, Python 3.9+ (Debian 11). Usage: host_client.py COMMAND 'JSON of its
keyword arguments'; prints one JSON document. Every loop is bounded in count and time, and
traffic goes only to the addresses given (the scenario's hosts)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def auth() -> dict[str, str]:
    """The API client's bearer token: from the file API_TOKEN_FILE names, read at each
    request (a client that picks up a rotated token), else from API_TOKEN; never argv."""
    token = os.environ.get("API_TOKEN", "")
    if os.environ.get("API_TOKEN_FILE"):
        with open(os.environ["API_TOKEN_FILE"]) as f:
            token = f.read().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def request(
    method: str,
    url: str,
    body: Any = None,
    headers: dict | None = None,
    timeout: float = 10,
    follow: bool = True,
    raw: str | None = None,
) -> dict:
    """One request: status (0 when no HTTP answer came), headers, body text, seconds taken.
    body is sent as JSON; raw (text) as it is, with the Content-Type the headers give.
    follow=False returns a redirect instead of following it."""
    data = raw.encode() if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))  # noqa: S310
    if body is not None and raw is None:
        req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(*([] if follow else [_NoRedirect()]))
    start = time.monotonic()
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, head, text = resp.status, dict(resp.headers), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, head, text = e.code, dict(e.headers), e.read().decode(errors="replace")
    except OSError as e:
        status, head, text = 0, {}, repr(e)
    return {"status": status, "headers": head, "body": text, "seconds": round(time.monotonic() - start, 4)}


def write(path: str, data: Any) -> None:
    """Replace the file at path with data (text, or JSON) at once."""
    with open(path + ".tmp", "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    os.replace(path + ".tmp", path)


def loop_request(mode: str, i: int, tag: str, account: str) -> tuple[str, str, Any, int, str]:
    """(method, path, body, expected status, what to record) of request i in `mode`."""
    if mode == "deploy":  # GET /version (the versions seen) and POST /api/tasks in turn
        mode = "version" if i % 2 == 0 else "add"
    payment = {"payment_id": f"{account}-{i}", "account": account, "amount": 1}
    return {
        "stream": ("POST", "/api/stream", {"fields": {"drill": tag, "n": str(i)}}, 201, ""),  # app_data user: XADD
        # PUBLISH (app_data user); the listener records the message, "<tag>-<i>".
        "publish": ("POST", "/api/publish", {"topic": "drill", "message": f"{tag}-{i}"}, 200, ""),
        "task": ("POST", "/api/tasks", {"task": "add", "args": {"x": i, "y": 1}}, 202, "task_id"),  # broker user
        "payment": ("POST", "/api/tasks", {"task": "record_payment", "args": payment}, 202, "payment_id"),
        "version": ("GET", "/version", None, 200, "version"),
        "add": ("POST", "/api/tasks", {"task": "add", "args": {"x": 1, "y": 2}}, 202, ""),
    }[mode]


# What a timeline row keeps of an answer's JSON, per mode: the entry's id, the
# task's id, how many subscribers received the message.
TIMELINE_KEYS = {"stream": "id", "task": "task_id", "publish": "receivers"}


def loop(
    base: str,
    mode: str,
    state: str,
    seconds: float,
    count: int,
    interval: float,
    timeout: float,
    account: str,
    timeline: bool = False,
) -> dict:
    """At most `count` requests for at most `seconds`, until <state>.stop appears; the statistics
    (requests, ok, failed, first errors, recorded ids/versions, slowest request) are rewritten
    to `state` as it runs, with done = true at the end. timeline: also every request as
    [i, sent (epoch ms), answered (epoch ms), status, TIMELINE_KEYS' value or None]."""
    stats: dict = {"requests": 0, "ok": 0, "failed": 0, "errors": [], "ids": [], "versions": [], "done": False}
    stats["slowest"] = {"seconds": 0.0}
    if timeline:
        stats["timeline"] = []
    deadline, i = time.monotonic() + seconds, 0
    while i < count and time.monotonic() < deadline and not os.path.exists(state + ".stop"):
        method, path, body, want, record = loop_request(mode, i, os.path.basename(state), account)
        sent = int(time.time() * 1000)
        answer = request(method, base + path, body, auth(), timeout)
        if timeline:
            try:
                value = json.loads(answer["body"]).get(TIMELINE_KEYS.get(mode, ""))
            except (ValueError, AttributeError):
                value = None
            stats["timeline"].append([i, sent, int(time.time() * 1000), answer["status"], value])
        stats["requests"] += 1
        if answer["seconds"] > stats["slowest"]["seconds"]:
            stats["slowest"] = {"seconds": answer["seconds"], "i": i, "path": path, "status": answer["status"]}
        try:
            if answer["status"] != want:
                raise ValueError(answer["status"])
            if record == "payment_id":
                stats["ids"].append(body["args"]["payment_id"])
            elif record == "version":
                version = json.loads(answer["body"])["version"]
                if stats["versions"][-1:] != [version]:
                    stats["versions"].append(version)
            elif record:
                stats["ids"].append(json.loads(answer["body"])[record])
            stats["ok"] += 1
        except (ValueError, KeyError, TypeError):
            stats["failed"] += 1
            if len(stats["errors"]) < 20:
                stats["errors"].append([i, path, answer["status"], answer["body"][:200]])
        i += 1
        if i <= 10 or i % 10 == 0:
            write(state, stats)
        time.sleep(interval)
    stats["done"] = True
    write(state, stats)
    return stats


def burst(url: str, n: int, parallel: int = 8, timeout: float = 10, forge: bool = False) -> list:
    """n GET requests, `parallel` at a time: each answer's status, headers and seconds, in order.
    forge: each request claims another client address in X-Forwarded-For (a spoofer)."""

    def one(i: int) -> dict:
        forged = {"X-Forwarded-For": f"198.51.100.{i % 250 + 1}"} if forge else {}
        return request("GET", url, None, {**auth(), **forged}, timeout)

    with ThreadPoolExecutor(parallel) as pool:
        answers = list(pool.map(one, range(n)))
    return [{k: v for k, v in a.items() if k != "body"} for a in answers]


def states(base: str, ids: list[str], ids_from: str = "", timeout: float = 10, each: bool = False) -> dict:
    """{state: count} of Celery tasks read through the API: ids, and those recorded in a loop's
    state file. each: {task id: state} instead."""
    if ids_from:
        with open(ids_from) as f:
            ids = ids + json.load(f)["ids"]
    counts: dict[str, int] = {}
    found: dict[str, str] = {}
    for task_id in ids:
        answer = request("GET", f"{base}/api/tasks/{task_id}", None, auth(), timeout)
        state = json.loads(answer["body"])["state"] if answer["status"] == 200 else f"HTTP {answer['status']}"
        counts[state] = counts.get(state, 0) + 1
        found[task_id] = state
    return found if each else counts


def redis_tls(sock: socket.socket, address: str) -> ssl.SSLSocket:
    """TLS to Redis as the app connects: the CA in REDIS_TLS_CA verified (the certificate
    names the address), the client certificate in REDIS_TLS_CERT/_KEY when one is given."""
    context = ssl.create_default_context(cafile=os.environ["REDIS_TLS_CA"])
    if os.environ.get("REDIS_TLS_CERT"):
        context.load_cert_chain(os.environ["REDIS_TLS_CERT"], os.environ["REDIS_TLS_KEY"])
    return context.wrap_socket(sock, server_hostname=address)


def tls_hello(address: str, port: int, wait: float = 3) -> str:
    """A TLS handshake with Redis (redis_tls), then a read before sending anything: what
    the server said. One that requires a client certificate it did not get sends an
    alert: its reason (e.g. TLSV13_ALERT_CERTIFICATE_REQUIRED). One that took the client
    waits for a command: "waiting" (nothing within `wait` s)."""
    with redis_tls(socket.create_connection((address, port), timeout=10), address) as sock:
        sock.settimeout(wait)
        try:
            return "data" if sock.recv(1) else "closed"
        except socket.timeout:
            return "waiting"
        except ssl.SSLError as e:
            return e.reason or type(e).__name__
        except OSError as e:
            return type(e).__name__


class Resp:
    """One Redis connection, RESP by hand (hosts have redis-cli, not redis-py); AUTH first."""

    def __init__(self, address: str, port: int, user: str, timeout: float = 10) -> None:
        self.sock = socket.create_connection((address, port), timeout=timeout)
        if os.environ.get("REDIS_TLS_CA"):
            self.sock = redis_tls(self.sock, address)
        self.reader = self.sock.makefile("rb")
        self.auth = self.command("AUTH", user, os.environ["REDIS_PASSWORD"])

    def command(self, *words: str) -> str:
        """Send one command; its reply's first line (enough for +OK, -ERR, :1)."""
        args = [w.encode() for w in words]
        self.sock.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in args))
        return self.reader.readline().decode().strip()


def _reply(reader: Any) -> str:
    """One whole RESP2 reply as text: +OK, -ERR ..., :1, a bulk string's content, [a, b]."""
    line = reader.readline().decode(errors="replace").rstrip("\r\n")
    if line[:1] == "$":
        n = int(line[1:])
        return "(nil)" if n < 0 else reader.read(n + 2)[:-2].decode(errors="replace")
    if line[:1] == "*":
        return "[" + ", ".join(_reply(reader) for _ in range(max(int(line[1:]), 0))) + "]"
    return line


def redis_try(address: str, port: int, user: str, commands: list, multi: bool = True) -> dict:
    """Each command as `user` on a connection of its own (MONITOR or SUBSCRIBE change a
    connection's mode), its whole reply. multi: inside MULTI ... DISCARD where the user may
    open a transaction: Redis checks the command's permissions (NOPERM) when it queues it,
    and nothing runs even if it is allowed (+QUEUED). Else, and for the commands a
    transaction refuses before the ACL check (SHUTDOWN, SAVE on 7.0+), the command runs:
    callers give arguments that do no harm should it be allowed."""

    def once(words: list[str], transaction: bool) -> str:
        conn = Resp(address, port, user)
        if conn.auth != "+OK":
            raise SystemExit(f"AUTH as {user}: {conn.auth}")

        def send(*args: str) -> str:
            data = [w.encode() for w in args]
            conn.sock.sendall(b"*%d\r\n" % len(data) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in data))
            return _reply(conn.reader)

        try:
            if transaction and send("MULTI") == "+OK":
                reply = send(*words)
                send("DISCARD")
                return once(words, False) if reply.startswith(NOT_IN_MULTI) else reply
            return send(*words)
        finally:
            conn.sock.close()

    return {"replies": [once(words, multi) for words in commands]}


NOT_IN_MULTI = "-ERR Command not allowed inside a transaction"


def redis_set(address: str, port: int, user: str, prefix: str, first: int, last: int) -> dict:
    """SET <prefix>:<i> for i in [first, last) on one connection: which were acknowledged, what refusals said."""
    conn, acked, refused = Resp(address, port, user), [], {}
    if conn.auth != "+OK":
        raise SystemExit(f"AUTH as {user}: {conn.auth}")
    for i in range(first, last):
        reply = conn.command("SET", f"{prefix}:{i}", f"value-{i}-" + "x" * 200)
        if reply == "+OK":
            acked.append(i)
        else:
            refused[reply] = refused.get(reply, 0) + 1
    return {"acked": acked, "refused": refused}


def redis_hold(address: str, port: int, user: str, state: str, wait: float = 120) -> dict:
    """AUTH + PING (replies to <state>.ready); once <state>.go appears (`wait` s at most),
    PING + SET on the same connection (replies to <state>.result; "(closed)" for a
    connection the server closed, "(<error>)" for one that failed)."""
    conn = Resp(address, port, user, timeout=5)
    write(state + ".ready", conn.auth + " " + conn.command("PING"))
    deadline = time.monotonic() + wait
    while not os.path.exists(state + ".go") and time.monotonic() < deadline:
        time.sleep(0.1)

    def reply(*words: str) -> str:
        try:
            return conn.command(*words) or "(closed)"
        except OSError as e:
            return f"({type(e).__name__})"

    write(state + ".result", reply("PING") + " " + reply("SET", "app:acl:held", os.path.basename(state)))
    return {}


def connect(address: str, port: int, timeout: float = 5) -> str:
    """Whether a TCP port answers: open, refused or timeout (filtered)."""
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "timeout"
    return "open"


def slow_clients(address: str, port: int, n: int, seconds: float, state: str) -> dict:
    """n TLS connections that send a request's headers one byte a second (slowloris),
    for at most `seconds`; how many the server cut off, and when (written to `state`)."""
    context = ssl.create_default_context()
    conns, started = [], time.monotonic()
    for _ in range(n):
        try:
            conns.append(
                context.wrap_socket(socket.create_connection((address, port), timeout=5), server_hostname=address)
            )
        except OSError:
            break
    header = f"GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Slow: " + "a" * 10_000
    cut: list[float] = []
    write(state, {"opened": len(conns), "cut": 0, "done": False})
    sent = 0
    while conns and time.monotonic() - started < seconds:
        for c in list(conns):
            try:
                c.sendall(header[sent].encode())
            except OSError:
                conns.remove(c)
                cut.append(round(time.monotonic() - started, 1))
        sent += 1
        time.sleep(1)
    result = {"opened": len(cut) + len(conns), "cut": len(cut), "first_cut": min(cut, default=None), "done": True}
    write(state, result)
    for c in conns:
        c.close()
    return result


def flood(base: str, seconds: float, threads: int, state: str) -> dict:
    """As many writes as `threads` threads can send for `seconds` (bounded), to every
    write endpoint in turn, with the biggest bodies the API takes: statuses counted."""
    big = "x" * 3500
    writes = [
        ("/api/stream", {"fields": {"flood": big}}),
        ("/api/publish", {"topic": "flood", "message": big}),
        ("/api/tasks", {"task": "add", "args": {"x": 1, "y": 2}, "countdown": 60}),
    ]
    deadline, counts, lock = time.monotonic() + seconds, {}, threading.Lock()

    def worker(n: int) -> None:
        i = n
        while time.monotonic() < deadline:
            path, body = writes[i % len(writes)]
            status = request("POST", base + path, body, auth(), 10)["status"]
            with lock:
                counts[f"{path} {status}"] = counts.get(f"{path} {status}", 0) + 1
            i += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    write(state, counts)
    return counts


COMMANDS = {
    f.__name__: f
    for f in (request, loop, burst, states, redis_set, redis_try, redis_hold, connect, tls_hello, slow_clients, flood)
}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](**json.loads(sys.argv[2]))))
