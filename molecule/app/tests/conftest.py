"""Fixtures for the full-stack app scenario: redis, web + beat, worker + consumers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_http import api_url
from app_testlib import get_host, hosts_in_group


@pytest.fixture(scope="session")
def redis():
    return get_host(hosts_in_group("redis_servers")[0])


@pytest.fixture(scope="session")
def web():
    return get_host(hosts_in_group("app_web")[0])


@pytest.fixture(scope="session")
def worker():
    return get_host(hosts_in_group("app_workers")[0])


@pytest.fixture(scope="session")
def base_url() -> str:
    """The API as other hosts reach it: gunicorn's socket on the web host."""
    return api_url(hosts_in_group("app_web")[0])
