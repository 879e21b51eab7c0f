"""Replay canonical events through the scoring core in event time and freeze scores at a cutoff.

This is the production scoring core driven in-process: the same ``ScoringEngine``
the Faust scorer runs, with online learning from the training examples the engine
emits (each example is emitted at the event time its label became known, so the
model never sees a label before its time).

No-leakage by construction: the snapshot at the cutoff is taken *before* the first
event later than the cutoff is applied, after an event-time tick at the cutoff.
Everything after the cutoff is only used to label outcomes (and for alert lead
times on explicit cancellations).

Input must be sorted by ``occurred_at`` (``healthstream evaluate --sort`` sorts
an unsorted file externally in chunks first). Memory is bounded by the number of
accounts, not events: per account we keep the core's bounded state plus a few
counters and at most ``MAX_ALERTS_KEPT`` alert times.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.scorer.core import (
    AccountState,
    Alert,
    ChurnModel,
    DriverItem,
    InvalidEvent,
    Scorecard,
    ScoringEngine,
    parse_event,
)
from services.scorer.core.features import model_vector, vector_features

DAY = 86400.0
#: Events that state an outcome rather than activity: they never count as "still active".
CHURN_NAMES = frozenset({"subscription.canceled"})
MAX_ALERTS_KEPT = 64
#: "Did the *score* warn early?": each cancellation's health this many days before it.
EARLY_DAYS = 30.0
#: Points kept of the blend weight over time (thinned by half whenever full).
MAX_BLEND_POINTS = 512


class UnsortedInput(ValueError):
    """The file is not in event-time order (beyond the allowed lateness)."""


@dataclass(slots=True)
class AccountTrack:
    """What the evaluation itself needs per account (beyond the core's state)."""

    first_ts: float
    last_activity_ts: float = -math.inf  # last non-outcome event at or before the cutoff
    activity_before_cutoff: int = 0
    active_after_cutoff: bool = False
    gone_at_cutoff: bool = False  # cancelled at or before the cutoff and not active since
    canceled_after_cutoff_ts: float | None = None  # first cancellation in (cutoff, end]
    alert_times: deque[tuple[float, str]] = field(
        default_factory=lambda: deque(maxlen=MAX_ALERTS_KEPT)
    )
    canceled: bool = False  # cancelled and not active since (any time)
    # (periodic tick time, health then): just enough ticks to look EARLY_DAYS back
    scores: deque[tuple[float, float]] | None = None


@dataclass(slots=True)
class EarlyRank:
    """Where a cancelling account's health stood ``EARLY_DAYS`` before it cancelled.

    ``riskiest_share``: the share of live accounts whose health was at or below it on
    that day (ties count half): 0.05 = among the riskiest 5%.
    """

    account_id: str
    canceled_ts: float
    scored_ts: float
    health: float
    riskiest_share: float


@dataclass(slots=True)
class Snapshot:
    """One account's scores at the cutoff."""

    account_id: str
    health: float
    churn_probability: float
    scorecard: float
    band: str
    recency_days: float
    frequency: int
    drivers: tuple[DriverItem, ...] = ()  # the top reasons behind the score at the cutoff
    model_probability: float | None = None  # the churn model alone, whatever its weight


@dataclass(slots=True)
class BlendPoint:
    """The blend as re-chosen at event time ``ts`` (after a refit on the labels known then)."""

    ts: float
    labels: int
    weight: float
    auc_scorecard: float | None
    auc_model: float | None
    auc_health: float | None


@dataclass
class RunResult:
    cutoff: float
    end: float
    snapshots: dict[str, Snapshot]
    tracks: dict[str, AccountTrack]
    cancellations: list[tuple[str, float]]
    early_ranks: list[EarlyRank] = field(default_factory=list)
    blend_history: list[BlendPoint] = field(default_factory=list)
    events: int = 0
    ignored_after_end: int = 0
    invalid: int = 0
    duplicates: int = 0
    late: int = 0
    alerts: int = 0
    examples: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    first_ts: float | None = None
    last_ts: float | None = None


class EvaluationRunner:
    """Drive a :class:`ScoringEngine` over time-ordered raw events."""

    def __init__(
        self,
        scorecard: Scorecard,
        cutoff: float,
        end: float | None = None,
        *,
        tick_hours: float = 24.0,  # 0 = label ticks only (no periodic timers)
        learn: bool = True,
        strict: bool = True,
        on_alert: Callable[[Alert], Any] | None = None,
    ) -> None:
        """``on_alert``: called with every alert the core raises (e.g. to count them all,
        where the per-account track keeps only the latest ``MAX_ALERTS_KEPT``)."""
        self.scorecard = scorecard
        self.on_alert = on_alert
        self.model = ChurnModel(scorecard.model) if learn else None
        self.engine = ScoringEngine(scorecard, self.model)
        self.cutoff = cutoff
        self.end = end
        self.tick = tick_hours * 3600.0
        self.strict = strict
        #: How far back in time a line may go and the file still count as sorted. Not
        #: the scorecard's lateness (weeks: what the live state can take): a replay
        #: of a file must see events in order, so this is a day at most.
        self.lateness = min(scorecard.lateness_hours, 24.0) * 3600.0
        self.states: dict[str, AccountState] = {}
        self.tracks: dict[str, AccountTrack] = {}
        self.cancellations: list[tuple[str, float]] = []
        self.snapshots: dict[str, Snapshot] | None = None
        self.next_tick: float | None = None
        self.horizon = scorecard.labels.horizon_days * DAY
        self.due: list[tuple[float, str]] = []  # heap of (label due time, account)
        self.next_due: dict[str, float] = {}
        self.counts = {
            "events": 0,
            "invalid": 0,
            "duplicates": 0,
            "late": 0,
            "alerts": 0,
            "examples": 0,
            "ignored_after_end": 0,
        }
        self.max_ts = -math.inf
        self.first_ts: float | None = None
        self.past_end = False
        # Score histograms (integer bins 0..100) of live accounts at recent periodic ticks,
        # and each account's recent tick scores: memory grows with accounts, never events.
        keep = math.ceil(EARLY_DAYS * DAY / self.tick) + 2 if self.tick > 0 else 0
        self.keep_ticks = keep
        self.histograms: deque[tuple[float, list[int]]] = deque(maxlen=max(keep, 1))
        self.early_ranks: list[EarlyRank] = []
        self.blend_history: list[BlendPoint] = []
        self.model_at_cutoff: dict[str, Any] = {}
        self._blend_refits = 0
        self._blend_stride = 1

    # -- outcomes ---------------------------------------------------------------------
    def _absorb(self, account_id: str, outcome: Any) -> None:
        self.states[account_id] = outcome.state
        if outcome.examples and self.model is not None:
            for example in outcome.examples:
                self.model.learn_one(example.features, example.label, example.scorecard)
            self.counts["examples"] += len(outcome.examples)
            self._record_blend(outcome.examples[-1].ts_label)
        if outcome.alerts:
            track = self.tracks[account_id]
            for alert in outcome.alerts:
                track.alert_times.append((float(alert.occurred_at), str(alert.reason)))
                if self.on_alert is not None:
                    self.on_alert(alert)
            self.counts["alerts"] += len(outcome.alerts)

    def _record_blend(self, ts: float) -> None:
        """Remember the blend weight each time it is re-chosen (for the report's plot)."""
        assert self.model is not None
        selector = self.model.selector
        if selector.refits == self._blend_refits:
            return
        self._blend_refits = selector.refits
        if selector.refits % self._blend_stride:
            return
        self.blend_history.append(
            BlendPoint(
                ts,
                self.model.labels_seen,
                selector.weight,
                selector.auc_scorecard,
                selector.auc_model,
                selector.auc_health,
            )
        )
        if len(self.blend_history) >= MAX_BLEND_POINTS:
            self.blend_history = self.blend_history[::2]
            self._blend_stride *= 2

    def _schedule(self, account_id: str, state: AccountState) -> None:
        """Remember when this account's earliest pending label becomes known."""
        pending = state.pending
        if not pending:
            self.next_due.pop(account_id, None)
            return
        due = min(snap[0] for snap in pending) + self.horizon
        if self.next_due.get(account_id) != due:
            self.next_due[account_id] = due
            heapq.heappush(self.due, (due, account_id))

    def _tick_one(self, account_id: str, now: float) -> None:
        state = self.states[account_id]
        self._absorb(account_id, self.engine.tick(state, now))
        self._schedule(account_id, self.states[account_id])

    def _tick_all(self, now: float) -> None:
        for account_id in list(self.states):
            self._tick_one(account_id, now)

    def _record_scores(self, now: float) -> None:
        """After a periodic tick: remember every live account's health (for early ranks)."""
        histogram = [0] * 101
        for account_id, state in self.states.items():
            track = self.tracks[account_id]
            score = state.last_score
            if score is None or track.canceled:
                continue
            histogram[min(100, max(0, int(score)))] += 1
            if track.scores is None:
                track.scores = deque(maxlen=self.keep_ticks)
            track.scores.append((now, float(score)))
        self.histograms.append((now, histogram))

    def _early_rank(self, account_id: str, canceled_ts: float) -> None:
        """Rank this account's health ``EARLY_DAYS`` before ``canceled_ts`` among all live
        accounts' health at the same periodic tick (the latest tick at or before then)."""
        track = self.tracks[account_id]
        if not track.scores:
            return
        when = canceled_ts - EARLY_DAYS * DAY
        past = [(t, score) for t, score in track.scores if t <= when]
        if not past:
            return
        t, score = past[-1]
        histogram = next((h for ht, h in self.histograms if ht == t), None)
        if histogram is None:
            return
        total = sum(histogram)
        b = min(100, max(0, int(score)))
        share = (sum(histogram[:b]) + 0.5 * histogram[b]) / total if total else math.nan
        self.early_ranks.append(EarlyRank(account_id, canceled_ts, t, score, share))

    def _advance(self, ts: float) -> None:
        """Run every event-time timer due at or before ``ts``, in time order.

        Two kinds: a *label tick* for one account exactly when one of its pending
        label snapshots reaches its horizon (so the model learns each label at
        the moment it became known, and churned accounts that never come back
        still produce their churn label), and optional *periodic ticks* of every
        account (``tick_hours``) that drive time-based alerts such as inactivity.
        Before the first timer after the cutoff, the cutoff snapshot is taken.
        """
        due = self.due
        while True:
            t_due = due[0][0] if due else math.inf
            t_tick = self.next_tick if self.next_tick is not None else math.inf
            t = min(t_due, t_tick)
            if t > ts:
                return
            if self.snapshots is None and t > self.cutoff:
                self._take_snapshot()
            if t_due <= t_tick:
                _, account_id = heapq.heappop(due)
                if self.next_due.get(account_id) == t_due:
                    del self.next_due[account_id]
                    self._tick_one(account_id, t_due)
            else:
                self._tick_all(t_tick)
                self._record_scores(t_tick)
                self.next_tick = t_tick + self.tick

    def _take_snapshot(self) -> None:
        """Tick everyone at the cutoff, then score everyone at the cutoff."""
        cutoff = self.cutoff
        self._tick_all(cutoff)
        snapshots: dict[str, Snapshot] = {}
        score = self.engine.score
        for account_id, state in self.states.items():
            track = self.tracks[account_id]
            if track.gone_at_cutoff or track.activity_before_cutoff == 0:
                continue  # already gone, or never active: not a prediction target
            result = score(state, cutoff)
            snapshots[account_id] = Snapshot(
                account_id=account_id,
                health=float(result.score),
                churn_probability=float(result.churn_probability),
                scorecard=float(result.scorecard_score),
                band=str(result.band),
                recency_days=(cutoff - track.last_activity_ts) / DAY,
                frequency=track.activity_before_cutoff,
                drivers=tuple(result.drivers),
                model_probability=(
                    None
                    if self.model is None
                    else self.model.predict_proba_one(
                        vector_features(model_vector(result.features))
                    )
                ),
            )
        self.snapshots = snapshots
        if self.model is not None:  # what scored the snapshots (it keeps learning afterwards)
            self.model_at_cutoff = {
                "version": self.model.version,
                "labels_seen": self.model.labels_seen,
                "positives": self.model.positives,
                "rolling_auc": self.model.rolling_auc,
                "trusted_weight": self.model.trusted_weight(),
                "blend": self.model.blend_reason(),
            }

    # -- main loop ------------------------------------------------------------------
    def feed(self, number: int, raw: bytes | str) -> None:
        """Apply one raw line. Raises :class:`InvalidEvent` (strict) or counts it."""
        try:
            event = parse_event(raw)
        except InvalidEvent as exc:
            if self.strict:
                raise InvalidEvent(exc.field, f"line {number}: {exc}") from None
            self.counts["invalid"] += 1
            return
        ts = event.ts
        if self.end is not None and ts > self.end:
            self.counts["ignored_after_end"] += 1
            if ts > self.end + self.lateness:
                self.past_end = True  # sorted input: nothing later can be in the window
            return
        if ts < self.max_ts - self.lateness:
            raise UnsortedInput(
                f"line {number}: occurred_at goes back in time by "
                f"{(self.max_ts - ts) / 3600:.1f} h (more than the allowed lateness); "
                "the file must be sorted by occurred_at: rerun with --sort"
            )
        if self.first_ts is None:
            self.first_ts = ts
        if ts > self.max_ts:
            self.max_ts = ts
        if self.next_tick is None and self.tick > 0:
            self.next_tick = math.floor(ts / self.tick) * self.tick + self.tick
        self._advance(ts)
        if self.snapshots is None and ts > self.cutoff:
            self._take_snapshot()
        account_id = event.account_id
        track = self.tracks.get(account_id)
        if track is None:
            track = self.tracks[account_id] = AccountTrack(first_ts=ts)
        outcome = self.engine.apply(self.states.get(account_id), event)
        self.counts["events"] += 1
        if outcome.duplicate:
            self.counts["duplicates"] += 1
            self.states[account_id] = outcome.state
            return
        if outcome.late:
            self.counts["late"] += 1
        self._absorb(account_id, outcome)
        self._schedule(account_id, outcome.state)
        if event.name in CHURN_NAMES:
            if not track.canceled:
                self._early_rank(account_id, ts)
                track.canceled = True
            if ts <= self.cutoff:
                track.gone_at_cutoff = True
            elif track.canceled_after_cutoff_ts is None:
                track.canceled_after_cutoff_ts = ts
            self.cancellations.append((account_id, ts))
        elif ts <= self.cutoff:
            track.canceled = False
            track.activity_before_cutoff += 1
            track.gone_at_cutoff = False  # active again after a cancellation: won back
            if ts > track.last_activity_ts:
                track.last_activity_ts = ts
        else:
            track.canceled = False
            track.active_after_cutoff = True

    def run(
        self, lines: Iterable[tuple[int, bytes]], progress: Callable[[int], Any] | None = None
    ) -> RunResult:
        """Feed every line; with an ``end``, stop reading at the first event past
        ``end`` + the allowed lateness, so the data after the outcome window is never read
        (which is what lets a validation run prove it did not look at the test window)."""
        for number, raw in lines:
            self.feed(number, raw)
            if progress is not None:
                progress(1)
            if self.past_end:
                break
        return self.finish()

    def finish(self) -> RunResult:
        end = self.end if self.end is not None else self.max_ts
        if self.snapshots is None:
            if self.max_ts < self.cutoff:
                raise ValueError("no event after the cutoff: nothing to label churn with")
            self._take_snapshot()
        assert self.snapshots is not None
        return RunResult(
            cutoff=self.cutoff,
            end=end,
            snapshots=self.snapshots,
            tracks=self.tracks,
            cancellations=self.cancellations,
            early_ranks=self.early_ranks,
            blend_history=self.blend_history,
            events=self.counts["events"],
            ignored_after_end=self.counts["ignored_after_end"],
            invalid=self.counts["invalid"],
            duplicates=self.counts["duplicates"],
            late=self.counts["late"],
            alerts=self.counts["alerts"],
            examples=self.counts["examples"],
            model=self.model_at_cutoff,
            first_ts=self.first_ts,
            last_ts=self.max_ts if self.first_ts is not None else None,
        )


def churn_label(track: AccountTrack, cutoff: float, end: float) -> int:
    """1 = churned: no activity in (cutoff, end], or an explicit cancellation in it.

    Outcome events (``subscription.canceled``) are not activity; an explicit
    cancellation after the cutoff is churn even if the account was still active
    on its way out.
    """
    if track.canceled_after_cutoff_ts is not None and track.canceled_after_cutoff_ts <= end:
        return 1
    return 0 if track.active_after_cutoff else 1
