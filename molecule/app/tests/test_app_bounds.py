"""A flooding client cannot crowd the others out: Redis stays within the app data's
memory budget, and tasks another client enqueues during the flood still run. (That
each write route limits each client:
django_app/redisops/tests/test_api_auth.py::test_each_endpoint_limits_per_client_wherever_it_calls_from.)"""

import json
import time
import uuid

from redisops_testlib.api import CLIENTS, http
from redisops_testlib.hosts import STATE_DIR, client_command
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import info
from redisops_testlib.scenario import scenario_of

APP_ENV = scenario_of(__file__).app_env
OTHER = {"Authorization": f"Bearer {CLIENTS['other'][0]}"}
FLOOD_SECONDS = 30


def test_a_flooding_client_stays_within_its_limits_and_the_budget(web, worker, redis, base_url):
    maxmemory = int(info(redis, "memory")["maxmemory"])
    budget = maxmemory * int(APP_ENV["APP_DATA_MEMORY_BUDGET"]) // 100
    state = f"{STATE_DIR}/flood-{uuid.uuid4().hex[:8]}.json"
    cmd = client_command(
        worker,
        "flood",
        {"API_TOKEN": CLIENTS["tests"][0]},
        base=base_url,
        seconds=FLOOD_SECONDS,
        threads=8,
        state=state,
    )
    worker.check_output(f"setsid {cmd} >{state}.log 2>&1 </dev/null &")
    # Meanwhile another client's tasks, and Redis's memory each second.
    ids, peak, deadline = [], 0, time.monotonic() + FLOOD_SECONDS
    while time.monotonic() < deadline:
        r = http(web, "POST", f"{base_url}/api/tasks", {"task": "add", "args": {"x": 1, "y": len(ids)}}, OTHER)
        assert r["status"] == 202, r["body"]
        ids.append(r["json"]["task_id"])
        peak = max(peak, int(info(redis, "memory")["used_memory"]))
        time.sleep(1)
    counts = wait_for(lambda: worker.file(state).exists and json.loads(worker.file(state).content_string), timeout=60)

    def all_done() -> bool:
        states = [http(web, "GET", f"{base_url}/api/tasks/{i}", headers=OTHER)["json"]["state"] for i in ids]
        return states.count("SUCCESS") == len(ids)

    wait_for(all_done, timeout=120, interval=2)
    print(
        f"flood {FLOOD_SECONDS} s: {counts}; other client's {len(ids)} tasks all ran; "
        f"Redis peak {peak / 2**20:.1f} MiB of a {budget / 2**20:.0f} MiB budget"
    )
    assert peak < budget
    # Refusals are the API's own (a limit: 429; the budget: 503 "storage budget
    # exceeded"), never an error.
    assert not any(key.endswith((" 500", " 502", " 0")) for key in counts), counts
