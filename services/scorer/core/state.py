"""Bounded per-account state: everything the features need, nothing more.

Every collection has a hard cap so a busy account stays well under 2 KB
serialized (a test checks a worst case). Timestamps are event time in epoch
seconds; days are ``int(ts // 86400)``. ``to_bytes`` is a flat orjson list,
which is both compact and about as fast as Python serialization gets.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from services.scorer.core.events import EVENT_TYPES

DAY = 86400.0
USAGE_DAYS = 56
TICKET_DAYS = 28
SCORE_DAYS = 8
MAX_USERS = 16
MAX_FEATURES = 16
MAX_TICKETS = 8
MAX_FAILURES = 6
SEEN_RING = 16
#: A dedupe ring entry carries its event type in the low bits (``id << TYPE_BITS |
#: index``) so the dedupe floor can be kept per type, i.e. per topic.
TYPE_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}
TYPE_BITS = 3
TYPE_MASK = (1 << TYPE_BITS) - 1
#: The id that set a type's dedupe floor is kept as 24 bits of its hash: it is only
#: compared with events of that type in that very second (a false match ~6e-8 each).
FLOOR_ID_MASK = (1 << 24) - 1
_FORMAT = 1
#: Where the serialized list's last eight fields start (``seen_floors`` ... ``pending``);
#: ``published_band`` is the sixth of them. Shared by ``from_bytes`` and
#: ``published_band_of`` so the layout is written down once.
_TAIL_AT = 36
_PUBLISHED_BAND_AT = _TAIL_AT + 5


class AccountState:
    """Mutable, bounded state of one account. Only the engine mutates it."""

    __slots__ = (
        "account_id",
        "active_days_total",
        "alerts",
        "cache_model",
        "cache_until",
        "canceled_ts",
        "created_ts",
        "csat",
        "csat_ts",
        "csm",
        "downgrade_pct",
        "downgrade_ts",
        "events",
        "failures",
        "features_used",
        "first_ts",
        "first_value_ts",
        "last_score",
        "last_usage_ts",
        "mrr",
        "mrr_prev",
        "mrr_ts",
        "nps",
        "nps_ts",
        "past_due_since",
        "pending",
        "plan",
        "published_band",
        "published_score",
        "renewal_ts",
        "renewed_ts",
        "score_day",
        "scored",
        "scored_at",
        "scores",
        "seats",
        "seen",
        "seen_floor_keys",
        "seen_floors",
        "seen_ts",
        "ticket_day",
        "ticket_ring",
        "tickets",
        "tickets_total",
        "usage_day",
        "usage_ring",
        "users",
        "watermark",
    )

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.events = 0
        self.watermark = 0.0
        self.first_ts = 0.0
        self.created_ts: float | None = None
        # usage
        self.usage_day = 0
        self.usage_ring: list[int] = [0] * USAGE_DAYS  # [0] = usage_day, [i] = i days earlier
        self.last_usage_ts: float | None = None
        self.first_value_ts: float | None = None
        self.active_days_total = 0
        self.users: dict[int, int] = {}  # crc32(user_id) -> last day seen
        self.features_used: dict[int, int] = {}  # crc32(feature) -> last day used
        self.seats: int | None = None
        # support
        self.tickets: dict[int, list[float]] = {}  # crc32(ticket id) -> [priority, opened_ts]
        self.ticket_day = 0
        self.ticket_ring: list[int] = [0] * TICKET_DAYS
        self.tickets_total = 0
        # sentiment
        self.csat: float | None = None
        self.csat_ts = 0.0
        self.nps: float | None = None
        self.nps_ts = 0.0
        # billing and lifecycle
        self.mrr: float | None = None
        self.mrr_prev: float | None = None
        self.mrr_ts = 0.0
        self.downgrade_ts: float | None = None
        self.downgrade_pct = 0.0
        self.plan: str | None = None
        self.failures: list[float] = []
        self.past_due_since: float | None = None
        self.canceled_ts: float | None = None
        self.renewed_ts: float | None = None
        self.renewal_ts: float | None = None
        self.csm: str | None = None
        # dedupe: ring of 40-bit id hashes (tagged with the event type) and their event times
        self.seen: list[int] = []
        self.seen_ts: list[int] = []  # floor(event time): whole seconds are all dedupe needs
        # per event type (topic): newest floor(time) of an id evicted from the ring, -1 if none.
        # Per topic because Kafka orders an account's events within a topic, not across them.
        self.seen_floors: list[int] = [-1] * len(EVENT_TYPES)
        self.seen_floor_keys: list[int] = [-1] * len(EVENT_TYPES)  # the id that set each floor
        # scores and alerts
        self.score_day = 0
        self.scores: list[float] = []  # daily max score, [0] = score_day
        self.last_score: float | None = None
        self.published_score: float | None = None
        self.published_band: str | None = None
        self.alerts: dict[str, list[float]] = {}  # reason -> [active, episode, last_fired_ts]
        # label snapshots: [ts, saw_usage_after, *feature vector]
        self.pending: list[list[float]] = []
        # Engine cache, never serialized: the last full score stays exact until cache_until
        # for a same-day usage event (see ScoringEngine._fast_path_ok).
        self.scored_at = -1.0
        self.scored: Any = None  # the engine's last Scored (engagement-only re-score)
        self.cache_until = -1.0
        self.cache_model = -1

    def to_bytes(self) -> bytes:
        """Compact flat JSON list (field order is the format; ``_FORMAT`` versions it)."""
        wm = math.ceil(self.watermark)
        return orjson.dumps(
            [
                _FORMAT,
                self.account_id,
                self.events,
                wm,
                _opt_num(self.first_ts),
                _opt_num(self.created_ts),
                self.usage_day,
                _trim(self.usage_ring),
                _opt_num(self.last_usage_ts),
                _opt_num(self.first_value_ts),
                self.active_days_total,
                _relative(self.users, self.usage_day),
                _relative(self.features_used, self.usage_day),
                self.seats,
                [[k, int(v[0]), _num(v[1])] for k, v in self.tickets.items()],
                self.ticket_day,
                _trim(self.ticket_ring),
                self.tickets_total,
                self.csat,
                _opt_num(self.csat_ts),
                self.nps,
                _opt_num(self.nps_ts),
                self.mrr,
                self.mrr_prev,
                _opt_num(self.mrr_ts),
                _opt_num(self.downgrade_ts),
                self.downgrade_pct,
                self.plan,
                [_num(t) for t in self.failures],
                _opt_num(self.past_due_since),
                _opt_num(self.canceled_ts),
                _opt_num(self.renewed_ts),
                _opt_num(self.renewal_ts),
                self.csm,
                self.seen,
                [wm - t for t in self.seen_ts],
                [
                    -1 if f < 0 else [wm - f, k]
                    for f, k in zip(self.seen_floors, self.seen_floor_keys, strict=True)
                ],
                self.score_day,
                self.scores,
                self.last_score,
                self.published_score,
                self.published_band,
                {k: [int(v[0]), int(v[1]), _num(v[2])] for k, v in self.alerts.items()},
                [[_num(x) for x in snap] for snap in self.pending],
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview | str) -> AccountState:
        data: list[Any] = orjson.loads(raw)
        if not data or data[0] != _FORMAT:
            raise ValueError(f"unknown account state format {data[:1]!r}")
        s = cls(data[1])
        (
            s.events,
            s.watermark,
            s.first_ts,
            s.created_ts,
            s.usage_day,
        ) = data[2:7]
        s.usage_ring = _untrim(data[7], USAGE_DAYS)
        (
            s.last_usage_ts,
            s.first_value_ts,
            s.active_days_total,
        ) = data[8:11]
        users, feats = data[11], data[12]
        s.users = _absolute(users, s.usage_day)
        s.features_used = _absolute(feats, s.usage_day)
        s.seats = data[13]
        s.tickets = {row[0]: [float(row[1]), float(row[2])] for row in data[14]}
        s.ticket_day = data[15]
        s.ticket_ring = _untrim(data[16], TICKET_DAYS)
        s.failures = [float(t) for t in data[28]]
        (
            s.tickets_total,
            s.csat,
            s.csat_ts,
            s.nps,
            s.nps_ts,
            s.mrr,
            s.mrr_prev,
            s.mrr_ts,
            s.downgrade_ts,
            s.downgrade_pct,
            s.plan,
            _,
            s.past_due_since,
            s.canceled_ts,
            s.renewed_ts,
            s.renewal_ts,
            s.csm,
            s.seen,
        ) = data[17:35]
        wm = math.ceil(s.watermark)
        s.seen_ts = [wm - d for d in data[35]]
        for name in _TIMES:  # written as ints when integral; kept as floats in memory
            value = getattr(s, name)
            if value is not None:
                setattr(s, name, float(value))
        (
            floors,
            s.score_day,
            s.scores,
            s.last_score,
            s.published_score,
            s.published_band,
            alerts,
            pending,
        ) = data[_TAIL_AT : _TAIL_AT + 8]
        s.seen_floors, s.seen_floor_keys = _floors(floors, wm)
        s.alerts = {k: [float(x) for x in v] for k, v in alerts.items()}
        s.pending = [[float(x) for x in snap] for snap in pending]
        return s

    @staticmethod
    def published_band_of(raw: bytes | bytearray | memoryview | str) -> str | None:
        """The band last published for the account, read without building the state.

        Why: a restarted worker recounts the bands of every recovered account
        (the per-band gauge), which a full ``from_bytes`` makes ~3x dearer.
        """
        data = orjson.loads(raw)
        if not data or data[0] != _FORMAT:
            raise ValueError(f"unknown account state format {data[:1]!r}")
        band = data[_PUBLISHED_BAND_AT]
        return band if isinstance(band, str) else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"AccountState({self.account_id!r}, events={self.events}, watermark={self.watermark})"
        )


#: Optional event times that ``to_bytes`` shortens with ``_opt_num``.
_TIMES = (
    "first_ts",
    "created_ts",
    "last_usage_ts",
    "first_value_ts",
    "csat_ts",
    "nps_ts",
    "mrr_ts",
    "downgrade_ts",
    "past_due_since",
    "canceled_ts",
    "renewed_ts",
    "renewal_ts",
)


def _opt_num(value: float | None) -> float | int | None:
    return None if value is None else _num(value)


def _num(value: float) -> float | int:
    """Integral floats serialize as ints: half the characters for timestamps and counts."""
    return int(value) if value.is_integer() else value


def _relative(table: dict[int, int], head: int) -> list[int]:
    """{key: day} -> flat [key, days before head, ...] (small numbers, short JSON)."""
    return [x for key, day in table.items() for x in (key, head - day)]


def _absolute(flat: list[int], head: int) -> dict[int, int]:
    return {flat[i]: head - flat[i + 1] for i in range(0, len(flat), 2)}


def _floors(raw: int | list[Any], wm: int) -> tuple[list[int], list[int]]:
    """Per-type floors and their ids from the serialized form (``[wm - floor, id]`` or -1).

    A bare int is the layout before floors were per type (one absolute floor for
    all types): read as that floor for every type, so recovered states stay safe.
    """
    none = len(EVENT_TYPES)
    if isinstance(raw, int):
        return [raw] * none, [-1] * none
    floors = [-1 if f == -1 else wm - f[0] for f in raw]
    keys = [-1 if f == -1 else f[1] for f in raw]
    return floors, keys


def _trim(ring: list[int]) -> list[int]:
    """Drop trailing zeros: most rings are sparse at the old end."""
    end = len(ring)
    while end and not ring[end - 1]:
        end -= 1
    return ring[:end]


def _untrim(values: list[int], size: int) -> list[int]:
    return values + [0] * (size - len(values))
