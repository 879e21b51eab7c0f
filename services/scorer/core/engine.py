"""The scoring engine: apply one event, tick timers, score an account.

Pure and deterministic: time is the event time (or the ``now`` a caller passes
to ``tick``), never the clock. The same engine runs in the Faust scorer, in
``healthstream evaluate`` and in the benchmarks.

Order of work in ``apply``:
1. dedupe: the ring of recent event-id hashes, plus per type the newest id
   that left the ring, and anything from a second before that id's second is
   a redelivery (it makes "a duplicate changes nothing" hold for old
   redeliveries too). Per type because each type has its own topic and Kafka
   orders an account's events within a topic only; "before" strictly because
   a burst of more than 16 events in one second is real traffic. Then
   lateness: an event more than the allowed lateness (by default what the
   state keeps) behind the account's newest event is refused (``late``);
2. label snapshots whose outcome became known before this event;
3. update the state from the event;
4. features, components, health at the account watermark (not at the event's
   own time, so a late event never moves the clock backwards);
5. alert rules, label snapshot, publish decision.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

from services.scorer.core import components as comp
from services.scorer.core import labels, rules
from services.scorer.core.events import CoreEvent, parse_timestamp
from services.scorer.core.features import (
    PRIORITY_INDEX,
    compute_features,
    model_vector,
    recent_count,
    refresh_features,
    stable_until,
    vector_features,
)
from services.scorer.core.model import ChurnModel
from services.scorer.core.numeric import round_to
from services.scorer.core.results import (
    COMPONENTS,
    DriverItem,
    HealthResult,
    Outcome,
    TrainingExample,
)
from services.scorer.core.scorecard import Scorecard
from services.scorer.core.state import (
    DAY,
    FLOOR_ID_MASK,
    MAX_FAILURES,
    MAX_FEATURES,
    MAX_TICKETS,
    MAX_USERS,
    SCORE_DAYS,
    SEEN_RING,
    TICKET_DAYS,
    TYPE_BITS,
    TYPE_INDEX,
    TYPE_MASK,
    USAGE_DAYS,
    AccountState,
)

_CLOSED_STATUSES = frozenset({"solved", "closed", "resolved"})
_CLOSE_NAMES = frozenset({"ticket.resolved", "ticket.closed", "ticket.solved"})
_PAST_DUE_NAMES = frozenset({"invoice.past_due", "invoice.overdue", "invoice.payment_failed"})
_PAST_DUE_STATUSES = frozenset({"past_due", "unpaid"})
_GOOD_STATUSES = frozenset({"active", "trialing", "paid"})


def event_key(event_id: str) -> int:
    """40-bit hash of an event id: deterministic across processes (unlike ``hash``).

    Among the 16 ids kept per account a false duplicate is ~1e-11 per event.
    """
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=5).digest(), "big")


def ring_key(event_id: str, kind: int) -> int:
    """An event's entry in the dedupe ring: its id hash tagged with its type index."""
    return event_key(event_id) << TYPE_BITS | kind


def _floor_id(key: int) -> int:
    """The part of a ring key kept as a type's floor id (see ``FLOOR_ID_MASK``)."""
    return key >> TYPE_BITS & FLOOR_ID_MASK


def _evict_oldest(state: AccountState) -> None:
    """Drop the ring's oldest id; it and its second become its type's floor (see ``apply``)."""
    key = state.seen.pop(0)
    kind = key & TYPE_MASK
    evicted = state.seen_ts.pop(0)
    if evicted >= state.seen_floors[kind]:
        state.seen_floors[kind] = evicted
        state.seen_floor_keys[kind] = _floor_id(key)


_NEVER_DAY = -(2**31)
# How much of a re-score a usage event needs (see ScoringEngine._fast_path_ok).
_FULL = object()
_ENGAGEMENT = object()
_SKIP = object()


@lru_cache(maxsize=1 << 16)
def _crc(text: str) -> int:
    """24-bit hash for user / feature / ticket ids: among <= 16 kept, collisions are ~1e-5."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=3).digest(), "big")


def _advance(ring: list[int], ring_day: int, day: int) -> int:
    """Shift a day ring (index 0 = newest day) so ``day`` is its head; returns the new head."""
    shift = day - ring_day
    if shift <= 0:
        return ring_day
    size = len(ring)
    if shift >= size:
        ring[:] = [0] * size
    else:
        ring[:0] = [0] * shift
        del ring[size:]
    return day


def _remember_recent(table: dict[int, int], key: int, day: int, cap: int) -> None:
    """Keep the last-seen day per key; evict the stalest (then smallest key) beyond ``cap``."""
    old = table.get(key)
    if old is None or day > old:
        table[key] = day
    if len(table) > cap:
        victim = min(table.items(), key=lambda kv: (kv[1], kv[0]))[0]
        del table[victim]


class ScoringEngine:
    """Scores accounts from events; holds the scorecard and (optionally) the churn model."""

    def __init__(
        self,
        scorecard: Scorecard,
        model: ChurnModel | None = None,
        *,
        learn_inline: bool = False,
        fast_path: bool = True,
    ) -> None:
        """``learn_inline``: learn every emitted example right away (single-process replay).

        ``fast_path``: skip re-scoring a same-day usage event when the score provably
        cannot change (exists for speed; ``False`` is the reference used by tests).
        """
        self.scorecard = scorecard
        self.model = model
        self.learn_inline = learn_inline
        self.fast_path = fast_path
        self._lateness = scorecard.lateness_hours * 3600.0
        labels_cfg = scorecard.labels
        self._horizon = labels_cfg.horizon_days * DAY
        self._snapshot_every = max(
            labels_cfg.snapshot_interval_days * DAY, self._horizon / labels_cfg.max_pending
        )
        weights = scorecard.weights.as_dict()
        self._weight_list = tuple(weights[name] for name in COMPONENTS)
        self._rules = rules.compile_rules(scorecard)
        self._max_pending = labels_cfg.max_pending
        self._target_users = scorecard.engagement.target_active_users
        self._target_features = scorecard.engagement.target_features

    # ------------------------------------------------------------------ apply
    def apply(self, state: AccountState | None, event: CoreEvent) -> Outcome:
        if state is None:
            state = AccountState(event.account_id)
        ts = event.ts
        kind = TYPE_INDEX[event.type]
        key = ring_key(event.event_id, kind)
        if (
            key in state.seen
            or ts < state.seen_floors[kind]
            or (
                _floor_id(key) == state.seen_floor_keys[kind]
                and math.floor(ts) == state.seen_floors[kind]
            )
        ):
            return Outcome(state=state, duplicate=True)
        if state.events and ts < state.watermark - self._lateness:
            return Outcome(state=state, late=True)
        if event.type == "usage":
            props = event.properties
            user = props.get("user_id")
            user_key = _crc(user) if isinstance(user, str) else None
            feature = props.get("feature")
            feature_key = _crc(feature) if isinstance(feature, str) else None
            if self.fast_path:
                mode = self._fast_path_ok(state, ts, props, user_key, feature_key)
                if mode is _SKIP:
                    self._fast_usage(state, key, ts, user_key, feature_key)
                    return Outcome(state=state)
                if mode is _ENGAGEMENT:
                    outcome = self._engagement_only(state, key, ts, event, user_key, feature_key)
                    if outcome is not None:
                        return outcome
        examples: list[TrainingExample] = []
        if state.pending:
            examples = labels.resolve_due(state, max(ts, state.watermark), self._horizon)
        self._remember(state, key, ts)
        examples += self._update(state, event)
        now = state.watermark
        f = compute_features(state, now, self.scorecard)
        self._maybe_snapshot(state, now, f)
        if examples and self.learn_inline and self.model is not None:
            for example in examples:
                self.model.learn_one(example.features, example.label, example.scorecard)
        return self._finish(state, now, f, event.name, examples)

    def tick(self, state: AccountState, now: float) -> Outcome:
        """Event-time timers without an event: labels by horizon, inactivity, SLA, renewal.

        ``now`` is an event-time watermark (e.g. the partition's newest event
        time); a ``now`` behind the account's own watermark changes nothing.
        """
        if now <= state.watermark:
            return Outcome(state=state)
        examples = labels.resolve_due(state, now, self._horizon) if state.pending else []
        if examples and self.learn_inline and self.model is not None:
            for example in examples:
                self.model.learn_one(example.features, example.label, example.scorecard)
        f = compute_features(state, now, self.scorecard)
        return self._finish(state, now, f, None, examples)

    def score(self, state: AccountState, now: float) -> HealthResult:
        """Full current health at ``now``; changes nothing."""
        f = compute_features(state, now, self.scorecard)
        return self._score(state, now, f).health()

    # ---------------------------------------------------------------- helpers
    def _model_stamp(self) -> int:
        return -1 if self.model is None else self.model.labels_seen

    def _fast_path_ok(
        self,
        state: AccountState,
        ts: float,
        props: dict[str, object],
        user_key: int | None,
        feature_key: int | None,
    ) -> object:
        """How much of a re-score this usage event needs: ``_FULL``, ``_ENGAGEMENT`` or ``_SKIP``.

        ``_SKIP`` (the score cannot change): the last score was taken at the
        previous usage event (so recency was already "active now"), on the same
        day, before any step in time (``stable_until``), with the same model; the
        event is in order, today already had usage, its user and feature are
        already counted (or engagement is at its target and the model does not
        count), and no label or snapshot falls due. ``_ENGAGEMENT``: the same,
        except that a new user or feature may move the engagement component.
        """
        last = state.last_usage_ts
        if (
            last is None
            or state.scored_at != last
            or ts < state.watermark
            or ts >= state.cache_until
            or state.cache_model != (-1 if self.model is None else self.model.labels_seen)
            or int(ts // DAY) != state.usage_day
            or not state.usage_ring[0]
            or "csm" in props
        ):
            return _FULL
        pending = state.pending
        if pending and pending[0][0] + self._horizon <= ts:
            return _FULL  # a label falls due
        if not (
            len(pending) >= self._max_pending
            or (pending and ts - pending[-1][0] < self._snapshot_every)
        ):
            canceled = state.canceled_ts
            if canceled is None or (state.renewed_ts is not None and state.renewed_ts >= canceled):
                return _FULL  # a label snapshot falls due
        window_start = state.usage_day - 27
        mode = _SKIP
        users = state.users
        if user_key is not None and users.get(user_key, _NEVER_DAY) < window_start:
            # A new user moves the score only while engagement is below its target.
            target = state.seats or self._target_users
            if not (users and recent_count(users, window_start) >= target and self._untrusted()):
                mode = _ENGAGEMENT
        used = state.features_used
        if (
            feature_key is not None
            and used.get(feature_key, _NEVER_DAY) < window_start
            and not (
                used
                and recent_count(used, window_start) >= self._target_features
                and self._untrusted()
            )
        ):
            mode = _ENGAGEMENT
        return mode

    def _engagement_only(
        self,
        state: AccountState,
        key: int,
        ts: float,
        event: CoreEvent,
        user_key: int | None,
        feature_key: int | None,
    ) -> Outcome | None:
        """Re-score an event that can only move engagement, reusing the last score's parts.

        Usage, support, sentiment and lifecycle are functions of features that
        cannot change in this situation (see ``_fast_path_ok``), so their results
        (and the sentences they explain themselves with) are reused; engagement
        and billing (whose "past due for N days" follows the clock) are computed
        afresh, then everything after the components runs as in a full re-score.
        Returns None, having changed nothing, when the last score is not at hand
        (e.g. the state was just decoded).
        """
        previous = state.scored
        if previous is None or previous._engine is not self:
            return None
        self._fast_usage(state, key, ts, user_key, feature_key)
        sc = self.scorecard
        f = refresh_features(previous.features, state, ts, sc)
        if f is None:  # a feature group appears: the full re-score (no label is due)
            f = compute_features(state, ts, sc)
            self._maybe_snapshot(state, ts, f)
            return self._finish(state, ts, f, event.name, [])
        parts = previous.results
        results = (
            parts[0],
            comp.engagement(f, sc, state.seats),
            parts[2],
            comp.billing(f, sc),
            parts[4],
            parts[5],
        )
        return self._finish(state, ts, f, event.name, [], self._combine(ts, f, results))

    def _fast_usage(
        self,
        state: AccountState,
        key: int,
        ts: float,
        user_key: int | None,
        feature_key: int | None,
    ) -> None:
        """``_remember`` + ``_usage`` for an event ``_fast_path_ok`` accepted, written out.

        What that check guarantees makes most branches moot: the event is in
        order (``ts >= watermark >= last usage``), on the ring's head day, which
        already had usage, and the account has seen events before.
        """
        seen = state.seen
        seen.append(key)
        seen_ts = state.seen_ts
        seen_ts.append(math.floor(ts))
        if len(seen) > SEEN_RING:
            _evict_oldest(state)
        state.watermark = ts
        state.events += 1
        state.usage_ring[0] += 1
        state.last_usage_ts = ts
        day = state.usage_day
        if user_key is not None:
            _remember_recent(state.users, user_key, day, MAX_USERS)
        if feature_key is not None:
            _remember_recent(state.features_used, feature_key, day, MAX_FEATURES)
        if state.pending:
            labels.mark_usage(state, ts, self._horizon)
        state.scored_at = ts

    def _untrusted(self) -> bool:
        """The churn model does not count (its inputs may change without moving the score)."""
        return self.model is None or self.model.trusted_weight() <= 0

    def _finish(
        self,
        state: AccountState,
        now: float,
        f: dict[str, float],
        event_name: str | None,
        examples: list[TrainingExample],
        scored: Scored | None = None,
    ) -> Outcome:
        if scored is None:
            scored = self._score(state, now, f)
        state.scored = scored
        score = scored.score
        drop = self._record_score(state, now, score)
        previous = state.last_score
        alerts = rules.evaluate(state, self._rules, now, f, scored, drop, previous, event_name)
        state.last_score = score
        state.scored_at = now
        state.cache_until = stable_until(state, now, self.scorecard)
        state.cache_model = self._model_stamp()
        published = None
        if (
            state.published_score is None
            or scored.band != state.published_band
            or abs(score - state.published_score) >= self.scorecard.publish_min_change
        ):
            published = scored.health()
            state.published_score = score
            state.published_band = scored.band
        return Outcome(state=state, health=published, alerts=alerts, examples=examples)

    def _remember(self, state: AccountState, key: int, ts: float) -> None:
        state.seen.append(key)
        state.seen_ts.append(math.floor(ts))
        if len(state.seen) > SEEN_RING:
            _evict_oldest(state)
        if state.events == 0:
            state.first_ts = ts
            state.watermark = ts
        else:
            if ts < state.first_ts:
                state.first_ts = ts
            if ts > state.watermark:
                state.watermark = ts
        state.events += 1

    def _update(self, state: AccountState, event: CoreEvent) -> list[TrainingExample]:
        """Fold one event into the state; returns examples labelled by an explicit outcome."""
        props = event.properties
        ts = event.ts
        kind = event.type
        name = event.name
        csm = props.get("csm")
        if isinstance(csm, str) and csm:
            state.csm = csm
        if kind == "usage":
            user = props.get("user_id")
            feature = props.get("feature")
            self._usage(
                state,
                ts,
                _crc(user) if isinstance(user, str) else None,
                _crc(feature) if isinstance(feature, str) else None,
            )
            return []
        if kind == "ticket":
            self._ticket(state, event)
            return []
        if kind == "feedback":
            score = props.get("score")
            # Latest by event time; a tie keeps the lower score, so arrival order never matters.
            if isinstance(score, int | float) and not isinstance(score, bool):
                value = float(score)
                if name == "nps.response" and _newer(ts, value, state.nps_ts, state.nps):
                    state.nps, state.nps_ts = value, ts
                elif name == "csat.response" and _newer(ts, value, state.csat_ts, state.csat):
                    state.csat, state.csat_ts = value, ts
            return []
        # billing and account events share subscription facts
        self._subscription_facts(state, ts, props)
        if name in ("account.created", "subscription.created") and (
            state.created_ts is None or ts < state.created_ts
        ):
            state.created_ts = ts
        if kind != "billing":
            return []
        status = props.get("status")
        if name == "payment.failed":
            failures = state.failures
            failures.append(ts)
            failures.sort()
            del failures[:-MAX_FAILURES]
        elif name in rules.PAYMENT_CLEARED:
            state.past_due_since = None
        if name in _PAST_DUE_NAMES or status in _PAST_DUE_STATUSES:
            if state.past_due_since is None:
                state.past_due_since = ts
        elif status in _GOOD_STATUSES:
            state.past_due_since = None
        if name == "subscription.canceled":
            state.canceled_ts = ts
            return labels.resolve_outcome(state, ts, 1)
        if name == "subscription.renewed":
            state.renewed_ts = ts
            return labels.resolve_outcome(state, ts, 0)
        return []

    def _usage(
        self, state: AccountState, ts: float, user_key: int | None, feature_key: int | None
    ) -> None:
        day = int(ts // DAY)
        last = state.last_usage_ts
        if last is None:
            state.usage_day = day
        elif day > state.usage_day:
            state.usage_day = _advance(state.usage_ring, state.usage_day, day)
        index = state.usage_day - day
        if index < USAGE_DAYS:
            ring = state.usage_ring
            if not ring[index]:
                state.active_days_total += 1
            ring[index] += 1
        if last is None or ts > last:
            state.last_usage_ts = ts
        if state.first_value_ts is None or ts < state.first_value_ts:
            state.first_value_ts = ts
        if user_key is not None:
            _remember_recent(state.users, user_key, day, MAX_USERS)
        if feature_key is not None:
            _remember_recent(state.features_used, feature_key, day, MAX_FEATURES)
        if state.pending:
            labels.mark_usage(state, ts, self._horizon)

    def _ticket(self, state: AccountState, event: CoreEvent) -> None:
        props = event.properties
        ticket = props.get("ticket_id")
        key = _crc(str(ticket)) if ticket is not None else None
        priority = props.get("priority")
        status = props.get("status")
        tickets = state.tickets
        if event.name == "ticket.opened":
            day = int(event.ts // DAY)
            if state.tickets_total == 0 and not tickets:
                state.ticket_day = day
            state.ticket_day = _advance(state.ticket_ring, state.ticket_day, day)
            index = state.ticket_day - day
            if index < TICKET_DAYS:
                state.ticket_ring[index] += 1
            state.tickets_total += 1
            rank = PRIORITY_INDEX.get(priority, 1) if isinstance(priority, str) else 1
            tickets[key if key is not None else event_key(event.event_id)] = [
                float(rank),
                event.ts,
            ]
            if len(tickets) > MAX_TICKETS:  # forget the oldest: state must stay bounded
                del tickets[min(tickets.items(), key=lambda kv: (kv[1][1], kv[0]))[0]]
            return
        closing = event.name in _CLOSE_NAMES or status in _CLOSED_STATUSES
        if key is None:
            if not closing or not tickets:
                return
            key = min(tickets.items(), key=lambda kv: (kv[1][1], kv[0]))[0]  # oldest open
        if closing:
            tickets.pop(key, None)
        elif key in tickets and isinstance(priority, str) and priority in PRIORITY_INDEX:
            tickets[key][0] = float(PRIORITY_INDEX[priority])

    def _subscription_facts(self, state: AccountState, ts: float, props: dict[str, object]) -> None:
        mrr = props.get("mrr")
        if isinstance(mrr, int | float) and not isinstance(mrr, bool) and ts >= state.mrr_ts:
            if state.mrr is not None and mrr < state.mrr and state.mrr > 0:
                state.downgrade_ts = ts
                state.downgrade_pct = (state.mrr - mrr) / state.mrr
            if state.mrr is None or mrr != state.mrr:
                state.mrr_prev = state.mrr
            state.mrr = mrr
            state.mrr_ts = ts
        plan = props.get("plan")
        if isinstance(plan, str):
            state.plan = plan
        seats = props.get("seats")
        if isinstance(seats, int) and not isinstance(seats, bool) and seats > 0:
            state.seats = seats
        renewal = props.get("renewal_date")
        if isinstance(renewal, str):
            parsed = _parse_date(renewal)
            if parsed is not None:
                state.renewal_ts = parsed

    def _maybe_snapshot(self, state: AccountState, now: float, f: dict[str, float]) -> None:
        if f.get("canceled"):
            return
        pending = state.pending
        if len(pending) >= self.scorecard.labels.max_pending:
            return
        if pending and now - pending[-1][0] < self._snapshot_every:
            return
        # The scorecard score taken with the features: the blend judges both parts on it.
        card = self._card_score(self._results(state, f))[0]
        pending.append([now, 0.0, *model_vector(f), round_to(card, 100.0)])

    def _record_score(self, state: AccountState, now: float, score: float) -> float:
        """Keep the daily max score for 8 days; return the drop from the 7-day max."""
        day = int(now // DAY)
        scores = state.scores
        if not scores:
            state.score_day = day
            scores.append(score)
            return 0.0
        shift = day - state.score_day
        if shift > 0:
            scores[:0] = [score] + [0.0] * (min(shift, SCORE_DAYS) - 1)
            del scores[SCORE_DAYS:]
            state.score_day = day
            index = 0
        else:
            index = -shift
        if index >= len(scores):
            return 0.0
        window = scores[index : index + 7]
        peak = max(window)
        if score > scores[index]:
            scores[index] = score
        return max(0.0, peak - score)

    def _score(self, state: AccountState, now: float, f: dict[str, float]) -> Scored:
        """The health numbers; drivers and the ``HealthResult`` are built only on demand."""
        return self._combine(now, f, self._results(state, f))

    def _results(
        self, state: AccountState, f: dict[str, float]
    ) -> tuple[comp.ComponentResult, ...]:
        sc = self.scorecard
        return (
            comp.usage(f, sc),
            comp.engagement(f, sc, state.seats),
            comp.support(f, sc),
            comp.billing(f, sc),
            comp.sentiment(f, sc),
            comp.lifecycle(f, sc),
        )

    def _card_score(self, results: tuple[comp.ComponentResult, ...]) -> tuple[float, float]:
        """Weighted mean of the components that have data (neutral when none has), and the
        total weight of those components."""
        total = 0.0
        for weight, result in zip(self._weight_list, results, strict=True):
            if result is not None:
                total += weight
        if total <= 0:
            return self.scorecard.neutral_score, total
        scorecard_score = 0.0
        for weight, result in zip(self._weight_list, results, strict=True):
            if result is not None:
                scorecard_score += weight / total * result[0]
        return scorecard_score, total

    def _combine(
        self, now: float, f: dict[str, float], results: tuple[comp.ComponentResult, ...]
    ) -> Scored:
        """The scorecard score blended with the model by the weight it earned (see blend.py)."""
        sc = self.scorecard
        scorecard_score, total = self._card_score(results)
        p_card = 1.0 / (1.0 + math.exp((scorecard_score - 50.0) / 10.0))
        model = self.model
        model_p: float | None = None
        trust = model.trusted_weight() if model is not None else 0.0
        final = scorecard_score
        churn = p_card
        version = sc.version
        model_auc: float | None = None
        if model is not None and trust > 0:
            if trust >= 0.5:
                model_auc = model.selector.auc_model
            model_p = model.predict_proba_one(vector_features(model_vector(f)))
            model_score = 100.0 * (1.0 - model_p)
            final = (1.0 - trust) * scorecard_score + trust * model_score
            churn = (1.0 - trust) * p_card + trust * model_p
            version = f"{sc.version}+{model.version}"
        final = round_to(min(100.0, max(0.0, final)), 100.0)
        bands = sc.bands
        band = (
            "red" if final < bands.red_below else "green" if final >= bands.green_from else "yellow"
        )
        return Scored(
            self,
            final,
            band,
            round_to(min(1.0, max(0.0, churn)), 10000.0),
            results,
            total,
            scorecard_score,
            trust,
            model_p,
            version,
            now,
            f,
            model_auc,
        )


class Scored:
    """One full score of an account: the numbers rules and publishing need right away,
    and, built only when someone reads it, the ``HealthResult`` with drivers.

    Why lazy: most re-scores publish nothing and fire nothing, and sorting the
    signals, rounding components and formatting sentences was a fifth of the
    cost of a re-score.
    """

    __slots__ = (
        "_engine",
        "_health",
        "as_of",
        "band",
        "churn",
        "features",
        "model_auc",
        "model_p",
        "results",
        "score",
        "scorecard_score",
        "total",
        "trust",
        "version",
    )

    def __init__(
        self,
        engine: ScoringEngine,
        score: float,
        band: str,
        churn: float,
        results: tuple[comp.ComponentResult, ...],
        total: float,
        scorecard_score: float,
        trust: float,
        model_p: float | None,
        version: str,
        as_of: float,
        features: dict[str, float],
        model_auc: float | None = None,
    ) -> None:
        """``model_auc``: the model's rolling AUC on recent outcomes, set when it weighs most."""
        self._engine = engine
        self._health: HealthResult | None = None
        self.score = score
        self.band = band
        self.churn = churn
        self.results = results
        self.total = total
        self.scorecard_score = scorecard_score
        self.trust = trust
        self.model_p = model_p
        self.version = version
        self.as_of = as_of
        self.features = features
        self.model_auc = model_auc

    def health(self) -> HealthResult:
        """The full ``HealthResult`` (components, top drivers with sentences), built once."""
        if self._health is not None:
            return self._health
        engine = self._engine
        sc = engine.scorecard
        neutral = sc.neutral_score
        total = self.total
        components: dict[str, float] = {}
        signals: list[tuple[float, str, str, comp.Text]] = []
        for name, weight, result in zip(COMPONENTS, engine._weight_list, self.results, strict=True):
            if result is None:
                components[name] = neutral
                continue
            value, parts = result
            components[name] = round_to(value, 100.0)
            share = weight / total if total > 0 else 0.0
            for feature, delta, sentence in parts:
                signals.append((share * delta, feature, name, sentence))
        model_p = self.model_p
        model_signal: tuple[float, str, str, comp.Text] | None = None
        if model_p is not None:
            model_score = 100.0 * (1.0 - model_p)
            sentence = f"churn model sees {model_p:.0%} churn risk"
            auc = self.model_auc
            if auc is not None:
                sentence += (
                    f"; right {auc:.0%} of the time on recent outcomes, it weighs most"
                    f" ({self.trust:.0%})"
                )
            model_signal = (
                self.trust * (model_score - self.scorecard_score),
                "churn_model",
                "model",
                sentence,
            )
            signals.append(model_signal)
        signals.sort(key=lambda s: (-abs(s[0]), s[1], s[2]))
        kept = signals[: sc.max_drivers]
        if self.model_auc is not None and model_signal is not None and model_signal not in kept:
            kept[-1] = model_signal  # the part that weighs most is always named
        drivers = [
            DriverItem(feature, component, round_to(points, 100.0), comp.text_of(sentence))
            for points, feature, component, sentence in kept
        ]
        self._health = HealthResult(
            score=self.score,
            band=self.band,
            churn_probability=self.churn,
            components=components,
            drivers=drivers,
            scorecard_score=round_to(self.scorecard_score, 100.0),
            model_version=self.version,
            as_of=self.as_of,
            features=self.features,
        )
        return self._health


def _newer(ts: float, value: float, old_ts: float, old: float | None) -> bool:
    return old is None or ts > old_ts or (ts == old_ts and value < old)


def _parse_date(value: str) -> float | None:
    """renewal_date: RFC 3339 or YYYY-MM-DD (midnight UTC); None when unparseable."""
    try:
        if len(value) == 10:
            return parse_timestamp(value + "T00:00:00Z")
        return parse_timestamp(value)
    except ValueError:
        return None
