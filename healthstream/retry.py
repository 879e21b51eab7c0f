"""The one retry policy of the project: capped exponential backoff with jitter.

Every place that waits before trying again (a background task restarted by
:mod:`healthstream.supervisor`, a batch the alerts consumer could not store, topic
administration at start-up, a delivery the outbox will re-send, the ingest
client's requests) takes its delays from :func:`wait`, so they all back off the
same way: ``base·2^(n-1)`` capped at ``cap``, scaled by a random factor in
[½, 1] so that many clients coming back after one outage do not retry in
lockstep while the lower half keeps progress.

tenacity rather than a hand-written loop: maintained, asyncio-native
(``AsyncRetrying``), and its stop/wait/retry strategies compose, so each caller
states only what differs (when to give up, which errors are worth a retry).
"""

from __future__ import annotations

import random
from typing import Any

import tenacity
from tenacity.wait import wait_exponential

#: Defaults for in-process retries (seconds); persisted schedules pass their own.
BASE_S = 0.1
CAP_S = 30.0


class wait_jittered(wait_exponential):
    """``wait_exponential`` scaled by a random factor in [½, 1] ("equal jitter")."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        super().__init__(multiplier=base, max=cap, exp_base=2, min=0)
        self.rng = rng or random.Random()

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return float(super().__call__(retry_state)) * self.rng.uniform(0.5, 1.0)


def wait(base: float = BASE_S, cap: float = CAP_S) -> wait_jittered:
    """The policy as a tenacity wait strategy."""
    return wait_jittered(base, cap)


def delay(attempt: int, base: float = BASE_S, cap: float = CAP_S, rng: Any = None) -> float:
    """The policy's delay after the ``attempt``-th failure (1-based).

    For schedules kept outside a running loop (the outbox stores the next
    attempt's time in the database), computed by the same tenacity strategy.
    """
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    return wait_jittered(base, cap, rng)(state)
