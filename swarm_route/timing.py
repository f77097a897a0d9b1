"""Milliseconds since a ``perf_counter`` reading: the one clock the trace uses."""

import time


def ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
