"""round_to is exactly round(x, n): same value, same sign, same JSON."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scorer.core.numeric import round_to

_NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1000, 1000),
    st.integers(-(10**7), 10**7).map(lambda k: k / 1000),  # exact and near decimal ties
    st.integers(-(10**7), 10**7).map(lambda k: k / 200),
)


@settings(max_examples=2000, deadline=None)
@given(_NUMBERS, st.sampled_from([0, 1, 2, 4]))
def test_round_to_equals_round(x: float, digits: int) -> None:
    expected = round(x, digits)
    got = round_to(x, 10.0**digits)
    assert orjson.dumps(got) == orjson.dumps(expected), (x, digits)


@pytest.mark.parametrize("x", [2.675, 0.125, 0.375, -0.001, -0.0, 0.005, 1e300, -1e300, 12.345])
def test_round_to_ties_and_edges(x: float) -> None:
    for digits in (2, 4):
        assert orjson.dumps(round_to(x, 10.0**digits)) == orjson.dumps(round(x, digits))
