"""redisops: Redis patterns (tasks, Pub/Sub, Streams, rate limits) done right."""
