"""The Celery app, configured from Django settings (CELERY_* names).

Only new-style setting names are read under the CELERY namespace
(CELERY_WORKER_PREFETCH_MULTIPLIER, not CELERYD_PREFETCH_MULTIPLIER);
redisops/tests/test_celery_config.py asserts the effective app.conf values.
https://docs.celeryq.dev/en/stable/userguide/configuration.html
"""

from __future__ import annotations

import logging.config
import os

from celery import Celery
from celery.signals import setup_logging

# Production unless told otherwise: a missing variable then fails loudly.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("redisops")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The redis, rediss and sentinel result backends, with refused writes
# (NOREPLICAS, READONLY) retried like connection errors (redisops.celery_redis).
app.loader.override_backends = {
    "redis": "redisops.celery_redis:RedisBackend",
    "rediss": "redisops.celery_redis:RedisBackend",
    "sentinel": "redisops.celery_redis:SentinelBackend",
}
app.autodiscover_tasks()


@setup_logging.connect
def _configure_logging(**_kwargs: object) -> None:
    """Use Django's LOGGING (one line per event, with task ids) in workers and beat."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
