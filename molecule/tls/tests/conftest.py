"""The TLS scenario: a TLS-only Redis server and a client host. Fixtures:
redisops_testlib.fixtures (server, client, server_ip, ...)."""

pytest_plugins = ["redisops_testlib.fixtures"]
