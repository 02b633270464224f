"""Trimming a stream and forgetting old effects (redisops/streams/trimming.py)."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from redisops import tasks
from redisops.pubsub import RECORD_MAXLEN
from redisops.streams.acks import DONE_MARKER_TTL
from redisops.streams.keys import dlq_name, marker_key
from redisops.streams.producer import produce
from redisops.streams.trimming import trim
from redisops.tests.conftest import wait_for
from redisops.tests.stream_helpers import consumer, effects


def test_trim_forgets_effects_of_trimmed_entries(r: redis.Redis, stream: str) -> None:
    c = consumer(r, stream, "A", batch=1000)
    for i in range(300):
        produce(r, stream, {"n": str(i)}, 10_000)
    c.ensure_group()
    c.read_new()
    assert len(effects(r, stream)) == 300
    result = trim(r, stream, maxlen=10)
    assert result["effects_pruned"] > 0
    assert len(effects(r, stream)) == r.xlen(stream)


def test_trim_deletes_the_markers_of_trimmed_entries(
    r: redis.Redis, stream: str
) -> None:
    """Markers live as long as their entries (MAXLEN), not a fixed time: the
    trim deletes each trimmed entry's marker with its effect."""
    c = consumer(r, stream, "A", batch=1000)
    ids = [produce(r, stream, {"n": str(i)}, 10_000) for i in range(300)]
    c.ensure_group()
    c.read_new()
    assert all(r.exists(marker_key(stream, i)) for i in ids)
    assert 0 < r.ttl(marker_key(stream, ids[0])) <= DONE_MARKER_TTL == 24 * 3600
    result = trim(r, stream, maxlen=10)
    kept = {entry_id for entry_id, _ in r.xrange(stream)}
    assert result["markers_deleted"] == len(ids) - len(kept) > 0
    for entry_id in ids:
        assert bool(r.exists(marker_key(stream, entry_id))) == (entry_id in kept)


# XADD/XTRIM MAXLEN ~ remove whole stream nodes only (stream-node-max-entries,
# 100 by default): an approximate cap leaves at most one node more.
NODE = 100


@pytest.mark.usefixtures("celery_worker")
def test_beat_trim_caps_the_dead_letters_and_the_pubsub_records(
    admin_redis: redis.Redis,
) -> None:
    """trim_streams, run by a real worker: the dead-letter stream down to
    APP_STREAM_DLQ_MAXLEN (test settings: 50), the Pub/Sub record stream to
    pubsub.RECORD_MAXLEN."""
    dlq = dlq_name(settings.APP_STREAM)
    records = settings.APP_PUBSUB_RECORD_STREAM
    with admin_redis.pipeline(transaction=False) as pipe:
        for i in range(600):
            pipe.xadd(dlq, {"n": str(i), "dlq_reason": "test"})
        for i in range(RECORD_MAXLEN + 600):
            pipe.xadd(records, {"data": str(i)})
        pipe.execute()
    tasks.trim_streams.delay()
    wait_for(
        lambda: (
            admin_redis.xlen(dlq) <= settings.APP_STREAM_DLQ_MAXLEN + NODE
            and admin_redis.xlen(records) <= RECORD_MAXLEN + NODE
        ),
        what="trim_streams",
    )
    assert admin_redis.xlen(dlq) >= settings.APP_STREAM_DLQ_MAXLEN
    assert admin_redis.xlen(records) >= RECORD_MAXLEN
