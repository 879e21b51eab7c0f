"""Remember recently published event ids so a retried batch is not published twice.

Limits, by design (documented in docs/ingest.md):

* per worker and in memory: with several ingest workers, a retry that lands on
  another worker is not recognised; after a restart the memory is empty. The
  scorer dedupes again on its side (bounded seen-ids per account), so this is the
  first of two nets, not a guarantee.
* bounded: ids are forgotten after ``window_seconds`` or when more than
  ``max_entries`` are held (oldest first), so memory stays flat under any load.

An id is *reserved* while its batch is being published, so two concurrent
requests carrying the same id publish it once; the reservation becomes a *seen*
entry only when the broker acknowledged the event, and is released if publishing
failed, so the client's retry is published rather than wrongly skipped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable


class DedupeWindow:
    def __init__(
        self,
        window_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> expiry, oldest first
        self._pending: set[str] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        seen = self._seen
        while seen:
            oldest_id, expiry = next(iter(seen.items()))
            if expiry > now and len(seen) <= self.max_entries:
                break
            del seen[oldest_id]

    def reserve(self, event_ids: Iterable[str]) -> list[bool]:
        """For each id: True if it is new (now reserved), False if it is a duplicate.

        An id repeated inside the same call is a duplicate from its second occurrence.
        """
        now = self._clock()
        self._expire(now)
        fresh: list[bool] = []
        for event_id in event_ids:
            expiry = self._seen.get(event_id)
            if (expiry is not None and expiry > now) or event_id in self._pending:
                fresh.append(False)
            else:
                self._pending.add(event_id)
                fresh.append(True)
        return fresh

    def commit(self, event_ids: Iterable[str]) -> None:
        """The broker acknowledged these: remember them for the window."""
        if self.window_seconds <= 0 or self.max_entries <= 0:
            self._pending.difference_update(event_ids)
            return
        now = self._clock()
        expiry = now + self.window_seconds
        seen = self._seen
        pending = self._pending
        for event_id in event_ids:
            pending.discard(event_id)
            if event_id in seen:  # re-seen after expiry: move it to the young end
                del seen[event_id]
            seen[event_id] = expiry
        self._expire(now)

    def release(self, event_ids: Iterable[str]) -> None:
        """Publishing failed: forget the reservation so a retry is published."""
        self._pending.difference_update(event_ids)
