"""Fixtures of the reliability suite.

The helpers module is imported as a plain module (``_reliability_helpers``):
this directory is put on ``sys.path`` here, since the suite runs with
``--import-mode=importlib`` (test modules are not packages).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
