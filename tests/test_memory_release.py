"""release_unused_memory hands freed heap memory back: measured by the process's resident size (/proc)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from connectome_dask import _memory


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or _memory._malloc_trim() is None,
                    reason="glibc's malloc_trim is Linux/glibc only")
def test_freed_arena_memory_goes_back_to_the_os():
    big = np.ones(16 << 17)  # 16 MB, mmapped: its free raises glibc's mmap threshold above 1 MB blocks
    del big
    blocks = [np.ones(1 << 17) for _ in range(300)]  # 300 x 1 MB from the heap now, each page touched
    keep = blocks[::10]  # every tenth stays: the heap's free space is holes, not a trimmable top
    del blocks
    before = _rss_mb()
    _memory.release_unused_memory()
    after = _rss_mb()
    assert before - after > 150, (before, after)  # ~270 MB of holes were resident
    assert all(float(b.sum()) == 1 << 17 for b in keep)  # live blocks untouched


def test_release_is_harmless_without_pyarrow_loaded(monkeypatch):
    monkeypatch.delitem(sys.modules, "pyarrow", raising=False)
    assert _memory.release_unused_memory() >= 0
