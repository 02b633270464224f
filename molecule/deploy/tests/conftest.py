"""The deploy scenario: the app scenario's stack (redis, web + beat, worker +
consumers) on hosts of its own. Fixtures: redisops_testlib.fixtures (redis,
web, worker, base_url, ...)."""

pytest_plugins = ["redisops_testlib.fixtures"]
