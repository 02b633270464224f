"""The rate limit is shared by every gunicorn worker: one limit in Redis."""

import json
import re
import shlex

from app_testlib import APP_ENV, redis_admin

# Parallel requests from one client (the worker host), so both gunicorn
# workers answer some of them.
_BURST = r"""
import json, sys, urllib.request, urllib.error
from concurrent.futures import ThreadPoolExecutor
url, n = sys.argv[1], int(sys.argv[2])
def one(_):
    r = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    try:
        resp = urllib.request.urlopen(r, timeout=10)
    except urllib.error.HTTPError as e:
        resp = e
    resp.read()
    return {"status": resp.status, "headers": dict(resp.headers)}
with ThreadPoolExecutor(8) as pool:
    print(json.dumps(list(pool.map(one, range(n)))))
"""


def test_limit_is_shared_by_two_gunicorn_workers(worker, web, redis, base_url):
    # A fresh window, also when the tests run again within the period.
    redis_admin(redis, "EVAL", "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end", "0", "app:rl:*")
    limit = int(APP_ENV["APP_LIMITED_LIMIT"])
    n = limit * 2 + 4
    out = worker.check_output(f"python3 -c {shlex.quote(_BURST)} {base_url}/api/limited {n}")
    answers = json.loads(out)
    statuses = [a["status"] for a in answers]
    assert statuses.count(200) == limit, statuses
    assert statuses.count(429) == n - limit, statuses
    denied = next(a["headers"] for a in answers if a["status"] == 429)
    assert int(denied["Retry-After"]) > 0
    assert denied["RateLimit-Limit"] == str(limit)
    assert denied["RateLimit-Remaining"] == "0"
    # Both workers served the burst (access log lines carry each worker's pid).
    log = web.check_output("journalctl --no-pager -o short -u redisops-web.service --since=-2min")
    pids = set(re.findall(r"gunicorn\[(\d+)\]: .*/api/limited", log))
    assert len(pids) >= 2, pids
