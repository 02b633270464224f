"""The effective Celery configuration (app.conf), not what settings files say.

Celery reads only new-style names under the CELERY namespace; CELERYD_* and
CELERY_ACKS_LATE are silently ignored (shared/seed/KNOWN-MISTAKES.md).
"""

from __future__ import annotations

import ast
import threading
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.app.defaults import NAMESPACES, flatten
from django.conf import settings
from kombu.transport import redis as kombu_redis
from kombu.utils.eventio import ERR, READ

from config.celery_app import app
from redisops import celery_redis, connections, redis_acl
from redisops.tests.conftest import wait_for
from redisops.tests.redis_proc import RedisProcess, free_port

SETTINGS_DIR = Path(__file__).resolve().parents[2] / "config" / "settings"


def test_worker_prefetches_one_task_per_process() -> None:
    assert app.conf.worker_prefetch_multiplier == 1


def test_tasks_are_acked_late_and_rejected_when_the_worker_dies() -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True


def test_only_json_is_accepted_and_produced() -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert list(app.conf.accept_content) == ["json"]
    assert list(app.conf.result_accept_content) == ["json"]


def test_soft_and_hard_time_limits_are_set_and_ordered() -> None:
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit


def test_results_expire() -> None:
    expires = app.conf.result_expires
    seconds = expires if isinstance(expires, int) else expires.total_seconds()
    assert seconds == settings.CELERY_RESULT_EXPIRES == 3600


def test_visibility_timeout_exceeds_hard_limit_plus_longest_countdown() -> None:
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > app.conf.task_time_limit + settings.APP_MAX_COUNTDOWN


def test_broker_and_results_use_their_acl_prefixes() -> None:
    assert (
        app.conf.broker_transport_options["global_keyprefix"] == redis_acl.BROKER_PREFIX
    )
    assert (
        app.conf.result_backend_transport_options["global_keyprefix"]
        == redis_acl.RESULTS_PREFIX
    )
    assert "app_broker" in app.conf.broker_url
    assert "app_results" in app.conf.result_backend


def test_the_broker_and_results_clients_send_no_client_setinfo() -> None:
    """redis-py sends CLIENT SETINFO on every new connection unless lib_name and
    lib_version are None. On Redis 6.0 each one was an ACL denial in ACL LOG for
    app_broker and app_results (CLIENT is not in @connection there:
    molecule/ha/tests/test_ha_app.py::test_the_app_costs_redis_and_the_sentinels_no_acl_denial
    on Debian 11). The pools the broker's channel and the result backend connect
    through carry neither."""
    with app.connection_for_write() as conn:
        broker = conn.default_channel.client.connection_pool.connection_kwargs
    results = app.backend.client.connection_pool.connection_kwargs
    for kwargs in (broker, results):
        assert kwargs["lib_name"] is None
        assert kwargs["lib_version"] is None


def test_queues_and_routes() -> None:
    assert {q.name for q in app.conf.task_queues} == {"default", "heavy"}
    assert app.conf.task_default_queue == "default"
    router = app.amqp.router
    route = router.route({}, "redisops.tasks.heavy_checksum")
    assert route["queue"].name == "heavy"
    assert router.route({}, "redisops.tasks.add")["queue"].name == "default"


def test_beat_schedule_names_registered_tasks() -> None:
    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    assert {"write-heartbeat", "trim-streams"} <= set(schedule)
    for entry in schedule.values():
        assert entry["task"] in app.tasks
    assert schedule["write-heartbeat"]["schedule"] < settings.APP_HEARTBEAT_MAX_AGE


def test_settings_use_no_old_style_or_duplicate_celery_names() -> None:
    """CELERYD_*, CELERY_ACKS_LATE etc. would be silently ignored; a name
    assigned twice in one module silently loses its first value."""
    ignored = ("CELERYD_", "CELERYBEAT_", "CELERY_ACKS_LATE", "CELERY_RESULT_EXPIRES_")
    for module in SETTINGS_DIR.glob("*.py"):
        names = [
            target.id
            for node in ast.parse(module.read_text()).body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        ]
        assert not [n for n in names if n.startswith(ignored)], module
        celery = [n for n in names if n.startswith("CELERY_")]
        assert len(celery) == len(set(celery)), f"duplicate CELERY_ name in {module}"


def test_every_celery_setting_is_one_celery_reads() -> None:
    known = {f"CELERY_{key.upper()}" for key, _ in flatten(NAMESPACES)}
    ours = {name for name in dir(settings) if name.startswith("CELERY_")}
    assert ours - known == set()


def test_settings_refuse_a_visibility_timeout_below_the_hard_limit(monkeypatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from config.settings import base

    monkeypatch.setattr(base, "VISIBILITY_TIMEOUT", base.CELERY_TASK_TIME_LIMIT)
    with pytest.raises(ImproperlyConfigured, match="VISIBILITY_TIMEOUT"):
        base.check_timeouts()


def test_publishing_outlasts_a_redis_restart() -> None:
    """Celery's default publish retry gives up after ~0.6 s; a restart under
    load takes longer. The policy's waits add up to a few seconds."""
    policy = app.conf.task_publish_retry_policy
    waits = [
        min(
            policy["interval_start"] + n * policy["interval_step"],
            policy["interval_max"],
        )
        for n in range(policy["max_retries"])
    ]
    assert 3 <= sum(waits) <= 10


def test_tasks_bind_to_the_project_app() -> None:
    """redisops never imports config (test_imports.py): its tasks, and the
    views' AsyncResult (celery.current_app), reach this app because the
    config package sets it up on import."""
    from celery import current_app

    from redisops import tasks

    assert tasks.add.app is app
    assert current_app._get_current_object() is app


def test_the_transport_skips_a_stale_file_descriptor_instead_of_ending_the_worker() -> (
    None
):
    """kombu 5.6.2's poller raises KeyError when a file descriptor fires after its
    channel was dropped (a reconnect after a failover under load, celery/kombu#2582):
    the worker exited on it. The app's transport (the broker URL's, as configured)
    skips it. When kombu's own stops raising here (5.7.0), drop our poller."""
    with pytest.raises(KeyError):
        kombu_redis.MultiChannelPoller().on_readable(35)  # no channel has fd 35
    with app.connection_for_read() as conn:
        poller = conn.transport.cycle
        assert isinstance(poller, celery_redis.StaleFdSkippingPoller), (
            conn.transport_cls
        )
        assert poller.on_readable(35) is None
        assert poller.handle_event(35, READ) is None
        assert poller.handle_event(35, ERR) is None


def test_a_publish_whose_queue_declaration_a_switchover_dropped_is_sent_again(
    tmp_path: Path,
) -> None:
    """What redis-sentinel-switchover does to the web's producer: its first
    publish on a new connection declares the queue (SADD, a write), which waits
    in CLIENT PAUSE WRITE until the switchover kills the connection. kombu's
    retry around the declaration revives the queue on a new channel but the
    producer keeps the closed one, and kombu 5.6.2 then failed the publish with
    AttributeError (a 500 in the ha switchover drill). The app's transport makes
    the closed channel a connection error: the publish's retry sends it again."""
    server = RedisProcess(free_port(), tmp_path)
    server.start()
    celery = Celery("publish-test", set_as_current=False)
    url = server.url()
    celery.conf.update(
        broker_url=url,
        broker_transport=connections.celery_broker_transport(url),
        task_publish_retry_policy=app.conf.task_publish_retry_policy,
    )
    admin = server.admin()
    outcome: dict[str, Any] = {}

    def publish() -> None:
        try:
            outcome["sent"] = celery.send_task("t.add", queue="publish-test")
        except Exception as exc:  # handed to the test thread
            outcome["error"] = exc

    try:
        assert admin.execute_command("CLIENT", "PAUSE", 10000, "WRITE")
        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        wait_for(
            lambda: any(c.get("cmd") == "sadd" for c in admin.client_list()),
            timeout=10,
            what="the queue's declaration waiting in the pause",
        )
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        admin.execute_command("CLIENT", "UNPAUSE")
        thread.join(15)
        assert not thread.is_alive(), "the publish still hangs"
        assert "sent" in outcome, repr(outcome.get("error"))
        assert admin.llen("publish-test") == 1
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        celery.close()
        server.stop()
