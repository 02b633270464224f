"""The app on the client host (web, worker, beat, consumers) through the Sentinels:
wiring.yml gives every process sentinel:// URLs; the bundle's smoke playbook passes
through the deployed services. test_ha_failover.py runs it again after the master is
killed."""

import re

import pytest

from redisops_testlib.ha import Ha, app_pids, app_smoke
from redisops_testlib.polling import wait_for

# The Sentinel's client user the app logs in as (redis_sentinel_client_user's default).
CLIENT_USER = "sentinel-client"
# The Redis users of the app's processes (playbooks/group_vars/all/app_redis_acl.yml),
# but app_monitor, which the Redis exporter shares.
APP_USERS = {"app_broker", "app_results", "app_cache", "app_data", "app_budget"}


@pytest.mark.converged_state
def test_every_app_url_asks_the_sentinels_for_the_master(ha: Ha):
    env = ha.client.check_output("cat /etc/redisops/*.env")
    urls = re.findall(r"^(REDIS_\w+_URL)='([^']*)'", env, re.M)
    assert urls, env.count("\n")
    sentinels = ",".join(f"{n.name}:{ha.sentinel_port}" for n in ha.nodes)
    # Sentinel 6.0 has no ACL: no user name, its shared password.
    user, password = ha.sentinel_login(CLIENT_USER)
    for name, url in urls:
        assert url.startswith("sentinel://"), name
        assert f"@{sentinels}/0?master_name={ha.master_name}&sentinel_username={user}&" in url, name
        assert url.endswith(f"&sentinel_password={password}"), name


@pytest.mark.converged_state
def test_the_app_passes_smoke_through_the_sentinels(ha: Ha):
    units = wait_for(lambda: app_pids(ha.client), timeout=60)
    print(f"app units on {ha.client.backend.hostname}: {sorted(units)}")
    assert any(u.startswith("redisops-worker@") for u in units), units
    assert {"redisops-web.service", "redisops-beat.service"} <= set(units), units
    app_smoke()


def test_the_app_costs_redis_and_the_sentinels_no_acl_denial(ha: Ha):
    """Every app process connects anew (restarted) and asks Redis and the Sentinels only
    what its users may: no CLIENT SETINFO, which redis-py sends by default and 7.2+
    denies to app_budget and the Sentinels' client user (connections.NO_SETINFO). A
    denial in ACL LOG is then something on-call must look at. app_monitor is left
    out: the Redis exporter shares it (roles/exporters/README.md)."""
    # Sentinel 6.0 has no ACL (and no ACL LOG): there only Redis's is read.
    for node in ha.nodes:
        if ha.sentinel_acl:
            node.host.check_output("redis-sentinel-admin ACL LOG RESET")
        node.host.check_output("redis-admin ACL LOG RESET")
    before = wait_for(lambda: app_pids(ha.client), timeout=60)
    ha.client.check_output("systemctl restart " + " ".join(before))
    after = wait_for(lambda: app_pids(ha.client), timeout=120)
    assert not set(before.items()) & set(after.items()), "not restarted"
    app_smoke()
    for node in ha.nodes:
        if ha.sentinel_acl:
            log = node.host.check_output("redis-sentinel-admin ACL LOG")
            assert CLIENT_USER not in log.split(), (node.name, log)
        denied = set(node.host.check_output("redis-admin ACL LOG").split()) & APP_USERS
        assert not denied, (node.name, denied)
