"""Pub/Sub, Streams and a rate-limit script across hosts, as the app uses them."""

import uuid

from redisops_testlib.polling import wait_for


def test_pubsub_message_crosses_hosts_after_confirmed_subscription(remote, users, client):
    password = users["app"]["password"]
    channel = f"app:events:{uuid.uuid4().hex[:8]}"
    out = f"/tmp/sub-{channel.rsplit(':', 1)[1]}.out"
    # Subscribe first, in the background, bounded by timeout.
    subscribe = remote.command("app", password, "SUBSCRIBE", channel, timeout=30)
    client.run(f"setsid {subscribe} >{out} 2>&1 </dev/null &")
    # Redis confirms a subscription with a "subscribe <channel> <count>" reply.
    wait_for(lambda: f"subscribe\n{channel}\n1" in client.file(out).content_string)
    assert remote.out("app", password, "PUBLISH", channel, "hello-from-client") == "1"
    wait_for(lambda: "hello-from-client" in client.file(out).content_string)


def test_stream_entry_of_dead_consumer_is_claimed_and_acked(remote, users, version):
    password = users["app"]["password"]

    def app(*args):
        return remote.out("app", password, *args)

    stream = f"app:stream:{uuid.uuid4().hex[:8]}"
    assert app("XGROUP", "CREATE", stream, "workers", "0", "MKSTREAM") == "OK"
    entry_id = app("XADD", stream, "*", "job", "resize")
    read = app("XREADGROUP", "GROUP", "workers", "dead", "COUNT", "1", "STREAMS", stream, ">")
    assert entry_id in read
    # "dead" never acks. Another consumer takes the entry once it is idle.
    if version >= (6, 2):
        claimed = wait_for(lambda: entry_id in (r := app("XAUTOCLAIM", stream, "workers", "alive", "200", "0-0")) and r)
    else:  # Redis 6.0: no XAUTOCLAIM; XPENDING + XCLAIM
        assert entry_id in app("XPENDING", stream, "workers", "-", "+", "10")
        claimed = wait_for(lambda: entry_id in (r := app("XCLAIM", stream, "workers", "alive", "200", entry_id)) and r)
    assert "resize" in claimed
    assert app("XACK", stream, "workers", entry_id) == "1"
    assert app("XPENDING", stream, "workers").splitlines()[0] == "0"


FIXED_WINDOW = (
    "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n"
)


def test_rate_limit_script_runs_for_the_limiter_user(remote, users):
    password = users["limiter"]["password"]
    sha = remote.out("limiter", password, "SCRIPT", "LOAD", FIXED_WINDOW)
    assert len(sha) == 40
    key = f"rl:{uuid.uuid4().hex[:8]}"
    counts = [remote.out("limiter", password, "EVALSHA", sha, "1", key, "60") for _ in range(3)]
    assert counts == ["1", "2", "3"]
    # The same script on a key outside the limiter's prefix is refused.
    assert "NOPERM" in remote.out("limiter", password, "EVALSHA", sha, "1", "app:x", "60")
