"""The rate limit is shared by every gunicorn worker: one limit in Redis."""

import re
import uuid

from redisops_testlib.api import burst
from redisops_testlib.hosts import journal
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import delete_keys
from redisops_testlib.scenario import scenario_of

APP_ENV = scenario_of(__file__).app_env


def test_limit_is_shared_by_two_gunicorn_workers(worker, web, redis, base_url):
    # A fresh window, also when the tests run again within the period.
    delete_keys(redis, "app:rl:*")
    limit = int(APP_ENV["APP_LIMITED_LIMIT"])
    n = limit * 2 + 4
    # Parallel requests from one client (the worker host), so both gunicorn
    # workers answer some. The query string (the limiter ignores it) marks
    # this burst's lines in the access log.
    tag = uuid.uuid4().hex
    answers = burst(worker, f"{base_url}/api/limited?burst={tag}", n)
    statuses = [a["status"] for a in answers]
    assert statuses.count(200) == limit, statuses
    assert statuses.count(429) == n - limit, statuses
    denied = next(a["headers"] for a in answers if a["status"] == 429)
    assert int(denied["Retry-After"]) > 0
    assert denied["RateLimit-Limit"] == str(limit)
    assert denied["RateLimit-Remaining"] == "0"

    # Both workers served this burst: its access log lines carry each worker's pid.
    def served_by() -> list[str]:
        log = journal(web, "redisops-web.service", since="-5min", output="short")
        pids = re.findall(rf"gunicorn\[(\d+)\]: .*/api/limited\?burst={tag} ", log)
        assert len(pids) == n, f"{len(pids)} of {n} requests logged yet"
        return pids

    pids = set(wait_for(served_by, timeout=20))
    assert len(pids) >= 2, pids
