"""Celery: tasks enqueued through the API run on the worker host; beat fires."""

from redisops_testlib.api import HTTPS, enqueue, http
from redisops_testlib.hosts import journal
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin
from redisops_testlib.scenario import scenario_of

APP_ENV = scenario_of(__file__).app_env
HEARTBEAT = "app:beat:heartbeat"


def _result(host, base_url, task_id):
    r = http(host, "GET", f"{base_url}/api/tasks/{task_id}", headers=HTTPS)
    return r["json"] if r["json"] and r["json"]["ready"] else None


def test_task_from_api_runs_on_the_worker_host(web, worker, base_url):
    task_id = enqueue(web, base_url, "add", {"x": 20, "y": 22})
    result = wait_for(lambda: _result(web, base_url, task_id))
    assert (result["state"], result["result"]) == ("SUCCESS", 42)
    log = journal(worker, "redisops-worker@default.service")
    assert task_id in log
    assert "succeeded" in log


def test_heavy_task_runs_on_the_heavy_queue(web, worker, base_url):
    task_id = enqueue(web, base_url, "heavy_checksum", {"size_kib": 4, "rounds": 3})
    result = wait_for(lambda: _result(web, base_url, task_id))
    assert (result["state"], len(result["result"])) == ("SUCCESS", 64)
    assert task_id in journal(worker, "redisops-worker@heavy.service")
    assert task_id not in journal(worker, "redisops-worker@default.service")


def test_beat_fires_within_its_interval(redis):
    interval = int(APP_ENV["APP_HEARTBEAT_INTERVAL"])
    first = int(wait_for(lambda: admin(redis, "GET", HEARTBEAT)))
    later = wait_for(lambda: (v := int(admin(redis, "GET", HEARTBEAT))) > first and v, timeout=interval * 3 + 5)
    assert later - first <= interval * 3 + 5


def test_beat_runs_on_exactly_one_host(web, worker):
    assert web.service("redisops-beat.service").is_running
    assert not worker.service("redisops-beat.service").is_running
