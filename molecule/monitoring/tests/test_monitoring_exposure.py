"""What another host can reach, and where the monitor user's password is not."""

import json
import os
from pathlib import Path

import pytest
from testinfra.host import Host

from redisops_testlib.hosts import host_address, run_client
from redisops_testlib.monitoring import exporter_environ, http_get
from redisops_testlib.polling import wait_for
from redisops_testlib.scenario import Scenario

# The Redis host's: node, Redis, blackbox (its TLS port's certificate).
EXPORTER_PORTS = (9100, 9121, 9115)
# The app host's: node, blackbox.
APP_EXPORTER_PORTS = (9100, 9115)
MONITORING_PORTS = (9090, 9093)
# The Redis exporter's TLS files (roles/exporters/vars/main.yml), by its flag.
EXPORTER_TLS = {
    "--tls-ca-cert-file": "/etc/prometheus-redis-exporter/tls/ca.crt",
    "--tls-client-cert-file": "/etc/prometheus-redis-exporter/tls/client.crt",
    "--tls-client-key-file": "/etc/prometheus-redis-exporter/tls/client.key",
}
CA, CERT, KEY = EXPORTER_TLS.values()


def monitor_cli(server: Host, scenario: Scenario) -> str:
    """redis-cli as the monitor user, over TLS with the exporter's files, to the TLS
    port by the host's name (what the exporter's rediss:// address names)."""
    tls = f"--cacert {CA} --cert {CERT} --key {KEY}"
    return (
        f"REDISCLI_AUTH={scenario.passwords['app_monitor']} redis-cli --no-auth-warning --user app_monitor"
        f" --tls {tls} -h {server.backend.get_hostname()} -p {scenario.redis_port}"
    )


def test_exporter_and_monitoring_ports_refuse_other_hosts(
    server: Host, app: Host, prom: Host, outsider: Host, server_ip: str, prom_ip: str
) -> None:
    for port in EXPORTER_PORTS:
        assert http_get(prom, f"http://{server_ip}:{port}/metrics").startswith("200 ")
        assert "Connection refused" in http_get(outsider, f"http://{server_ip}:{port}/metrics")
    app_ip = host_address(app)
    for port in APP_EXPORTER_PORTS:
        assert http_get(prom, f"http://{app_ip}:{port}/metrics").startswith("200 ")
        assert "Connection refused" in http_get(outsider, f"http://{app_ip}:{port}/metrics")
    for port in MONITORING_PORTS:
        assert http_get(prom, f"http://{prom_ip}:{port}/-/ready").startswith("200 ")
        for other in (outsider, server):
            assert "Connection refused" in http_get(other, f"http://{prom_ip}:{port}/-/ready")


@pytest.mark.parametrize(
    ("host_name", "ports"), [("server", EXPORTER_PORTS), ("app", APP_EXPORTER_PORTS), ("prom", MONITORING_PORTS)]
)
def test_daemons_listen_on_the_private_address_only(request: pytest.FixtureRequest, host_name: str, ports) -> None:
    host = request.getfixturevalue(host_name)
    address = host.check_output("ip -4 -o addr show dev eth0 scope global").split()[3].split("/")[0]
    listening = {line.split()[3] for line in host.check_output("ss -Hltn").splitlines()}
    for port in ports:
        assert f"{address}:{port}" in listening
        assert not {f"0.0.0.0:{port}", f"*:{port}", f"[::]:{port}"} & listening
    # Alertmanager's cluster (gossip) port is off.
    assert not [a for a in listening if a.endswith(":9094")]


def test_no_password_in_ps_or_unit_properties(server: Host, prom: Host, server_ip: str, scenario: Scenario) -> None:
    password = scenario.passwords["app_monitor"]
    # The exporter is logged in (redis_up 1): it has the password, from its file.
    metrics = http_get(prom, f"http://{server_ip}:9121/metrics")
    assert "\nredis_up 1\n" in metrics
    # What ps shows: every process's command line (the minimal host has no procps).
    ps = server.check_output("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done")
    assert "prometheus-redis-exporter" in ps
    assert "--redis.password-file=" in ps
    assert password not in ps
    # Its environment: the arguments from /etc/default, no password.
    environ = exporter_environ(server, "prometheus-redis-exporter")
    assert "ARGS=--web.listen-address=" in environ
    assert password not in environ
    assert password not in server.check_output("systemctl show prometheus-redis-exporter")
    secret = server.file("/etc/prometheus-redis-exporter/password.json")
    assert (secret.user, secret.group, secret.mode) == ("root", "prometheus", 0o640)


def test_the_monitor_user_is_refused_config_get(server: Host, scenario: Scenario) -> None:
    cli = monitor_cli(server, scenario)
    assert server.check_output(f"{cli} PING") == "PONG"
    refused = server.run(f"{cli} CONFIG GET masterauth")
    assert "NOPERM" in refused.stdout + refused.stderr


def test_the_monitor_user_reads_stream_groups_but_no_values(server: Host, scenario: Scenario) -> None:
    # What the exporter's stream checks send, as the monitor user, is allowed
    # (XINFO STREAM, GROUPS, CONSUMERS); reading values any other way and
    # CONFIG GET are refused, each tried. The limit of that: an ACL grants a
    # subcommand, not its arguments, so XINFO STREAM ... FULL is allowed too
    # and returns a stream's entries (the README says so).
    cli = monitor_cli(server, scenario)
    server.check_output("redis-admin SET app:monitoring-test:secret value-the-monitor-must-not-read")
    try:
        assert "last-generated-id" in server.check_output(f"{cli} XINFO STREAM app:stream:events")
        assert "entries" in server.check_output(f"{cli} XINFO STREAM app:stream:events FULL COUNT 1")
        assert "workers" in server.check_output(f"{cli} XINFO GROUPS app:stream:events")
        server.check_output(f"{cli} XINFO CONSUMERS app:stream:events workers")
        for command in (
            "CONFIG GET masterauth",
            "GET app:monitoring-test:secret",
            "GETRANGE app:monitoring-test:secret 0 -1",
            "XRANGE app:stream:events - + COUNT 1",
            "XREAD COUNT 1 STREAMS app:stream:events 0",
            "LRANGE broker:default 0 -1",
            "SLOWLOG GET",
            "OBJECT ENCODING app:monitoring-test:secret",
            "DUMP app:monitoring-test:secret",
        ):
            refused = server.run(f"{cli} {command}")
            assert "NOPERM" in refused.stdout + refused.stderr, (command, refused.stdout)
    finally:
        server.check_output("redis-admin DEL app:monitoring-test:secret")


def test_the_exporter_reports_the_apps_queue_and_stream_lengths(server: Host, prom: Host, server_ip: str) -> None:
    server.check_output("redis-admin RPUSH broker:default monitoring-test-1 monitoring-test-2")
    try:
        wait_for(
            lambda: (
                'redis_key_size{db="db0",key="broker:default"} 2\n'
                in http_get(prom, f"http://{server_ip}:9121/metrics")
            ),
            timeout=30,
        )
    finally:
        server.check_output("redis-admin DEL broker:default")
    metrics = http_get(prom, f"http://{server_ip}:9121/metrics")
    for key in ("broker:heavy", "app:stream:events", "app:stream:events:dlq"):
        assert f'redis_key_size{{db="db0",key="{key}"}} 0\n' in metrics


def test_the_exporter_scrapes_redis_over_tls_only(server: Host, prom: Host, server_ip: str, scenario: Scenario) -> None:
    assert scenario.redis_tls
    tls_port = scenario.redis_port
    plain_port = int(scenario.redis_vars.get("redis_server_port", 6379))
    # Redis serves TLS only: the plaintext port is refused, here and from afar.
    for address in ("127.0.0.1", server_ip):
        refused = server.run(f"redis-cli -h {address} -p {plain_port} PING")
        assert "Connection refused" in refused.stdout + refused.stderr
    # The exporter's one address is the TLS port, and it is logged in there.
    args = server.check_output("cat /etc/default/prometheus-redis-exporter")
    assert f"--redis.addr=rediss://{server.backend.get_hostname()}:{tls_port} " in args
    for flag, path in EXPORTER_TLS.items():
        assert f"{flag}={path}" in args
    metrics = http_get(prom, f"http://{server_ip}:9121/metrics")
    assert "\nredis_up 1\n" in metrics

    # Each scrape's connection, once closed, waits 60 s in TIME-WAIT (Prometheus
    # scrapes every few seconds): on the TLS port, none on the plain one.
    def closed(port: int) -> str:
        return server.check_output(f"ss -Htn state time-wait '( sport = :{port} or dport = :{port} )'")

    assert f":{tls_port}" in wait_for(lambda: closed(tls_port), timeout=30)
    assert not closed(plain_port)


def test_the_exporters_tls_files_are_its_users_only(server: Host, scenario: Scenario) -> None:
    folder = server.file("/etc/prometheus-redis-exporter/tls")
    assert (folder.user, folder.group, folder.mode) == ("root", "prometheus", 0o750)
    for path in EXPORTER_TLS.values():
        f = server.file(path)
        assert (f.user, f.group, f.mode) == ("root", "prometheus", 0o640)
    # Another system user (redis) may not read the key.
    denied = server.run(f"setpriv --reuid=redis --regid=redis --clear-groups cat {KEY}")
    assert denied.rc != 0
    assert "Permission denied" in denied.stderr
    # Redis takes the exporter's client certificate, and refuses a client without
    # one: TLS 1.3's certificate_required alert before any command.
    name = server.backend.get_hostname()
    own = {
        "REDIS_TLS_CA": CA,
        "REDIS_TLS_CERT": CERT,
        "REDIS_TLS_KEY": KEY,
    }
    assert run_client(server, "tls_hello", own, address=name, port=scenario.redis_port) == "waiting"
    ca_only = {"REDIS_TLS_CA": CA}
    refused = run_client(server, "tls_hello", ca_only, address=name, port=scenario.redis_port)
    assert refused == "TLSV13_ALERT_CERTIFICATE_REQUIRED", refused


def test_the_exporter_shows_its_own_client_certificate_not_the_apps(server: Host) -> None:
    # The scenario's PKI (prepare.yml): the exporter holds redis-exporter's pair,
    # not app-client's, so either can be revoked or rotated alone. Redis takes
    # that certificate (the handshake in the test above).
    pki = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki"
    shown = server.file(CERT).content_string.strip()
    assert shown == (pki / "redis-exporter.crt").read_text().strip()
    assert shown != (pki / "app-client.crt").read_text().strip()
    assert server.file(KEY).content_string.strip() == (pki / "redis-exporter.key").read_text().strip()


def test_the_local_fact_names_where_prometheus_and_alertmanager_answer(prom: Host, prom_ip: str) -> None:
    """ansible_local.monitoring, which make demo's summary prints."""
    fact = json.loads(prom.file("/etc/ansible/facts.d/monitoring.fact").content_string)
    assert fact == {
        "prometheus_url": f"http://{prom_ip}:9090/",
        "alertmanager_url": f"http://{prom_ip}:9093/",
    }
    for url in fact.values():
        assert http_get(prom, f"{url}-/ready").startswith("200 ")
