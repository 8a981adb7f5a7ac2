"""Fixtures of the reliability suite.

The suite is a package: helpers are imported as
``from tests.reliability import _reliability_helpers as H``.
"""

from __future__ import annotations

