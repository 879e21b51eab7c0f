"""The evaluation's label rule and its no-leakage guarantee, on the real scoring core."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest

from evaluation.cli import parse_moment
from evaluation.runner import AccountTrack, EvaluationRunner, UnsortedInput, churn_label
from services.scorer.core import load_scorecard
from simulator import generate

CUTOFF = parse_moment("2024-03-31")
END = parse_moment("2024-05-31")


def _event(n: int, account: str, day: str, name: str = "login", **props: object) -> bytes:
    etype = "billing" if name.startswith(("subscription", "payment", "invoice")) else "usage"
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "account_id": account,
            "type": etype,
            "name": name,
            "occurred_at": f"{day}T10:00:00Z",
            "properties": props,
        }
    )


def _run(lines: list[bytes], end: float | None = END) -> dict[str, int]:
    runner = EvaluationRunner(load_scorecard(None), CUTOFF, end)
    result = runner.run(enumerate(lines, start=1))
    return {a: churn_label(result.tracks[a], CUTOFF, result.end) for a in result.snapshots}


def test_label_rule_on_a_hand_made_log() -> None:
    lines = [
        _event(1, "stays", "2024-03-01"),
        _event(2, "silent", "2024-03-02"),
        _event(3, "cancels", "2024-03-03"),
        _event(4, "gone", "2024-03-04"),
        _event(5, "gone", "2024-03-05", "subscription.canceled"),
        _event(6, "back-late", "2024-03-06"),
        _event(7, "stays", "2024-04-10"),
        _event(8, "cancels", "2024-04-11"),
        _event(9, "newcomer", "2024-04-12"),
        _event(10, "cancels", "2024-04-20", "subscription.canceled"),
        _event(11, "stays", "2024-05-30"),
        _event(12, "back-late", "2024-06-15"),  # after --end: ignored
    ]
    labels = _run(lines)
    # "gone" cancelled before the cutoff and "newcomer" started after it: not scored.
    assert labels == {"stays": 0, "silent": 1, "cancels": 1, "back-late": 1}
    # Without --end, the last event ends the outcome window: back-late came back.
    assert _run(lines, end=None)["back-late"] == 0


def test_churn_label_function() -> None:
    track = AccountTrack(first_ts=0.0, activity_before_cutoff=3)
    assert churn_label(track, CUTOFF, END) == 1
    track.active_after_cutoff = True
    assert churn_label(track, CUTOFF, END) == 0
    track.canceled_after_cutoff_ts = END - 10
    assert churn_label(track, CUTOFF, END) == 1
    track.canceled_after_cutoff_ts = END + 10  # after the window: not this window's churn
    assert churn_label(track, CUTOFF, END) == 0


def _snapshot(lines: list[bytes]) -> dict[str, tuple[float, float, float]]:
    runner = EvaluationRunner(load_scorecard(None), CUTOFF, None)
    result = runner.run(enumerate(lines, start=1))
    return {a: (s.health, s.churn_probability, s.scorecard) for a, s in result.snapshots.items()}


def test_events_after_the_cutoff_cannot_change_scores_at_the_cutoff() -> None:
    def stamp(raw: dict) -> float:
        return parse_moment(raw["occurred_at"])

    base = list(itertools.islice(generate(12, 110, 9), 40_000))
    before = [e for e in base if stamp(e) <= CUTOFF]
    after = [e for e in base if stamp(e) > CUTOFF]
    assert before and after
    # A very different future: every account cancels or fails to pay right after the cutoff.
    hostile = []
    for n, account in enumerate(sorted({e["account_id"] for e in before})):
        day = "2024-04-02" if n % 2 else "2024-04-03"
        name = "subscription.canceled" if n % 2 else "payment.failed"
        props = {"amount": 10.0} if name == "payment.failed" else {}
        hostile.append(orjson.loads(_event(10_000 + n, account, day, name, **props)))
    original = _snapshot([orjson.dumps(e) for e in base])
    changed = _snapshot([orjson.dumps(e) for e in before + hostile])
    assert original.keys() == changed.keys() and original
    assert original == changed


def test_unsorted_input_is_refused_with_a_hint() -> None:
    lines = [_event(1, "a", "2024-03-10"), _event(2, "a", "2024-03-01")]
    with pytest.raises(UnsortedInput, match="--sort"):
        _run(lines)


def test_invalid_line_names_the_line_and_field(tmp_path: Path) -> None:
    from services.scorer.core import InvalidEvent

    lines = [_event(1, "a", "2024-03-10"), b'{"event_id": "x", "account_id": "a"}']
    with pytest.raises(InvalidEvent, match="line 2"):
        _run(lines)


def test_reading_stops_after_the_outcome_window() -> None:
    """With --end, nothing past end + lateness is read: validation runs never see the test."""
    lines = [
        _event(1, "a", "2024-03-10"),
        _event(2, "b", "2024-03-11"),
        _event(3, "a", "2024-04-10"),
        _event(4, "a", "2024-06-05"),  # past END + 24 h lateness: read, ignored, stop
        b"this line would stop a strict run if it were ever read",
    ]
    runner = EvaluationRunner(load_scorecard(None), CUTOFF, END)
    result = runner.run(enumerate(lines, start=1))
    assert result.ignored_after_end == 1
    assert {a: churn_label(result.tracks[a], CUTOFF, result.end) for a in result.snapshots} == {
        "a": 0,
        "b": 1,
    }


def test_early_rank_places_a_fading_account_among_the_riskiest() -> None:
    """30 days before it cancels, the account that went quiet ranks riskiest of five."""
    from datetime import date, timedelta

    lines, n = [], 0
    day = date(2024, 1, 1)
    while day <= date(2024, 3, 20):
        for account in ("a", "b", "c", "d", "fading"):
            if account != "fading" or day <= date(2024, 1, 31):
                n += 1
                lines.append(_event(n, account, day.isoformat()))
        if day == date(2024, 3, 15):
            n += 1
            lines.append(_event(n, "fading", day.isoformat(), "subscription.canceled"))
        day += timedelta(days=1)
    cutoff = parse_moment("2024-03-10")
    result = EvaluationRunner(load_scorecard(None), cutoff, None, tick_hours=24).run(
        enumerate(lines, start=1)
    )
    [rank] = result.early_ranks
    assert rank.account_id == "fading"
    assert rank.scored_ts == parse_moment("2024-02-14T00:00:00Z")  # last tick <= cancel - 30 d
    assert rank.riskiest_share == 0.5 / 5  # alone at the bottom: half its own bin, of five
