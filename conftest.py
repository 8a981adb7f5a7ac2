"""Doctest namespace: examples in docstrings run against a real tiny store."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace, tmp_path):
    import numpy as np
    import pandas as pd

    import connectome_dask as cd

    doctest_namespace.update(cd=cd, np=np, pd=pd, tmp_path=tmp_path)
