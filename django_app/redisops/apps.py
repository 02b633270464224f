from __future__ import annotations

from django.apps import AppConfig


class RedisOpsConfig(AppConfig):
    """Own name: ``class AppConfig(AppConfig)`` would shadow Django's class."""

    name = "redisops"
    verbose_name = "Redis operations demo"
    default_auto_field = "django.db.models.BigAutoField"
