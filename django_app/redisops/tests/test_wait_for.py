"""conftest.wait_for: the one polling rule the app's and Molecule's tests share."""

from __future__ import annotations

import itertools
import time

import pytest

from redisops.tests.conftest import wait_for


def test_returns_the_first_truthy_value() -> None:
    values = iter([0, "", None, {"ok": 1}, "later"])
    assert wait_for(lambda: next(values), timeout=5, interval=0) == {"ok": 1}


def test_an_assertion_error_means_not_yet() -> None:
    calls = itertools.count(1)

    def check() -> int:
        n = next(calls)
        assert n >= 3, f"only {n}"
        return n

    assert wait_for(check, timeout=5, interval=0) == 3


def test_any_other_exception_propagates_at_once() -> None:
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        raise KeyError("bug in the check")

    started = time.monotonic()
    with pytest.raises(KeyError, match="bug in the check"):
        wait_for(check, timeout=5, interval=0.01)
    assert calls == [1]
    assert time.monotonic() - started < 1


def test_timeout_names_the_timeout_and_the_last_value() -> None:
    started = time.monotonic()
    with pytest.raises(
        AssertionError,
        match=r"timed out after 0\.2s waiting for the count; last value: 0$",
    ):
        wait_for(lambda: 0, timeout=0.2, what="the count")
    assert time.monotonic() - started >= 0.2


def test_timeout_keeps_the_last_assertion_as_the_last_value() -> None:
    def check() -> None:
        raise AssertionError("queue still has 3")

    with pytest.raises(
        AssertionError, match=r"last value: AssertionError.*still has 3"
    ):
        wait_for(check, timeout=0.1, interval=0.01)
