"""Writer priority inside one process: alerts are written before health updates.

Why: SQLite has a single writer lock, and a transaction that finds it taken
sleeps in SQLite's busy handler (steps of up to 100 ms) while other writers
keep winning it. Bulk health writes come several times a second; without
coordination an alert could wait behind several of them. With this gate a bulk
writer starts only when no urgent writer is waiting or writing, and an urgent
writer waits at most for the bulk transaction already running. PostgreSQL locks
rows, not the database, so the service gives it :class:`NoGate`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class WriteGate:
    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._urgent = 0  # waiting or writing
        self._bulk = False

    @contextlib.asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        """Write as soon as the bulk transaction in progress (if any) is over."""
        async with self._changed:
            self._urgent += 1
            try:
                await self._changed.wait_for(lambda: not self._bulk)
            except BaseException:
                self._urgent -= 1
                self._changed.notify_all()
                raise
        try:
            yield
        finally:
            async with self._changed:
                self._urgent -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def bulk(self) -> AsyncIterator[None]:
        """Write when no urgent writer waits or writes (one bulk writer at a time)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._urgent == 0 and not self._bulk)
            self._bulk = True
        try:
            yield
        finally:
            async with self._changed:
                self._bulk = False
                self._changed.notify_all()


class NoGate(WriteGate):
    """Every writer goes at once (databases with row-level locking)."""

    @contextlib.asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        yield

    @contextlib.asynccontextmanager
    async def bulk(self) -> AsyncIterator[None]:
        yield
