"""A small deterministic generator of canonical events, used until ``simulator.generate`` exists.

The benchmark must measure every stage on the same events; when the simulator is
not importable this produces a plausible mix (mostly usage, some tickets, billing,
feedback and account events) that ``schemas.Event`` accepts, so every measurement
still runs on valid input. The run's JSON records which source was used.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

_START = datetime(2024, 1, 1, tzinfo=UTC)
_FEATURES = ("dashboards", "reports", "exports", "alerts", "api", "sso", "billing", "search")
_PRIORITIES = ("low", "normal", "high", "urgent")


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event(
    seq: int, seed: int, account: str, moment: datetime, kind: str, name: str, props: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": f"bench-{seed}-{seq}",
        "account_id": account,
        "type": kind,
        "name": name,
        "occurred_at": _ts(moment),
        "source": "bench",
        "properties": props,
    }


def generate(accounts: int, days: int, seed: int) -> Iterator[dict[str, Any]]:
    """Yield events for ``accounts`` accounts over ``days`` days, in event-time order.

    Each account is created on day 0 with an MRR and a CSM, then emits a
    day's worth of usage and the occasional ticket, invoice and survey answer.
    """
    rng = random.Random(seed)
    names = [f"acct-{seed}-{i:06d}" for i in range(accounts)]
    activity = {name: rng.uniform(2.0, 30.0) for name in names}  # events per active day
    seq = 0
    for name in names:
        props = {"mrr": round(rng.uniform(50, 5000), 2), "plan": rng.choice(("starter", "pro"))}
        props["csm"] = f"csm-{rng.randrange(20):02d}@example.com"
        yield _event(seq, seed, name, _START, "account", "account.created", props)
        seq += 1
    for day in range(days):
        day_start = _START + timedelta(days=day)
        batch: list[tuple[float, str, str, str, dict[str, Any]]] = []
        for name in names:
            count = max(0, int(rng.gauss(activity[name], activity[name] / 3)))
            for _ in range(count):
                second = rng.uniform(0, 86_400)
                roll = rng.random()
                if roll < 0.55:
                    batch.append(
                        (second, name, "usage", "login", {"user_id": f"u{rng.randrange(40)}"})
                    )
                elif roll < 0.88:
                    feature = rng.choice(_FEATURES)
                    user = f"u{rng.randrange(40)}"
                    props = {"feature": feature, "user_id": user, "quantity": rng.randrange(1, 5)}
                    batch.append((second, name, "usage", "feature.used", props))
                elif roll < 0.93:
                    props = {"priority": rng.choice(_PRIORITIES), "status": "open"}
                    batch.append((second, name, "ticket", "ticket.opened", props))
                elif roll < 0.96:
                    batch.append((second, name, "ticket", "ticket.resolved", {"status": "solved"}))
                elif roll < 0.985:
                    props = {"amount": round(rng.uniform(50, 5000), 2), "currency": "USD"}
                    batch.append((second, name, "billing", "invoice.paid", props))
                elif roll < 0.99:
                    props = {"amount": round(rng.uniform(50, 5000), 2), "currency": "USD"}
                    batch.append((second, name, "billing", "payment.failed", props))
                elif roll < 0.995:
                    batch.append(
                        (second, name, "feedback", "nps.response", {"score": rng.randrange(11)})
                    )
                else:
                    batch.append(
                        (second, name, "feedback", "csat.response", {"score": rng.randrange(1, 6)})
                    )
        batch.sort(key=lambda item: item[0])
        for second, name, kind, event_name, props in batch:
            yield _event(
                seq, seed, name, day_start + timedelta(seconds=second), kind, event_name, props
            )
            seq += 1
