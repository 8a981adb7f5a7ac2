"""Large results with few cells written get small pages (``compute.dense.sparse_zeros``).

References: ``np.zeros`` for the values, numpy's own huge-page switch for the
restored setting, ``np.unique`` of the cells' page numbers for the page counts,
``np.add.at`` for the grouped results, and the kernel's accounting in
``/proc/self/smaps`` for which pages a mapping got.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from connectome_dask.compute import groups as G
from connectome_dask.compute.dense import (
    _HUGEPAGE_SWITCH,
    SMALL_PAGE,
    SMALL_PAGE_SHARE,
    small_pages_touched,
    sparse_zeros,
)
from connectome_dask.kernels.pairs import mark_packed_pages


def _pages_ref(cells: np.ndarray, itemsize: int = 8) -> int:
    return len(np.unique(np.asarray(cells, np.int64) * itemsize // SMALL_PAGE))


@pytest.mark.parametrize("pages", [None, 0, 1, 10**9])
@pytest.mark.parametrize("shape, dtype", [((3, 4), np.int64), ((700, 900), np.int64), (5_000_000, np.float32)])
def test_values_are_zeros(shape, dtype, pages):
    a = sparse_zeros(shape, dtype, pages=pages)
    ref = np.zeros(shape, dtype)
    assert a.shape == ref.shape and a.dtype == ref.dtype and a.flags.c_contiguous and a.flags.owndata
    assert np.array_equal(a, ref)


@pytest.mark.skipif(_HUGEPAGE_SWITCH is None, reason="this numpy has no huge-page switch")
@pytest.mark.parametrize("setting", [True, False])
def test_the_callers_huge_page_setting_is_restored(setting):
    before = _HUGEPAGE_SWITCH(setting)
    try:
        sparse_zeros(1 << 22)
        assert _HUGEPAGE_SWITCH(setting) is setting  # returns the value it replaces
    finally:
        _HUGEPAGE_SWITCH(before)


def _anon_huge_kb(a: np.ndarray) -> int:
    """AnonHugePages of the mappings holding ``a``'s data, from the kernel's /proc/self/smaps."""
    lo, hi = a.ctypes.data, a.ctypes.data + a.nbytes
    total, cur = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if m:  # madvise splits an array's mapping: every mapping overlapping the data counts
            cur = int(m.group(1), 16) < hi and lo < int(m.group(2), 16)
        elif cur and line.startswith("AnonHugePages:"):
            total += int(line.split()[1])
    return total


def test_few_written_pages_are_small_pages():
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if _HUGEPAGE_SWITCH is None or not thp.exists() or "[madvise]" not in thp.read_text():
        # "never": no huge pages at all; "always": every mapping gets them, asked or not
        pytest.skip("transparent huge pages are not in madvise mode here (or numpy cannot ask for them)")
    n = 64 << 17  # 64 MiB of int64
    touch = np.arange(0, n, 1 << 18)  # one cell every 2 MiB
    # many pages written: numpy's huge pages are kept, as np.zeros gets them
    b = sparse_zeros(n, pages=n * 8 // SMALL_PAGE)
    b[touch] = 1
    ref = np.zeros(n, np.int64)
    ref[touch] = 1
    if _anon_huge_kb(ref) == 0:
        pytest.skip("numpy's own array got no huge pages here (memory too fragmented to compare)")
    assert _anon_huge_kb(b) > 0
    a = sparse_zeros(n, pages=small_pages_touched(touch))
    a[touch] = 1
    assert _anon_huge_kb(a) == 0
    assert np.array_equal(a, ref) and np.array_equal(b, ref)


@pytest.mark.parametrize("seed", range(5))
def test_pages_touched_against_unique(seed):
    rng = np.random.default_rng(seed)
    cells = np.sort(rng.integers(0, 10**6, int(rng.integers(1, 5000))))
    for itemsize in (1, 4, 8):
        assert small_pages_touched(cells, itemsize) == _pages_ref(cells, itemsize)
        assert small_pages_touched(rng.permutation(cells), itemsize) == _pages_ref(cells, itemsize)
    assert small_pages_touched(np.zeros(0, np.int64)) == 0


def test_packed_page_marks_against_unique():
    rng = np.random.default_rng(3)
    runs = [np.sort((rng.integers(0, 2_000_000, k).astype(np.int64) << 32) | 7) for k in (3000, 10, 5000)]
    seen = np.zeros(2_000_000 // 512 + 1, dtype=bool)
    count = 0
    for r in runs:  # one seen array for all runs: pages in two runs count once
        count = mark_packed_pages(r, 32, 9, seen, count, 10**9)
    want = _pages_ref(np.concatenate(runs) >> 32)
    assert count == want == int(seen.sum())
    # the scan stops once past the limit, with a count above it
    seen[:] = False
    got = mark_packed_pages(runs[2], 32, 9, seen, 0, 100)
    assert got == 101 and int(seen.sum()) == 101


@pytest.mark.parametrize("spread", ["few", "many"])
def test_grouped_result_of_few_or_many_pages(spread, monkeypatch):
    """The result built from packed runs equals np.add.at, on small pages (few written) or numpy's."""
    rng = np.random.default_rng(11)
    n_pre, n_post = 1000, 800  # 6.4 MB of int64: 1,563 small pages
    n_cells = n_pre * n_post
    k = 40 if spread == "few" else 20_000
    ref = np.zeros(n_cells, np.int64)
    runs = []
    for _ in range(3):
        cell = rng.integers(0, n_cells, k)
        c = rng.integers(1, 1000, k)
        np.add.at(ref, cell, c)
        runs.append(np.sort((cell.astype(np.int64) << 32) | c))
    part = ("packed", tuple(runs))
    n_pages = -(-n_cells * 8 // SMALL_PAGE)
    want_pages = _pages_ref(np.concatenate(runs) >> 32)
    got_pages = G._pages_written(part, n_cells)
    if want_pages <= n_pages // SMALL_PAGE_SHARE:
        assert got_pages == want_pages
    else:
        assert got_pages > n_pages // SMALL_PAGE_SHARE
    asked = []
    real = G.sparse_zeros
    monkeypatch.setattr(G, "sparse_zeros", lambda shape, pages=None: asked.append(pages) or real(shape, pages=pages))
    out = G._finish_groups(part, n_pre, n_post)
    assert np.array_equal(out.reshape(-1), ref)
    small = asked[0] * SMALL_PAGE_SHARE * SMALL_PAGE <= n_cells * 8
    assert small == (spread == "few")
