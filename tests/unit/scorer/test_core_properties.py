"""Hypothesis: the core is deterministic, duplicate-insensitive and order-insensitive
where it should be (events shuffled within the allowed lateness)."""

from __future__ import annotations

from typing import Any

from core_helpers import DAY, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scorer.core import (
    AccountState,
    ChurnModel,
    CoreEvent,
    Outcome,
    Scorecard,
    ScoringEngine,
)
from services.scorer.core.engine import ring_key
from services.scorer.core.state import TYPE_INDEX

_KINDS: list[tuple[str, str, st.SearchStrategy[dict[str, Any]]]] = [
    (
        "usage",
        "feature.used",
        st.fixed_dictionaries(
            {},
            optional={"user_id": st.sampled_from("abcdefghij"), "feature": st.sampled_from("xyz")},
        ),
    ),
    ("usage", "order.placed", st.fixed_dictionaries({"amount": st.floats(1, 100)})),
    (
        "ticket",
        "ticket.opened",
        st.fixed_dictionaries(
            {"ticket_id": st.sampled_from(["T1", "T2", "T3"])},
            optional={"priority": st.sampled_from(["low", "normal", "high", "urgent"])},
        ),
    ),
    (
        "ticket",
        "ticket.resolved",
        st.fixed_dictionaries({"ticket_id": st.sampled_from(["T1", "T2"])}),
    ),
    ("billing", "payment.failed", st.just({})),
    ("billing", "invoice.paid", st.just({})),
    ("billing", "subscription.updated", st.fixed_dictionaries({"mrr": st.sampled_from([50, 100])})),
    ("billing", "subscription.canceled", st.just({})),
    ("billing", "subscription.renewed", st.just({})),
    ("feedback", "nps.response", st.fixed_dictionaries({"score": st.integers(0, 10)})),
    ("feedback", "csat.response", st.fixed_dictionaries({"score": st.integers(1, 5)})),
    ("account", "account.created", st.just({"renewal_date": "2024-07-01"})),
]


@st.composite
def histories(
    draw: st.DrawFn, max_events: int = 30, max_gap: float = 4 * DAY, min_gap: float = 0.0
) -> list[CoreEvent]:
    n = draw(st.integers(1, max_events))
    events = []
    t = T0
    for i in range(n):
        t += draw(st.one_of(st.floats(min_gap, max_gap), st.floats(min_gap, 3 * 3600)))
        kind, name, props = draw(st.sampled_from(_KINDS))
        account = draw(st.sampled_from(["a", "b"]))
        events.append(CoreEvent(f"id{i}", account, kind, name, t, draw(props)))
    return events


def run(
    engine: ScoringEngine, events: list[CoreEvent]
) -> tuple[dict[str, AccountState], list[Outcome]]:
    states: dict[str, AccountState] = {}
    outcomes = []
    for event in events:
        out = engine.apply(states.get(event.account_id), event)
        states[event.account_id] = out.state
        outcomes.append(out)
    return states, outcomes


def _fingerprint(outcome: Outcome) -> tuple[Any, ...]:
    return (
        outcome.duplicate,
        outcome.late,
        None if outcome.health is None else outcome.health.to_json_bytes("x"),
        [a.to_json_bytes() for a in outcome.alerts],
        [x.to_json_bytes() for x in outcome.examples],
    )


_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(histories())
def test_deterministic(events: list[CoreEvent]) -> None:
    s1, o1 = run(ScoringEngine(Scorecard()), events)
    s2, o2 = run(ScoringEngine(Scorecard()), events)
    assert {k: v.to_bytes() for k, v in s1.items()} == {k: v.to_bytes() for k, v in s2.items()}
    assert [_fingerprint(o) for o in o1] == [_fingerprint(o) for o in o2]


@_SETTINGS
@given(histories(max_events=60, min_gap=1.0), st.data())
def test_duplicates_change_nothing(events: list[CoreEvent], data: st.DataObject) -> None:
    """Any redelivery, however old, changes nothing, as long as no two of an account's
    events of one type share a second (see ``test_a_burst_within_one_second_all_counts``)."""
    with_dups: list[CoreEvent] = []
    is_dup: list[bool] = []
    for i, event in enumerate(events):
        with_dups.append(event)
        is_dup.append(False)
        for j in data.draw(st.lists(st.integers(0, i), max_size=2)):  # redeliver earlier ones
            with_dups.append(events[j])
            is_dup.append(True)
    clean_states, clean = run(ScoringEngine(Scorecard()), events)
    dup_states, dup = run(ScoringEngine(Scorecard()), with_dups)
    assert {k: v.to_bytes() for k, v in clean_states.items()} == {
        k: v.to_bytes() for k, v in dup_states.items()
    }
    originals = [o for o, d in zip(dup, is_dup, strict=True) if not d]
    assert [_fingerprint(o) for o in originals] == [_fingerprint(o) for o in clean]
    for outcome, d in zip(dup, is_dup, strict=True):
        if d:
            assert outcome.duplicate or outcome.late
            assert outcome.health is None and not outcome.alerts and not outcome.examples


_COMMUTATIVE = [
    k
    for k in _KINDS
    if k[1] in ("feature.used", "order.placed", "nps.response", "csat.response", "payment.failed")
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_order_insensitive_within_lateness(data: st.DataObject) -> None:
    """Usage, feedback and payment failures commute when shuffled inside the lateness window
    (and inside the 16-event dedupe ring, which bounds how far back an event may arrive)."""
    n = data.draw(st.integers(1, 16))
    events = []
    for i in range(n):
        kind, name, props = data.draw(st.sampled_from(_COMMUTATIVE))
        ts = T0 + 10 * DAY + data.draw(st.floats(0, 0.9 * DAY))
        events.append(CoreEvent(f"id{i}", "a", kind, name, ts, data.draw(props)))
    prefix = [
        CoreEvent("p0", "a", "usage", "login", T0, {}),
        CoreEvent("p1", "a", "usage", "login", T0 + 9 * DAY, {}),
    ]
    shuffled = data.draw(st.permutations(events))
    engine = ScoringEngine(Scorecard())
    a, _ = run(engine, prefix + events)
    b, _ = run(engine, prefix + list(shuffled))
    later = T0 + 12 * DAY
    ha, hb = engine.score(a["a"], later), engine.score(b["a"], later)
    assert ha.features == hb.features
    assert ha.to_json_bytes("a") == hb.to_json_bytes("a")


@_SETTINGS
@given(histories(max_events=80, max_gap=DAY), st.data())
def test_topics_may_interleave_freely_within_the_lateness(
    events: list[CoreEvent], data: st.DataObject
) -> None:
    """Kafka orders an account's events within a topic (one per type), not across them:
    however the consumer interleaves the topics, no event is dropped as late."""
    queues: dict[tuple[str, str], list[CoreEvent]] = {}
    for event in events:
        queues.setdefault((event.account_id, event.type), []).append(event)
    interleaved = []
    while queues:
        pick = data.draw(st.sampled_from(sorted(queues)))
        interleaved.append(queues[pick].pop(0))
        if not queues[pick]:
            del queues[pick]
    lenient = Scorecard(allowed_lateness_hours=24 * 365)
    in_order, _ = run(ScoringEngine(lenient), events)
    states, outcomes = run(ScoringEngine(lenient), interleaved)
    assert not any(o.late or o.duplicate for o in outcomes)
    assert {k: (s.events, s.watermark) for k, s in states.items()} == {
        k: (s.events, s.watermark) for k, s in in_order.items()
    }


def test_a_burst_within_one_second_all_counts() -> None:
    """More than the ring's 16 ids in one second is traffic, not lateness. The price:
    a redelivered id that left the ring and shares a second with the newest id that
    left it is not recognised (older redeliveries still are)."""
    engine = ScoringEngine(Scorecard())
    state = None
    for i in range(40):
        out = engine.apply(state, CoreEvent(f"b{i}", "a", "usage", "login", T0 + 0.5, {}))
        assert not (out.late or out.duplicate), i
        state = out.state
    assert state is not None and state.events == 40
    for i in range(40):
        out = engine.apply(state, CoreEvent(f"c{i}", "a", "usage", "login", T0 + 1 + i / 80, {}))
        assert not (out.late or out.duplicate), i
    redelivered = engine.apply(state, CoreEvent("b0", "a", "usage", "login", T0 + 0.5, {}))
    # Older than its type's floor: a redelivery (restarts replay many), not lateness.
    assert redelivered.duplicate and not redelivered.late and state.events == 80


def test_the_newest_id_to_leave_the_ring_is_still_recognised() -> None:
    """A type with few events: its one evicted id *is* the floor of its second."""
    engine = ScoringEngine(Scorecard())
    state = engine.apply(
        None, CoreEvent("created", "a", "account", "account.created", T0, {})
    ).state
    for i in range(20):
        state = engine.apply(state, CoreEvent(f"u{i}", "a", "usage", "login", T0 + i, {})).state
    assert ring_key("created", TYPE_INDEX["account"]) not in state.seen
    assert state.events == 21
    again = engine.apply(state, CoreEvent("created", "a", "account", "account.created", T0, {}))
    assert again.duplicate and again.state.events == 21


def test_events_beyond_the_allowed_lateness_are_dropped_and_flagged() -> None:
    engine = ScoringEngine(Scorecard(allowed_lateness_hours=24))
    state = engine.apply(None, CoreEvent("1", "a", "usage", "login", T0 + 5 * DAY, {})).state
    before = state.to_bytes()
    out = engine.apply(state, CoreEvent("2", "a", "usage", "login", T0 + 3.9 * DAY, {}))
    assert out.late and not out.duplicate and out.health is None
    assert out.state.to_bytes() == before
    ok = engine.apply(state, CoreEvent("3", "a", "usage", "login", T0 + 4.1 * DAY, {}))
    assert not ok.late and ok.state.usage_ring[1] == 1


def test_default_lateness_is_what_the_state_keeps() -> None:
    """Unset, the lateness is the usage ring's 56 days: a 55-day-old event lands in its
    day bucket, a 57-day-old one is refused (the caller dead-letters it)."""
    engine = ScoringEngine(Scorecard())
    assert Scorecard().lateness_hours == 56 * 24
    state = engine.apply(None, CoreEvent("1", "a", "usage", "login", T0 + 60 * DAY, {})).state
    ok = engine.apply(state, CoreEvent("2", "a", "usage", "login", T0 + 5 * DAY + 60, {}))
    assert not ok.late and ok.state.usage_ring[55] == 1
    old = engine.apply(state, CoreEvent("3", "a", "usage", "login", T0 + 3 * DAY, {}))
    assert old.late and old.state.events == 2


@_SETTINGS
@given(histories(max_events=60, max_gap=2 * DAY), st.booleans())
def test_fast_path_changes_nothing(events: list[CoreEvent], with_model: bool) -> None:
    """Skipping the re-score of same-day usage events is exact: same states, same outcomes."""
    model_a = ChurnModel() if with_model else None
    model_b = ChurnModel() if with_model else None
    fast = ScoringEngine(Scorecard(), model_a, learn_inline=with_model)
    slow = ScoringEngine(Scorecard(), model_b, learn_inline=with_model, fast_path=False)
    sf, of = run(fast, events)
    ss, os_ = run(slow, events)
    assert {k: v.to_bytes() for k, v in sf.items()} == {k: v.to_bytes() for k, v in ss.items()}
    assert [_fingerprint(o) for o in of] == [_fingerprint(o) for o in os_]
    for account, state in sf.items():
        later = state.watermark + 3600
        assert fast.score(state, later).to_json_bytes(account) == slow.score(
            ss[account], later
        ).to_json_bytes(account)
