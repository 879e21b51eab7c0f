"""In-process fan-out of alert changes to Server-Sent-Events clients.

Published only after the change is committed, so a client never sees an alert
the API cannot return. Each replica streams the changes it makes itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field

from services.alerts import metrics
from services.alerts.models import Alert

log = logging.getLogger(__name__)


@dataclass(eq=False)  # identity equality and hash: subscriptions live in a set
class Subscription:
    #: Owners whose alerts this client sees; None = every alert (an admin).
    owners: frozenset[str] | None
    queue: asyncio.Queue[tuple[int, Alert]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )
    overflowed: bool = False


class Broadcaster:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._ids = itertools.count(1)

    def subscribe(self, owners: frozenset[str] | None) -> Subscription:
        sub = Subscription(owners=owners)
        self._subscribers.add(sub)
        metrics.STREAM_CLIENTS.set(len(self._subscribers))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        metrics.STREAM_CLIENTS.set(len(self._subscribers))

    def publish(self, alert: Alert) -> None:
        event_id = next(self._ids)
        for sub in list(self._subscribers):
            if sub.owners is not None and alert.assigned_csm not in sub.owners:
                continue
            try:
                sub.queue.put_nowait((event_id, alert))
            except asyncio.QueueFull:
                # A client that stopped reading is cut off instead of growing memory;
                # EventSource reconnects and reloads the state.
                sub.overflowed = True
                self.unsubscribe(sub)
                log.warning("SSE client too slow, disconnected")
