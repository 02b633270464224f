"""The full-stack app scenario: redis, web + beat, worker + consumers. Fixtures:
redisops_testlib.fixtures (redis, web, worker, base_url, ...)."""

pytest_plugins = ["redisops_testlib.fixtures"]
