"""In-process counts of failed sign-ins that have no row to live in: per client address
(spraying one password over many names), and per user name that does not exist (so that
such a name locks like a real one, and a lock does not tell which names exist).

Each process keeps its own counts, bounded in size (the oldest forgotten first): with
several workers an address gets its allowance in each. The per-account lockout, the strong
control, is in the database and holds across processes."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

LOCK_AFTER = 10  # consecutive failures that lock an account ...
LOCK_SECONDS = 15 * 60  # ... for this long
ADDRESS_ALLOWANCE = 100  # failures from one address before it must wait ...
ADDRESS_WINDOW = 15 * 60  # ... counted until it has failed nothing for this long
ADDRESS_MAX_WAIT = 60  # the wait doubles with each failure up to this: behind a proxy
# every person shares one address, and an attacker must not lock them all out for long


class Failures:
    """Failures per key, each count forgotten `forget_after` seconds after its last
    failure (never, if None), at most `size` keys."""

    def __init__(
        self,
        forget_after: float | None,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._forget_after = forget_after
        self._size = size
        self._clock = clock
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[int, float]:
        """(failures, seconds since the last one); (0, 0) when none are remembered."""
        with self._lock:
            count, last = self._seen.get(key, (0, 0.0))
            since = self._clock() - last
            if count and self._forget_after is not None and since > self._forget_after:
                del self._seen[key]
                return 0, 0.0
            return count, since if count else 0.0

    def add(self, key: str) -> int:
        count = self.get(key)[0] + 1
        with self._lock:
            self._seen[key] = (count, self._clock())
            self._seen.move_to_end(key)
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)


class SignInThrottle:
    """The waits that do not depend on an account row."""

    def __init__(
        self, allowance: int = ADDRESS_ALLOWANCE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.allowance = allowance
        self.addresses = Failures(ADDRESS_WINDOW, clock=clock)
        self.unknown_names = Failures(None, clock=clock)

    def address_wait(self, address: str | None) -> float:
        """Seconds this address must wait before its next attempt: none within its
        allowance, then 1, 2, 4, … seconds after its last failure, up to a minute."""
        if address is None:
            return 0.0
        count, since = self.addresses.get(address)
        if count < self.allowance:
            return 0.0
        return max(0.0, min(2.0 ** (count - self.allowance), ADDRESS_MAX_WAIT) - since)

    def unknown_name_wait(self, username: str) -> float:
        """Seconds an unknown name stays "locked": as long as a real account would."""
        count, since = self.unknown_names.get(username)
        if count < LOCK_AFTER:
            return 0.0
        if since >= LOCK_SECONDS:  # the lock expired: count afresh, as for a real one
            self.unknown_names.clear(username)
            return 0.0
        return LOCK_SECONDS - since
