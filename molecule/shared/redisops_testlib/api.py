"""The deployed API called from a test host (hosts have no curl): one request, a loop
in the background, a parallel burst, task states. host_client.py makes the requests
on the host; these are its typed front ends."""

import json
import uuid
from collections.abc import Sequence
from typing import Any

import yaml
from testinfra.host import Host

from redisops_testlib.hosts import STATE_DIR, client_command, run_client, write_file
from redisops_testlib.polling import wait_for
from redisops_testlib.scenario import REPO

# The full-stack scenarios' API clients (their inventory, shared by app and
# drill): the tests act as "tests"; "other" is another client.
CLIENTS: dict[str, list[str]] = yaml.safe_load(
    (REPO / "molecule/shared/inventory/app-stack/group_vars/app.yml").read_text()
)["django_app_api_clients"]
TOKEN = CLIENTS["tests"][0]
# The headers of a call as the tests' client.
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api_url(host_name: str) -> str:
    """The API as other hosts reach it: the proxy (web_proxy, TLS) on host_name, at the
    role's AUTH port (the one place it is set). The hosts trust the test CA."""
    port = yaml.safe_load((REPO / "roles/web_proxy/defaults/main.yml").read_text())["web_proxy_https_port"]
    return f"https://{host_name}" + ("" if port == 443 else f":{port}")


def http(
    host: Host, method: str, url: str, body: Any = None, headers: dict | None = None, timeout: float = 10, **kw: Any
) -> dict:
    """One request from `host`: status, headers, body, json (the body parsed, or None),
    seconds. AssertionError when no HTTP answer came. kw: follow=False (a redirect is
    the answer), raw="text" (sent as it is instead of JSON)."""
    out = run_client(host, "request", method=method, url=url, body=body, headers=headers, timeout=timeout, **kw)
    assert out["status"] != 0, f"{method} {url}: {out['body']}"
    try:
        out["json"] = json.loads(out["body"])
    except ValueError:
        out["json"] = None
    return out


def enqueue(host: Host, base_url: str, task: str, args: dict[str, Any]) -> str:
    """POST /api/tasks from `host`; the accepted task's id."""
    r = http(host, "POST", f"{base_url}/api/tasks", {"task": task, "args": args}, AUTH)
    assert r["status"] == 202, r["body"]
    return r["json"]["task_id"]


def burst(host: Host, url: str, n: int, parallel: int = 8, forge: bool = False) -> list[dict[str, Any]]:
    """n GET requests from `host`, `parallel` at a time: each answer's status, headers, seconds.
    forge: each request carries another X-Forwarded-For (as a spoofer would)."""
    return run_client(host, "burst", url=url, n=n, parallel=parallel, forge=forge)


def summary(stats: dict[str, Any]) -> str:
    """What the tests print: requests, failures and the slowest request."""
    slow = {"seconds": 0, "path": "-", "status": "-", **stats.get("slowest", {})}
    slowest = f"slowest {slow['seconds']:.2f} s ({slow['path']}, status {slow['status']})"
    return f"{stats.get('requests', 0)} requests, {stats.get('failed', 0)} failed, {slowest}"


class ApiLoop:
    """Requests to the API from `host` in the background, bounded by count and time, until stop().
    Modes: stream = POST /api/stream (app_data user), task = POST /api/tasks "add" (broker user;
    task ids recorded), payment = "record_payment" to `account` (payment ids recorded), deploy =
    GET /version and POST /api/tasks in turn, publish = POST /api/publish "<tag>-<i>" to topic
    drill. Statistics: requests, ok, failed, errors (the first 20: [i, path, status, body]), ids,
    versions (seen in turn), slowest (seconds, i, path, status); with timeline=True every
    request (host_client.loop)."""

    def __init__(self, host: Host, base_url: str, mode: str, seconds: float = 240, **kw: Any) -> None:
        """kw: count (20000), interval (0.05 s), timeout (15 s per request), account, timeline
        (False). The loop presents the token in <state>.token, read at each request:
        use_token() switches it."""
        self.host, self.state = host, f"{STATE_DIR}/{mode}-{uuid.uuid4().hex[:8]}"
        kw = {"count": 20000, "interval": 0.05, "timeout": 15, "account": "", "timeline": False, **kw}
        self.use_token(TOKEN)
        env = {"API_TOKEN_FILE": f"{self.state}.token"}
        state = f"{self.state}.json"
        cmd = client_command(host, "loop", env, base=base_url, mode=mode, state=state, seconds=seconds, **kw)
        host.check_output(f"setsid {cmd} >{self.state}.log 2>&1 </dev/null &")

    @property
    def tag(self) -> str:
        """What marks this loop's writes: the stream entries' drill field, the messages' prefix."""
        return f"{self.state.rsplit('/', 1)[-1]}.json"

    def use_token(self, token: str) -> None:
        """The token the loop presents from its next request on."""
        write_file(self.host, f"{self.state}.token", token)

    def stats(self) -> dict[str, Any]:
        f = self.host.file(f"{self.state}.json")
        return json.loads(f.content_string) if f.exists else {}

    def wait_ok(self, more: int, timeout: float = 60) -> None:
        """Wait until `more` further requests succeeded."""
        start = self.stats().get("ok", 0)

        def more_ok() -> bool:
            stats = self.stats()
            if stats.get("done") and stats.get("ok", 0) < start + more:
                # Not "not yet": it never will (a slow step outlived the loop's bound).
                raise RuntimeError(f"the loop ended at its bound before {more} more requests succeeded: {stats}")
            return stats.get("ok", 0) >= start + more

        wait_for(more_ok, timeout=timeout)

    def finish(self, timeout: float = 120) -> dict[str, Any]:
        """Wait until the loop has ended (stop(), or a bound); its statistics."""
        try:
            wait_for(lambda: self.stats().get("done"), timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; loop log: {self.host.run(f'tail -c 2000 {self.state}.log').stdout}") from None
        return self.stats()

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        """End the loop after its current request; its statistics."""
        self.host.check_output(f"touch {self.state}.json.stop")
        return self.finish(timeout)


def task_states(host: Host, base_url: str, ids: Sequence[str] = (), loop: ApiLoop | None = None) -> dict[str, int]:
    """{state: count} of Celery tasks, read through the API from `host`: ids, and those
    a task loop recorded (read on the host)."""
    return run_client(
        host,
        "states",
        {"API_TOKEN": TOKEN},
        base=base_url,
        ids=list(ids),
        ids_from=f"{loop.state}.json" if loop else "",
    )


def task_state_of_each(host: Host, base_url: str, ids: Sequence[str]) -> dict[str, str]:
    """{task id: state} of Celery tasks, read through the API from `host`."""
    return run_client(host, "states", {"API_TOKEN": TOKEN}, base=base_url, ids=list(ids), each=True)
