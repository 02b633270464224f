"""The default scenario: one Redis server, one client host, one outsider. Fixtures:
redisops_testlib.fixtures (server, client, server_ip, remote, users, version, ...)."""

pytest_plugins = ["redisops_testlib.fixtures"]
