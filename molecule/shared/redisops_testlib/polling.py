"""Poll with a deadline, never sleep blindly."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 30, interval: float = 0.3) -> T:
    """Poll until check() returns something truthy; return it. An AssertionError from check()
    (a probe asserting while things start, or testinfra's check_output on a non-zero exit)
    means "not yet" and is kept as the last value; any other exception propagates at once.
    On timeout, AssertionError naming the timeout and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            if result := check():
                return result
            last = result
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
        time.sleep(interval)
