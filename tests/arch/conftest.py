"""The arch tests reuse the tiny models of the grow tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "grow"))
