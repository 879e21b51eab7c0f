"""Scorer integration tests run real ``healthstream scorer`` workers on the session broker."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow
