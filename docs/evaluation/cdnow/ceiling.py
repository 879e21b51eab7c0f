"""How high can any recency/frequency score go on the CDNOW test task? (a diagnostic)

Why this exists: the issue's target for the health score is ROC AUC >= 0.78. This
script measures two reference points on the test task (scores on 1997-09-30, churn =
no purchase until 1998-06-30), straight from the raw file:

1. an *in-sample* lookup table of churn rate by recency x frequency bins, fitted on
   the test outcomes themselves: no score built from recency and frequency alone can
   rank better than this (up to bin effects) - it is a ceiling, not a fair result;
2. a logistic regression on log recency, frequency, tenure, purchase span and spend,
   trained on the validation task (scores 1997-06-30, churn = no purchase until
   1997-09-30) and applied to the test task: an honest offline model that also sees
   the money spent, which the health score does not.

It chooses nothing: the scorecard was fixed before this was run (README.md).

Run from the repository root:
    .venv/bin/python docs/evaluation/cdnow/ceiling.py
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import numpy as np
from numpy.typing import NDArray

from evaluation.metrics import roc_auc
from simulator.datasets import CDNOW_DEFAULT

Purchase = tuple[date, float]


def load() -> dict[str, list[Purchase]]:
    purchases: dict[str, list[Purchase]] = defaultdict(list)
    with CDNOW_DEFAULT.open(encoding="ascii") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) != 4 or not parts[0].isdigit():
                continue
            day = parts[1]
            stamp = date(int(day[:4]), int(day[4:6]), int(day[6:]))
            purchases[parts[0]].append((stamp, float(parts[3])))
    return purchases


def task(
    purchases: dict[str, list[Purchase]], cutoff: str, end: str
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Per customer (recency, purchase days, tenure, span, spend) at the cutoff, and the label."""
    c, e = date.fromisoformat(cutoff), date.fromisoformat(end)
    rows, labels = [], []
    for history in purchases.values():
        days = sorted({d for d, _ in history if d <= c})
        if not days:
            continue
        spend = sum(v for d, v in history if d <= c)
        rows.append(
            (
                (c - days[-1]).days,
                len(days),
                (c - days[0]).days,
                (days[-1] - days[0]).days,
                spend,
            )
        )
        labels.append(0 if any(c < d <= e for d, _ in history) else 1)
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int8)


def lookup_ceiling(x: NDArray[np.float64], y: NDArray[np.int8]) -> float:
    recency = np.digitize(x[:, 0], [7, 14, 30, 45, 60, 90, 120, 150, 180, 210, 240])
    frequency = np.minimum(x[:, 1], 10)
    key = recency * 100 + frequency
    rate = {k: float(y[key == k].mean()) for k in np.unique(key)}
    return roc_auc(y, np.array([rate[k] for k in key]))


def design(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.log1p(np.column_stack([x, x[:, 4] / x[:, 1]]))


def fit_logistic(a: NDArray[np.float64], y: NDArray[np.int8], l2: float = 1e-3) -> NDArray:
    """Newton steps on the L2-penalised log loss (a few features: exact and fast)."""
    z = np.column_stack([np.ones(len(a)), a])
    w = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        grad = z.T @ (p - y) / len(y) + l2 * w
        hess = (z.T * (p * (1 - p))) @ z / len(y) + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def main() -> None:
    purchases = load()
    x_val, y_val = task(purchases, "1997-06-30", "1997-09-30")
    x_test, y_test = task(purchases, "1997-09-30", "1998-06-30")
    print(f"test: {len(y_test)} customers, churn rate {y_test.mean():.4f}")
    print(f"  recency alone            {roc_auc(y_test, x_test[:, 0]):.4f}")
    print(f"  frequency alone          {roc_auc(y_test, -x_test[:, 1]):.4f}")
    print(f"  R x F lookup, in-sample  {lookup_ceiling(x_test, y_test):.4f}  (a ceiling)")
    a_val, a_test = design(x_val), design(x_test)
    mean, std = a_val.mean(axis=0), a_val.std(axis=0) + 1e-9
    w = fit_logistic((a_val - mean) / std, y_val)
    risk = np.column_stack([np.ones(len(a_test)), (a_test - mean) / std]) @ w
    print(f"  logistic RFM + spend, trained on validation  {roc_auc(y_test, risk):.4f}")


if __name__ == "__main__":
    main()
