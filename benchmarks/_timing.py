"""The one timing helper of the benchmark scripts: median wall time of repeated calls.

Benchmarks print medians of several runs because the machines they run on are shared: the median of a few
repeats is steadier than the mean or the best under load, and ratios between our code and an anchor timed
side by side in the same run are the figures to trust."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def median_seconds(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Median wall seconds of `repeats` (at least 1) calls of `fn`, and the last call's result.

    >>> seconds, value = median_seconds(lambda: 6 * 7, 3)
    >>> value, seconds >= 0
    (42, True)
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times = []
    out: T
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out
