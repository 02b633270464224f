"""Faults injected on the Redis and app hosts page the webhook receiver with
the alert's runbook_url within its `for` plus a few scrape intervals, and
resolve after the runbook's fix; a quiet period after converge pages nobody."""

import json
import os
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from testinfra.host import Host

from redisops_testlib.monitoring import Receiver, http_get, now
from redisops_testlib.playbooks import run_playbook
from redisops_testlib.polling import wait_for
from redisops_testlib.scenario import REPO, Scenario

RUNBOOKS = "https://github.com/redisops/bundle/blob/main/docs/runbooks/"
# Above the alert's own timing (for + 2 scrapes + 1 evaluation + group_wait):
# the shared 2-core machine can be slow to schedule any of the three daemons.
SLACK = 15
FILL = "/var/lib/redis/monitoring-test-fill"
DLQ = "app:stream:events:dlq"
WORKER = "redisops-worker@default.service"
BEAT = "redisops-beat.service"
CONSUMER = "redisops-stream-consumer.service"
STREAM = "app:stream:events"
GROUP = "workers"
# Entries a made-up consumer takes and never acknowledges: above
# StreamPendingHigh's threshold (100).
PENDING = 150
# Above CeleryQueueBacklog's threshold (500), queued from the operators' shell.
BACKLOG = 600
ENQUEUE = f"from redisops.tasks import add; [add.delay(1, 2) for _ in range({BACKLOG})]"


def deadline(timing: dict[str, Any], alert: str) -> float:
    return timing["for"][alert] + 2 * timing["scrape"] + timing["evaluation"] + timing["group_wait"] + SLACK


def prometheus_api(prom: Host, prom_ip: str, path: str) -> Any:

    status, _, body = http_get(prom, f"http://{prom_ip}:9090/api/v1/{path}").partition(" ")
    assert status == "200", body
    return json.loads(body)["data"]


def last_value(prom: Host, prom_ip: str, metric: str, labels: dict[str, str]) -> str | None:
    """The last value Prometheus has for `metric` with `labels` (one series), or None."""
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    result = prometheus_api(prom, prom_ip, "query?query=" + quote(f"{metric}{{{selector}}}"))["result"]
    assert len(result) <= 1, result
    return result[0]["value"][1] if result else None


def probe_success(prom: Host, prom_ip: str, labels: dict[str, str]) -> str | None:
    """The last probe_success Prometheus has for the series with `labels`, or None."""
    return last_value(prom, prom_ip, "probe_success", labels)


def fires_then_resolves(
    receiver: Receiver, timing: dict[str, Any], alert: str, start: float, fix: Any
) -> dict[str, Any]:
    """Wait for `alert` firing (within its deadline), apply `fix`, wait for it resolved;
    the firing alert. `fix` runs even when the alert never comes."""
    return all_fire_then_resolve(receiver, timing, {alert: start}, fix)[alert]


def all_fire_then_resolve(
    receiver: Receiver, timing: dict[str, Any], starts: dict[str, float], fix: Any, resolve_within: float = 60
) -> dict[str, dict[str, Any]]:
    """fires_then_resolves for several alerts of one fault: each alert fires within
    its deadline from its start, then one `fix`, and each resolves; the firing alerts."""
    fired = {}
    try:
        for alert, start in starts.items():
            # The deadline counts from the alert's own start, which may lie ahead.
            arrived, fired[alert] = wait_for(
                lambda a=alert, s=start: receiver.first(a, "firing", s),
                timeout=max(start + deadline(timing, alert) - now(), 1),
            )
            latency = arrived - start
            assert latency <= deadline(timing, alert), f"{alert} took {latency:.1f} s"
    finally:
        fixed = now()
        fix()
    for alert in starts:
        wait_for(lambda a=alert: receiver.first(a, "resolved", fixed), timeout=resolve_within)
    return fired


@pytest.mark.converged_state
def test_a_quiet_period_after_converge_pages_nobody(prom: Host, prom_ip: str, receiver: Receiver, timing: dict) -> None:
    # Every target scraped, then a quiet window three times the longest
    # shortened `for`: nothing pending, nothing firing, nothing sent.
    wait_for(
        lambda: all(t["health"] == "up" for t in prometheus_api(prom, prom_ip, "targets")["activeTargets"]),
        timeout=90,
    )
    targets = prometheus_api(prom, prom_ip, "targets")["activeTargets"]
    assert {t["labels"]["job"] for t in targets} == {"node", "redis", "readyz", "beat_heartbeat", "redis_tls"}
    # A node exporter on each of 4 hosts, a Redis exporter, the web host's
    # /readyz read twice (ready; beat's heartbeat), Redis's TLS port.
    assert len(targets) == 8
    start = now()
    window = 3 * max(timing["for"].values())
    wait_for(lambda: now() - start >= window, timeout=window + 5, interval=2)
    assert prometheus_api(prom, prom_ip, "alerts")["alerts"] == []
    assert receiver.any_firing(0) == []


def test_redis_down_pages_with_its_runbook_and_resolves_after_restart(
    server: Host, receiver: Receiver, timing: dict
) -> None:
    start = now()
    server.check_output("systemctl stop redis-server")
    fired = fires_then_resolves(
        receiver, timing, "RedisDown", start, lambda: server.check_output("systemctl start redis-server")
    )
    assert fired["annotations"]["runbook_url"] == f"{RUNBOOKS}redis-down.md"
    assert fired["annotations"]["summary"].startswith("Redis on redis-mon does not answer")
    assert fired["labels"]["severity"] == "page"
    assert server.check_output("redis-admin PING") == "PONG"


def test_a_filling_disk_under_the_redis_data_dir_pages(server: Host, receiver: Receiver, timing: dict) -> None:
    size, avail = map(int, server.check_output("df --output=size,avail -B1 /var/lib/redis | tail -1").split())
    fill = avail - size // 20  # leaves 5 % free
    start = now()
    server.check_output(f"fallocate -l {fill} {FILL}")
    fired = fires_then_resolves(
        receiver,
        timing,
        "RedisDiskFilling",
        start,
        lambda: server.check_output("rm -f /var/lib/redis/monitoring-test-fill"),
    )
    assert fired["labels"]["mountpoint"] == "/var/lib/redis"
    assert fired["annotations"]["runbook_url"] == f"{RUNBOOKS}redis-disk-aof.md"
    assert "Redis stops writing when it is full" in fired["annotations"]["summary"]


def test_a_dead_letter_pages_and_resolves_once_emptied(server: Host, receiver: Receiver, timing: dict) -> None:
    start = now()
    server.check_output(f"redis-admin XADD {DLQ} '*' reason monitoring-test")
    fired = fires_then_resolves(
        receiver,
        timing,
        "DeadLetterNotEmpty",
        start,
        lambda: server.check_output("redis-admin DEL app:stream:events:dlq"),
    )
    assert fired["labels"]["key"] == "app:stream:events:dlq"
    assert fired["annotations"]["runbook_url"] == f"{RUNBOOKS}stream-lag-dlq.md"
    assert fired["annotations"]["summary"].startswith("Dead-letter stream app:stream:events:dlq holds 1 entries")


def test_a_stopped_worker_and_its_backlog_page_and_resolve_after_restart_workers(
    app: Host, receiver: Receiver, timing: dict
) -> None:
    # A worker that is down, and the tasks that pile up meanwhile in its queue:
    # both page; celery-backlog.md's fix (restart-workers.yml on that host)
    # starts it, it drains the queue, and both resolve.
    start = now()
    app.check_output(f"systemctl stop {WORKER}")
    app.check_output(f"redisops-manage shell -c {shlex.quote(ENQUEUE)}")
    queued = now()
    host = app.backend.get_hostname()
    fired = all_fire_then_resolve(
        receiver,
        timing,
        {"CeleryWorkerDown": start, "CeleryQueueBacklog": queued},
        lambda: run_playbook(REPO / "playbooks/ops/restart-workers.yml", limit=host),
        # The restart, then 600 tasks to run on one process of a shared machine.
        resolve_within=180,
    )
    down, backlog = fired["CeleryWorkerDown"], fired["CeleryQueueBacklog"]
    assert (down["labels"]["name"], down["labels"]["host"]) == (WORKER, host)
    assert down["annotations"]["runbook_url"] == f"{RUNBOOKS}celery-backlog.md"
    assert down["annotations"]["summary"].startswith(f"Celery worker {WORKER} on {host} is not running")
    assert backlog["labels"]["key"] == "broker:default"
    assert backlog["annotations"]["runbook_url"] == f"{RUNBOOKS}celery-backlog.md"
    assert backlog["annotations"]["summary"].startswith("Celery queue broker:default holds ")
    assert app.service(WORKER).is_running


def test_a_stopped_beat_and_the_api_not_ready_page_and_resolve_after_the_beat_playbook(
    app: Host, prom: Host, prom_ip: str, scenario: Scenario, receiver: Receiver, timing: dict
) -> None:
    # Beat down pages; once its heartbeat is older than APP_HEARTBEAT_MAX_AGE,
    # /readyz fails (beat_heartbeat) and the blackbox probe through the proxy
    # pages too. celery-beat.md's Fix 1 (api-not-ready.md sends there):
    # converge beat on its one host; both resolve.
    host = app.backend.get_hostname()
    readyz = {"job": "readyz", "host": host}
    assert wait_for(lambda: probe_success(prom, prom_ip, readyz) == "1", timeout=60)
    max_age = float(scenario.group_vars("app")["django_app_env"]["APP_HEARTBEAT_MAX_AGE"])
    start = now()
    app.check_output(f"systemctl stop {BEAT}")
    fired = all_fire_then_resolve(
        receiver,
        timing,
        {"CeleryBeatDown": start, "ApiNotReady": start + max_age},
        lambda: run_playbook(REPO / "playbooks/beat.yml"),
    )
    beat, api = fired["CeleryBeatDown"], fired["ApiNotReady"]
    assert (beat["labels"]["name"], beat["labels"]["host"]) == (BEAT, host)
    assert beat["annotations"]["runbook_url"] == f"{RUNBOOKS}celery-beat.md"
    assert beat["annotations"]["summary"].startswith(f"Celery beat on {host} is not running")
    assert api["labels"]["host"] == host
    assert api["annotations"]["runbook_url"] == f"{RUNBOOKS}api-not-ready.md"
    assert api["annotations"]["summary"].startswith(f"The API on {host} answers /readyz not ready")
    assert app.service(BEAT).is_running
    assert probe_success(prom, prom_ip, readyz) == "1"


def test_a_hung_beat_pages_its_stale_heartbeat_and_resolves_after_a_restart(
    app: Host, prom: Host, prom_ip: str, scenario: Scenario, receiver: Receiver, timing: dict
) -> None:
    # Beat's unit stays active but beat sends nothing (SIGSTOP): no unit alert
    # can see that. Once the heartbeat is older than APP_HEARTBEAT_MAX_AGE the
    # app's own check says so through the proxy: CeleryBeatHeartbeatStale pages
    # (celery-beat.md), and resolves after that runbook's Fix 3 (restart beat:
    # systemd follows its SIGTERM with a SIGCONT).
    host = app.backend.get_hostname()
    heartbeat = {"job": "beat_heartbeat", "host": host}
    assert wait_for(lambda: last_value(prom, prom_ip, "probe_failed_due_to_regex", heartbeat) == "0", timeout=60)
    max_age = float(scenario.group_vars("app")["django_app_env"]["APP_HEARTBEAT_MAX_AGE"])
    start = now()
    app.check_output(f"systemctl kill --signal=SIGSTOP {BEAT}")
    fired = all_fire_then_resolve(
        receiver,
        timing,
        {"CeleryBeatHeartbeatStale": start + max_age},
        lambda: app.check_output(f"systemctl restart {BEAT}"),
    )["CeleryBeatHeartbeatStale"]
    assert fired["labels"]["job"] == "beat_heartbeat"
    assert fired["annotations"]["runbook_url"] == f"{RUNBOOKS}celery-beat.md"
    assert fired["annotations"]["summary"].startswith("Celery beat's heartbeat is stale")
    # Its unit was active all along: the unit alert never paged.
    assert receiver.first("CeleryBeatDown", "firing", start) is None
    assert app.service(BEAT).is_running
    assert last_value(prom, prom_ip, "probe_failed_due_to_regex", heartbeat) == "0"


def test_stream_pending_entries_are_exported_and_page_until_the_consumers_take_them_over(
    server: Host, app: Host, prom: Host, prom_ip: str, receiver: Receiver, timing: dict
) -> None:
    # A consumer that took entries and went away: the stream consumer stopped,
    # 150 entries added and read by a made-up consumer that never acknowledges
    # them. The exporter's stream checks (XINFO STREAM/GROUPS/CONSUMERS as the
    # monitor user) report them; StreamPendingHigh pages; stream-lag-dlq.md's
    # Fix 1 (consumers.yml) starts the consumer, which claims them once idle
    # (APP_STREAM_CLAIM_IDLE_MS, 5 s here) and acknowledges them.
    app.check_output(f"systemctl stop {CONSUMER}")
    ids: list[str] = []
    try:
        ids = server.check_output(
            f"for i in $(seq {PENDING}); do echo XADD {STREAM} '*' source monitoring-test; done | redis-admin"
        ).split()
        server.check_output(
            f"redis-admin XREADGROUP GROUP {GROUP} monitoring-test COUNT {PENDING} STREAMS {STREAM} '>'"
        )
        start = now()
        group = {"stream": STREAM, "group": GROUP}
        wait_for(
            lambda: last_value(prom, prom_ip, "redis_stream_group_messages_pending", group) == str(PENDING),
            timeout=30,
        )
        mine = {**group, "consumer": "monitoring-test"}
        assert last_value(prom, prom_ip, "redis_stream_group_consumer_messages_pending", mine) == str(PENDING)
        # Everything added was delivered (to the made-up consumer): the group's
        # last delivered id is the stream's last, the millisecond part of the
        # last XADD's id.
        last_ms = float(ids[-1].split("-")[0])
        assert float(last_value(prom, prom_ip, "redis_stream_last_generated_id", {"stream": STREAM})) == last_ms
        assert float(last_value(prom, prom_ip, "redis_stream_group_last_delivered_id", group)) == last_ms
        fired = fires_then_resolves(
            receiver, timing, "StreamPendingHigh", start, lambda: run_playbook(REPO / "playbooks/consumers.yml")
        )
        assert (fired["labels"]["stream"], fired["labels"]["group"]) == (STREAM, GROUP)
        assert fired["annotations"]["runbook_url"] == f"{RUNBOOKS}stream-lag-dlq.md"
        assert fired["annotations"]["summary"].startswith(
            f"Stream {STREAM} group {GROUP} has {PENDING} entries delivered but not acknowledged"
        )
        # Resolved below the threshold; every entry is then acknowledged.
        wait_for(lambda: server.check_output(f"redis-admin XPENDING {STREAM} {GROUP}").split()[0] == "0", timeout=60)
    finally:
        app.check_output(f"systemctl start {CONSUMER}")
        server.check_output(f"redis-admin XGROUP DELCONSUMER {STREAM} {GROUP} monitoring-test")
        # The stream as it was (later tests read its length).
        if ids:
            server.check_output(f"redis-admin XDEL {STREAM} {' '.join(ids)}")


def served_chain(host: Host, target: str, options: str = "") -> list[x509.Certificate]:
    """The certificates a TLS server sends, from a handshake on `host` (openssl s_client -showcerts)."""
    out = host.check_output(f"openssl s_client -connect {target} -showcerts {options} </dev/null 2>/dev/null")
    return x509.load_pem_x509_certificates(
        "".join(
            f"-----BEGIN CERTIFICATE-----{b.split('-----END CERTIFICATE-----')[0]}-----END CERTIFICATE-----\n"
            for b in out.split("-----BEGIN CERTIFICATE-----")[1:]
        ).encode()
    )


def test_the_probes_report_when_the_redis_and_proxy_certificates_expire(
    server: Host, app: Host, prom: Host, prom_ip: str, scenario: Scenario
) -> None:
    # What CertificateExpiresSoon reads: probe_ssl_earliest_cert_expiry of
    # Redis's TLS port (job redis_tls: a verified handshake showing the Redis
    # exporter's client certificate) and of the proxy (job readyz): the
    # earliest notAfter of the chain each sends, led by the certificate the
    # scenario's PKI issued it (Redis's OpenSSL also sends the CA it knows).
    pki = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki"
    redis_host, web_host = server.backend.get_hostname(), app.backend.get_hostname()
    redis_probe = {"job": "redis_tls", "host": redis_host}
    assert wait_for(lambda: probe_success(prom, prom_ip, redis_probe) == "1", timeout=60)
    tls = "-CAfile /etc/prometheus-redis-exporter/tls/ca.crt -cert /etc/prometheus-redis-exporter/tls/client.crt"
    tls += " -key /etc/prometheus-redis-exporter/tls/client.key"
    for host, probe, target, options, leaf in (
        (server, redis_probe, f"{redis_host}:{scenario.redis_port}", tls, "redis.crt"),
        (app, {"job": "readyz", "host": web_host}, f"{web_host}:443", f"-servername {web_host}", f"{web_host}.crt"),
    ):
        chain = served_chain(host, target, options)
        assert chain[0] == x509.load_pem_x509_certificate((pki / leaf).read_bytes())
        earliest = min(c.not_valid_after_utc.timestamp() for c in chain)
        assert float(last_value(prom, prom_ip, "probe_ssl_earliest_cert_expiry", probe)) == earliest
    # The probed target is Redis's TLS port by the name its certificate carries.
    target = prometheus_api(prom, prom_ip, "query?query=" + quote('up{job="redis_tls"}'))["result"][0]["metric"]
    assert target["instance"] == f"{redis_host}:{scenario.redis_port}"
