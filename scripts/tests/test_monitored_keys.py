"""The keys the Redis exporter watches (playbooks/group_vars/all/monitoring.yml)
are the app's: its Celery queues and streams, read from the app's own source
(make lint runs this)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "django_app/config/settings/base.py"
REDIS_ACL = ROOT / "django_app/redisops/redis_acl.py"
STREAM_KEYS = ROOT / "django_app/redisops/streams/keys.py"
WIRING = ROOT / "playbooks/group_vars/all/monitoring.yml"


def assignments(path: Path) -> dict[str, ast.expr]:
    tree = ast.parse(path.read_text())
    return {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def test_the_watched_queues_are_the_apps_celery_queues() -> None:
    queues = assignments(SETTINGS)["CELERY_TASK_QUEUES"]
    assert isinstance(queues, ast.Tuple)
    names = [ast.literal_eval(call.args[0]) for call in queues.elts if isinstance(call, ast.Call)]
    assert names
    assert yaml.safe_load(WIRING.read_text())["redisops_celery_queues"] == names


def test_the_watched_streams_are_the_apps_streams() -> None:
    stream = assignments(SETTINGS)["APP_STREAM"]
    assert isinstance(stream, ast.JoinedStr)
    prefixes = {
        name: value.value
        for name, value in assignments(REDIS_ACL).items()
        if name.endswith("_PREFIX") and isinstance(value, ast.Constant)
    }
    parts = []
    for part in stream.values:
        if isinstance(part, ast.FormattedValue):
            assert isinstance(part.value, ast.Attribute)
            parts.append(prefixes[part.value.attr])
        else:
            parts.append(ast.literal_eval(part))
    assert yaml.safe_load(WIRING.read_text())["redisops_app_streams"] == ["".join(parts)]


def test_the_queue_prefix_and_dead_letter_suffix_are_the_apps() -> None:
    # kombu's global_keyprefix is redis_acl.BROKER_PREFIX, the broker user's
    # key pattern without "*", which the wiring strips.
    assert "celery_url_and_options(broker, redis_acl.BROKER_PREFIX, tls)" in SETTINGS.read_text()
    assert 'keys=(f"{BROKER_PREFIX}*",)' in REDIS_ACL.read_text()
    assert 'return f"{stream}:dlq"' in STREAM_KEYS.read_text()
    assert "map('regex_replace', '$', ':dlq')" in WIRING.read_text()
