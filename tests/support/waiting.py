"""Polling for a condition the service reaches asynchronously (a background publish, the updater)."""

import time


def wait_for(predicate, timeout_s=15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
