"""Event-time alignment of the event topics: the merge, the hold-back, and the property
that the streaming path (aligner + core) scores exactly as a time-ordered replay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from core_helpers import DAY, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scorer.alignment import EventTimeAligner, ackable
from services.scorer.core import AccountState, CoreEvent, Scorecard, ScoringEngine
from services.scorer.core.events import event_time_of

TOPICS = ["account-events", "billing-events", "feedback-events", "ticket-events", "usage-events"]
RANK = {t: i for i, t in enumerate(TOPICS)}
TOPIC_OF = {t.split("-")[0]: t for t in TOPICS}


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass
class Rec:
    offset: int
    event: CoreEvent


def aligner(idle: float = 0.1, hold: float = 30.0) -> EventTimeAligner:
    return EventTimeAligner(max_idle_s=idle, max_hold_s=hold, topic_rank=RANK)


def ev(i: int, kind: str, ts: float, account: str = "a") -> CoreEvent:
    return CoreEvent(f"{kind}{i}", account, kind, "x", ts, {})


def groups(*tps: TP) -> dict[int, list[TP]]:
    out: dict[int, list[TP]] = {}
    for tp in tps:
        out.setdefault(tp.partition, []).append(tp)
    return out


USAGE, BILLING = TP("usage-events", 0), TP("billing-events", 0)


def test_merges_by_event_time_not_by_fetch_order() -> None:
    a = aligner()
    # Billing (day 70) fetched first, then the usage history it must not overtake.
    a.add(BILLING, [(b"a", T0 + 70 * DAY, 0.0, Rec(0, ev(0, "billing", T0 + 70 * DAY)))])
    a.add(
        USAGE, [(b"a", T0 + d * DAY, 0.0, Rec(d, ev(d, "usage", T0 + d * DAY))) for d in range(3)]
    )
    out = a.select(groups(USAGE, BILLING), lambda tp: False, now=1e10)
    assert [r.event.event_id for _, r in out] == ["usage0", "usage1", "usage2", "billing0"]
    assert a.stats.reordered == 1  # billing0, fetched first, moved behind three records


def test_holds_while_a_topic_with_unfetched_records_is_empty() -> None:
    a = aligner()
    a.add(BILLING, [(b"a", T0 + 70 * DAY, 0.0, Rec(0, ev(0, "billing", T0 + 70 * DAY)))])
    lagging = {USAGE}
    assert a.select(groups(USAGE, BILLING), lambda tp: tp in lagging, now=100.0) == []
    assert a.busy_indexes() == {0}
    a.add(USAGE, [(b"a", T0, 0.0, Rec(0, ev(0, "usage", T0)))])
    out = a.select(groups(USAGE, BILLING), lambda tp: tp in lagging, now=101.0)
    # usage0 passes; then usage is empty and still behind: billing waits for it.
    assert [r.event.event_id for _, r in out] == ["usage0"]
    lagging.clear()
    out = a.select(groups(USAGE, BILLING), lambda tp: False, now=102.0)
    assert [r.event.event_id for _, r in out] == ["billing0"]
    assert a.stats.waited_s == 2.0 and a.stats.forced == 0


def test_a_caught_up_topic_vouches_only_for_records_published_idle_before_its_fetch() -> None:
    """ "Caught up" counts as of the fetch response that said so, not as of now: a worker
    whose fetches lag must not take an old answer for a current one."""
    a = aligner(idle=0.1)
    a.add(BILLING, [(b"a", T0, 1000.0, Rec(0, ev(0, "billing", T0)))])
    fresh = {USAGE: 1000.05, BILLING: 1000.05}
    assert a.select(groups(USAGE, BILLING), lambda tp: False, 1000.05, fresh) == []
    stale = {USAGE: 999.0, BILLING: 1001.0}  # usage last reported on before the publish
    assert a.select(groups(USAGE, BILLING), lambda tp: False, 1005.0, stale) == []
    assert a.select(groups(USAGE, BILLING), lambda tp: False, 1005.0, {BILLING: 1005.0}) == []
    late = {USAGE: 1000.1, BILLING: 1000.1}
    out = a.select(groups(USAGE, BILLING), lambda tp: False, 1005.0, late)
    assert [r.event.event_id for _, r in out] == ["billing0"]
    assert a.stats.waited_s == 0.0  # the idle wait is not a hold for a lagging topic


def test_the_hold_gives_up_after_max_hold_and_says_so() -> None:
    a = aligner(hold=5.0)
    a.add(BILLING, [(b"a", T0, 0.0, Rec(0, ev(0, "billing", T0)))])
    assert a.select(groups(USAGE, BILLING), lambda tp: True, now=0.0) == []
    assert a.select(groups(USAGE, BILLING), lambda tp: True, now=4.9) == []
    out = a.select(groups(USAGE, BILLING), lambda tp: True, now=5.0)
    assert len(out) == 1 and a.stats.forced == 1


def test_partition_indexes_are_independent() -> None:
    a = aligner()
    other = TP("billing-events", 1)
    a.add(BILLING, [(b"a", T0, 0.0, Rec(0, ev(0, "billing", T0)))])
    a.add(other, [(b"b", T0, 0.0, Rec(0, ev(1, "billing", T0, "b")))])
    behind = {USAGE}
    out = a.select(
        groups(USAGE, BILLING, TP("usage-events", 1), other), lambda tp: tp in behind, now=1e10
    )
    assert [r.event.account_id for _, r in out] == ["b"]
    assert a.first_offsets() == {BILLING: 0}


def test_records_processed_beyond_a_hold_are_acked_once_it_goes_through() -> None:
    # Batch 1 processes offsets 5, 6, 8, 9 while 7 is held: ack up to 6.
    assert ackable(5, 9, None, held=7) == 6
    # Batch 2 processes only 7: everything up to 9 is processed now.
    assert ackable(7, 7, 9, held=None) == 9
    # Nothing held, nothing earlier: the batch itself.
    assert ackable(3, 4, None, held=None) == 4
    # Still held below this batch: nothing new to ack.
    assert ackable(8, 9, None, held=7) == 6


def test_event_time_of_reads_the_compact_form_and_falls_back() -> None:
    assert event_time_of(b'{"occurred_at":"2024-05-01T00:00:00Z","x":1}') == 1714521600.0
    assert event_time_of(b'{"x": 1, "occurred_at": "2024-05-01T00:00:00Z"}') == 1714521600.0
    twice = (
        b'{"properties":{"occurred_at":"1999-01-01T00:00:00Z"},'
        b'"occurred_at":"2024-05-01T00:00:00Z"}'
    )
    assert event_time_of(twice) == 1714521600.0
    for bad in (b"", b"not json", b"[1]", b'{"occurred_at":"9999-12-31T23:59:59-01:00"}'):
        assert event_time_of(bad) == float("-inf")


# --------------------------------------------------------------------- property
_NAMES = {
    "usage": ["login", "feature.used"],
    "ticket": ["ticket.opened", "ticket.resolved"],
    "billing": ["payment.failed", "invoice.paid", "subscription.updated"],
    "feedback": ["nps.response"],
    "account": ["account.created"],
}


@st.composite
def fleet(draw: st.DrawFn) -> list[CoreEvent]:
    """Accounts on two partitions, each with a multi-type history in event-time order
    (distinct seconds per type: a redelivery is then always recognised, see scoring.md)."""
    events: list[CoreEvent] = []
    for n, account in enumerate(
        draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True))
    ):
        t = T0 + draw(st.integers(0, 5)) * DAY
        for i in range(draw(st.integers(1, 45))):
            t += draw(st.sampled_from([1, 60, 3600, 0.5 * DAY, 2 * DAY, 9 * DAY]))
            kind = draw(st.sampled_from(list(_NAMES)))
            name = draw(st.sampled_from(_NAMES[kind]))
            props: dict[str, Any] = {}
            if name == "nps.response":
                props = {"score": draw(st.integers(0, 10))}
            elif name == "subscription.updated":
                props = {"mrr": draw(st.sampled_from([50, 100]))}
            elif kind == "ticket":
                props = {"ticket_id": draw(st.sampled_from(["T1", "T2"])), "priority": "urgent"}
            elif name == "feature.used":
                props = {"user_id": draw(st.sampled_from("uvw"))}
            events.append(CoreEvent(f"{account}-{i}", account, kind, name, float(t), props))
        del n
    return events


def _partition(account: str) -> int:
    return "abcdef".index(account) % 2


def reference(events: list[CoreEvent]) -> tuple[dict[str, bytes], dict[str, list[bytes]]]:
    engine = ScoringEngine(Scorecard())
    order = sorted(events, key=lambda e: (e.ts, RANK[TOPIC_OF[e.type]]))
    states: dict[str, AccountState] = {}
    alerts: dict[str, list[bytes]] = {}
    for e in order:
        out = engine.apply(states.get(e.account_id), e)
        states[e.account_id] = out.state
        alerts.setdefault(e.account_id, []).extend(a.to_json_bytes() for a in out.alerts)
    return {k: v.to_bytes() for k, v in states.items()}, alerts


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet(), st.data())
def test_streaming_path_scores_exactly_as_the_time_ordered_replay(
    events: list[CoreEvent], data: st.DataObject
) -> None:
    """Topics fetched in random chunks with lags up to the whole history, and worker
    restarts that drop the buffer and rewind to an earlier commit (state kept, as the
    changelog is ahead of the offsets): same states and same alerts as the replay."""
    logs: dict[TP, list[CoreEvent]] = {}
    for e in events:
        logs.setdefault(TP(TOPIC_OF[e.type], _partition(e.account_id)), []).append(e)
    tps = sorted(logs)
    every = [TP(t, p) for t in TOPICS for p in (0, 1)]
    position = dict.fromkeys(tps, 0)  # next offset to fetch
    committed = dict.fromkeys(tps, 0)  # what the worker may commit: the processed prefix
    engine = ScoringEngine(Scorecard())
    states: dict[str, AccountState] = {}
    alerts: dict[str, list[bytes]] = {}
    a = aligner()

    def behind(tp: TP) -> bool:
        return position.get(tp, 0) < len(logs.get(tp, ()))

    now = 0.0
    restarts = data.draw(st.integers(0, 3))
    rng = data.draw(st.randoms(use_true_random=False))
    for _ in range(5000):
        if not any(behind(tp) for tp in tps) and not a.pending():
            break
        now += 0.01
        if restarts and rng.random() < 0.05:  # restart: back to a committed offset
            restarts -= 1
            a.clear()
            for tp in tps:
                position[tp] = rng.randint(0, committed[tp])
            continue
        fetchable = [tp for tp in tps if behind(tp)]
        if fetchable and rng.random() < 0.8:
            tp = rng.choice(fetchable)
            start = position[tp]
            chunk = logs[tp][start : start + rng.randint(1, len(logs[tp]))]
            a.add(
                tp,
                [
                    (e.account_id, e.ts, float("-inf"), Rec(start + i, e))
                    for i, e in enumerate(chunk)
                ],
            )
            position[tp] = start + len(chunk)
        for _tp, rec in a.select(groups(*every), behind, now):
            out = engine.apply(states.get(rec.event.account_id), rec.event)
            states[rec.event.account_id] = out.state
            alerts.setdefault(rec.event.account_id, []).extend(
                x.to_json_bytes() for x in out.alerts
            )
            assert not out.late
        for tp in tps:
            held = a.safe_upto(tp)
            committed[tp] = position[tp] if held is None else held
    else:
        raise AssertionError("the stream never drained")
    want_states, want_alerts = reference(events)
    assert {k: v.to_bytes() for k, v in states.items()} == want_states
    assert alerts == {k: v for k, v in want_alerts.items()}
