"""The drill scenario: a Redis host under test (server), a second Redis host converged
empty (new_server), and the app host (app_host), which is also the client host of the
Redis drills (client, remote). Fixtures: redisops_testlib.fixtures."""

pytest_plugins = ["redisops_testlib.fixtures"]
