"""``round`` without its cost: CPython's ``round(x, n)`` converts through a decimal
string (~0.5 us), and the engine rounds a dozen numbers per published score and
27 per label snapshot.

``round_to(x, scale)`` returns exactly ``round(x, n)`` for ``scale == 10**n``:
away from a decimal tie the nearest integer ``k`` of ``x * scale`` is the same
one ``round`` picks, and ``k / scale`` is then the double nearest to the
decimal result, which is what ``round`` returns. A zero result keeps the sign of ``x``
as ``round`` does. Near a tie and for huge or non-finite values it defers to
``round``. A hypothesis test checks the equality.
"""

from __future__ import annotations

from math import copysign, floor


def round_to(x: float, scale: float) -> float:
    """``round(x, n)`` for ``scale == 10.0 ** n`` (n >= 0), exactly, ~3x faster."""
    y = x * scale
    if -1e9 < y < 1e9:
        k = floor(y + 0.5)
        d = y - k
        if -0.4999 < d < 0.4999:
            return k / scale if k else copysign(0.0, x)  # round keeps the sign of a zero
    return round(x, _DIGITS[scale])


_DIGITS = {1.0: 0, 10.0: 1, 100.0: 2, 1000.0: 3, 10000.0: 4}
