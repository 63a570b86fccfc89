"""A token bucket per key: how often a caller may do something (an HTTP trigger's URL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class RateLimit:
    """``rate`` calls a minute per key, as many of them at once; then one per ``60 / rate`` s.

    ``take(key, rate)`` answers 0 when the call is taken, else the seconds until one would
    be.  Only keys that were taken are held: one bucket per task whose URL was called.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[Hashable, tuple[float, float]] = {}
        """Per key: the calls left, and when that was counted."""

    def take(self, key: Hashable, rate: int) -> float:
        if rate <= 0:
            return 0.0
        now = self.clock()
        left, counted = self.buckets.get(key, (float(rate), now))
        left = min(float(rate), left + (now - counted) * rate / 60)
        if left >= 1:
            self.buckets[key] = (left - 1, now)
            return 0.0
        self.buckets[key] = (left, now)
        return (1 - left) * 60 / rate
