"""Churn labels without future leakage.

The engine snapshots an account's model features every few days (at most
``labels.max_pending`` at a time, so state stays bounded). A snapshot taken at
``t`` gets its label from what happens in ``(t, t + horizon]`` and is emitted
only at the event time the label becomes known:

* ``subscription.canceled`` at ``c`` -> label 1 for snapshots with t <= c, known at c;
* ``subscription.renewed`` at ``r`` -> label 0 for snapshots with t <= r, known at r;
* otherwise, at ``t + horizon``: label 1 if no usage happened in ``(t, t + horizon]``
  (inactivity churn), else 0 (retained) - known at ``t + horizon``.

Snapshots use features as of the account's watermark (never of a late event's
time), so they contain nothing from after ``t``. A snapshot is
``[t, saw_usage, *model vector, scorecard score at t]``; the score (absent from
snapshots recorded before it was kept) lets the blend judge the scorecard on the
same outcomes as the model.
"""

from __future__ import annotations

from services.scorer.core.features import MODEL_FEATURES, vector_features
from services.scorer.core.results import TrainingExample
from services.scorer.core.state import AccountState

_SCORE_AT = 2 + len(MODEL_FEATURES)


def _example(
    state: AccountState, snap: list[float], label: int, ts_label: float
) -> TrainingExample:
    return TrainingExample(
        account_id=state.account_id,
        ts_features=snap[0],
        features=vector_features(snap[2:_SCORE_AT]),
        label=label,
        ts_label=ts_label,
        scorecard=snap[_SCORE_AT] if len(snap) > _SCORE_AT else None,
    )


def resolve_due(state: AccountState, now: float, horizon: float) -> list[TrainingExample]:
    """Label snapshots whose horizon has fully passed by ``now``."""
    out: list[TrainingExample] = []
    keep: list[list[float]] = []
    for snap in state.pending:
        end = snap[0] + horizon
        if end <= now:
            out.append(_example(state, snap, 0 if snap[1] else 1, end))
        else:
            keep.append(snap)
    if out:
        state.pending = keep
    return out


def resolve_outcome(state: AccountState, at: float, label: int) -> list[TrainingExample]:
    """An explicit outcome (cancel = 1, renew = 0) at ``at`` labels every snapshot taken by then."""
    out = [_example(state, snap, label, at) for snap in state.pending if snap[0] <= at]
    if out:
        state.pending = [snap for snap in state.pending if snap[0] > at]
    return out


def mark_usage(state: AccountState, ts: float, horizon: float) -> None:
    """Usage at ``ts`` means "still active" to snapshots whose (t, t+horizon] contains it."""
    for snap in state.pending:
        if snap[0] < ts <= snap[0] + horizon:
            snap[1] = 1.0
