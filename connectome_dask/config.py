"""Package defaults registered in dask's config under ``connectome_dask``.

Every setting can be overridden the dask way: ``dask.config.set(...)``, a
YAML file in ``~/.config/dask/``, or ``DASK_CONNECTOME_DASK__<KEY>``
environment variables. Functions read ``dask.config.get(...)`` when an
argument is ``None``.
"""

from __future__ import annotations

from pathlib import Path

import dask.config
import yaml

__all__ = ["DEFAULTS_FILE"]

DEFAULTS_FILE = Path(__file__).with_name("connectome_dask.yaml")

with DEFAULTS_FILE.open() as _f:
    _defaults = yaml.safe_load(_f)

dask.config.update_defaults(_defaults)
