"""The package's dask config: unknown ``connectome_dask.*`` keys are refused, settings read through config.get."""

from __future__ import annotations

import dask
import pytest

from connectome_dask import aggregate as A
from connectome_dask import config
from connectome_dask._compute import tree_reduce
from connectome_dask.errors import ConfigError


def test_unknown_config_key_raises():
    with dask.config.set({"connectome_dask.partition_chnks": 3}):
        with pytest.raises(ConfigError, match="partition_chnks") as e:
            config.get("progress")
        assert "connectome_dask.partition_chunks" in str(e.value)  # lists the known keys
        with pytest.raises(ConfigError):
            A.max_dense_bytes()
    with pytest.raises(ConfigError, match="unknown config key"):
        config.get("no_such_key")
    with dask.config.set({"connectome_dask.cluster.slurm": {"queue": "short"}}):  # free-form section
        assert config.get("cluster.slurm") == {"queue": "short"}
    with dask.config.set({"connectome_dask.cluster.local.n_wrkers": 2}), pytest.raises(ConfigError):
        config.get("progress")


def test_known_keys_are_the_yaml():
    keys = config.known_keys()
    for k in ("progress", "partition_chunks", "use_pair_table", "split_every", "max_dense_bytes",
              "lock_timeout", "cluster.workers", "cluster.local.n_workers"):
        assert f"connectome_dask.{k}" in keys
    assert config.get("split_every") == 8
    assert config.get("connectome_dask.split_every") == 8


def test_split_every_from_config():
    from dask.delayed import delayed

    parts = [delayed(int)(i) for i in range(20)]
    seen: list[int] = []

    def combine(xs):
        seen.append(len(xs))
        return sum(xs)

    with dask.config.set({"connectome_dask.split_every": 3, "scheduler": "sync"}):
        assert tree_reduce(parts, combine).compute() == 190
    assert max(seen) == 3
    seen.clear()
    with dask.config.set(scheduler="sync"):
        assert tree_reduce(parts, combine).compute() == 190
    assert max(seen) == 8
    with pytest.raises(ValueError, match="split_every"):
        tree_reduce(parts, sum, split_every=1)


