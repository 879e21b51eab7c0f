"""Scorer-core unit tests; this directory is on sys.path so tests import ``core_helpers``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
