"""The app on the client host (web, worker, beat, consumers) through the Sentinels:
wiring.yml gives every process sentinel:// URLs; the bundle's smoke playbook passes
through the deployed services. test_ha_failover.py runs it again after the master is
killed."""

import re

import pytest

from redisops_testlib.ha import Ha, app_pids, app_smoke
from redisops_testlib.polling import wait_for


@pytest.mark.converged_state
def test_every_app_url_asks_the_sentinels_for_the_master(ha: Ha):
    env = ha.client.check_output("cat /etc/redisops/*.env")
    urls = re.findall(r"^(REDIS_\w+_URL)='([^']*)'", env, re.M)
    assert urls, env.count("\n")
    sentinels = ",".join(f"{n.name}:{ha.sentinel_port}" for n in ha.nodes)
    # Sentinel 6.0 has no ACL: no user name, its shared password.
    user, password = ha.sentinel_login("sentinel-client")
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
