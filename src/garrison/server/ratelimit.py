"""In-process token buckets, one per caller (API key, user, device or client address)."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, per_minute: float, burst: int | None = None, max_keys: int = 200_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(10, int(per_minute) // 6))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[key] = (tokens, now)
                return (cost - tokens) / self.rate if self.rate > 0 else 60.0
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._buckets.clear()  # crude bound on memory; buckets refill anyway
            self._buckets[key] = (tokens - cost, now)
            return 0.0

    def refund(self, key: str, cost: float = 1.0) -> None:
        """Give back what :meth:`hit` took, for budgets that charge only failures: taking first and
        refunding a success leaves no window for parallel attempts to pass a check all at once."""
        with self._lock:
            hit = self._buckets.get(key)
            if hit is not None:
                self._buckets[key] = (min(self.burst, hit[0] + cost), hit[1])
