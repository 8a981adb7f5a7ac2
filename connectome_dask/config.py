"""Package defaults registered in dask's config under ``connectome_dask``, and their reader.

Every setting can be overridden the dask way: ``dask.config.set(...)``, a
YAML file in ``~/.config/dask/``, or ``DASK_CONNECTOME_DASK__<KEY>``
environment variables. The package reads its settings through :func:`get`,
which first checks that every ``connectome_dask.*`` key in dask's config is
one the defaults file (``connectome_dask.yaml``) declares: a misspelt key
raises :class:`~connectome_dask.errors.ConfigError` instead of being
silently ignored.

Examples
--------
>>> get("split_every")
8
>>> import dask
>>> with dask.config.set({"connectome_dask.partition_chnks": 3}):
...     get("progress")
Traceback (most recent call last):
...
connectome_dask.errors.ConfigError: unknown dask config key 'connectome_dask.partition_chnks'; ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dask.config
import yaml

from .errors import ConfigError

__all__ = ["DEFAULTS_FILE", "get", "known_keys", "validate"]

DEFAULTS_FILE = Path(__file__).with_name("connectome_dask.yaml")
PREFIX = "connectome_dask"

with DEFAULTS_FILE.open() as _f:
    _defaults: dict = yaml.safe_load(_f)

dask.config.update_defaults(_defaults)

_NO_DEFAULT = object()


def _norm(key: Any) -> str:
    # dask treats "a-b" and "a_b" as the same key
    return str(key).replace("-", "_")


def _leaves(tree: Mapping, prefix: str) -> Iterator[tuple[str, Any]]:
    for k, v in tree.items():
        name = f"{prefix}.{_norm(k)}"
        yield name, v
        if isinstance(v, Mapping):
            yield from _leaves(v, name)


def _free_form(defaults: Mapping) -> set[str]:
    """Keys whose default is an empty mapping (``cluster.slurm`` ...): any sub-key is allowed."""
    return {k for k, v in _leaves(defaults, PREFIX) if isinstance(v, Mapping) and not v}


_KNOWN = {k for k, _ in _leaves(_defaults[PREFIX], PREFIX)}
_FREE = _free_form(_defaults[PREFIX])


def known_keys() -> list[str]:
    """Every ``connectome_dask.*`` key the defaults file declares, sorted.

    Returns
    -------
    list of str
        Dotted names, e.g. ``"connectome_dask.partition_chunks"``.

    Examples
    --------
    >>> "connectome_dask.split_every" in known_keys()
    True
    """
    return sorted(_KNOWN)


def validate() -> None:
    """Check the ``connectome_dask`` section of dask's config against the defaults file.

    Raises
    ------
    ConfigError
        A key is present in dask's config but not declared in
        ``connectome_dask.yaml`` (sub-keys of mappings declared empty, such
        as ``cluster.slurm``, are free-form). The message lists the known keys.

    Examples
    --------
    >>> validate()  # the defaults alone are valid
    """
    section = dask.config.config.get(PREFIX)
    if not isinstance(section, Mapping):
        return
    unknown = [
        k for k, _ in _leaves(section, PREFIX)
        if k not in _KNOWN and not any(k.startswith(f + ".") for f in _FREE)
    ]
    if unknown:
        raise ConfigError(
            f"unknown dask config key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; known keys are: {', '.join(known_keys())}"
        )


def get(key: str, default: Any = _NO_DEFAULT) -> Any:
    """Read a package setting from dask's config, after :func:`validate`.

    Parameters
    ----------
    key
        The setting's name below ``connectome_dask`` (``"progress"``,
        ``"cluster.workers"``); a full ``"connectome_dask.<key>"`` name works too.
    default
        Returned when the key is not set at all (it always is, from the
        defaults file, unless a caller removed it).

    Returns
    -------
    Any
        The configured value.

    Raises
    ------
    ConfigError
        ``key`` is not declared in ``connectome_dask.yaml``, or dask's config
        holds an undeclared ``connectome_dask.*`` key.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"connectome_dask.split_every": 4}):
    ...     get("split_every")
    4
    """
    validate()
    full = key if key.startswith(PREFIX + ".") else f"{PREFIX}.{key}"
    name = _norm(full)
    if name not in _KNOWN and not any(name.startswith(f + ".") for f in _FREE):
        raise ConfigError(f"unknown config key {full!r}; known keys are: {', '.join(known_keys())}")
    if default is _NO_DEFAULT:
        return dask.config.get(full)
    return dask.config.get(full, default)
