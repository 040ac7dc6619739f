"""A limit on failed sign-ins and wrong API keys, per client address, in bounded memory.

Each address has a token bucket of :data:`BURST` failures, refilled at one per
:data:`REFILL_SECONDS`: ten wrong keys in a row, then one more every six seconds. While an
address's bucket is empty, every key it presents (right or wrong, to ``/ui/session`` or in a
header) is answered ``429 Too Many Requests`` with ``Retry-After``, unchecked, so guessing
keys costs ten tries a minute. IPv6 addresses count per ``/64`` (one host usually owns the
whole prefix). At most :data:`MAX_ADDRESSES` addresses are tracked; beyond that the least
recently failing one is forgotten first.

The address is the connection's peer as the ASGI server reports it; behind a reverse proxy
run uvicorn with ``--proxy-headers --forwarded-allow-ips=<the proxy>`` so that it is the
client's, not the proxy's.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Failures an address may make in a row.
BURST = 10

#: Seconds for one more failure to be allowed again.
REFILL_SECONDS = 6.0

#: Addresses tracked at once (about 100 bytes each).
MAX_ADDRESSES = 10_000


def client_key(address: str | None) -> str:
    """The bucket an address counts in: itself, or its ``/64`` for IPv6."""
    if not address:
        return "?"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailedAttempts:
    """Failed credential checks per client address (see the module docstring)."""

    def __init__(
        self,
        *,
        burst: int = BURST,
        refill_seconds: float = REFILL_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or refill_seconds <= 0 or max_addresses < 1:
            raise ValueError("burst and max_addresses must be >= 1, refill_seconds > 0")
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_addresses = max_addresses
        self._clock = clock
        # key -> (tokens left, when last refilled); least recently failing first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - updated) / self.refill_seconds)

    def retry_after(self, address: str | None) -> int | None:
        """Whole seconds until ``address`` may try a key again, or ``None`` if it may now."""
        key = client_key(address)
        with self._lock:
            if key not in self._buckets:
                return None
            tokens = self._tokens(key, self._clock())
        if tokens >= 1:
            return None
        return max(1, math.ceil((1 - tokens) * self.refill_seconds))

    def failed(self, address: str | None) -> None:
        """Count one failed sign-in or wrong key from ``address``."""
        key = client_key(address)
        with self._lock:
            now = self._clock()
            tokens = self._tokens(key, now)
            self._buckets[key] = (max(0.0, tokens - 1), now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)


def too_many_message(address: str | None, seconds: int) -> str:
    """The ``429`` error message."""
    return f"Too many wrong API keys from {address or 'this address'}; try again in {seconds} s"


__all__ = [
    "BURST",
    "MAX_ADDRESSES",
    "REFILL_SECONDS",
    "FailedAttempts",
    "client_key",
    "too_many_message",
]
