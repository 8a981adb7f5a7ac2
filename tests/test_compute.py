"""The read-path rule, the ``method=`` override, the kernel shims and the layering."""

from __future__ import annotations

import logging

import dask
import numpy as np
import pytest

from connectome_dask import aggregate as A
from connectome_dask.compute import plan as P
from connectome_dask.compute.plan import plan_read


@pytest.fixture
def conn(small_store):
    return small_store.conn


def _few(conn, side="pre"):
    """The neuron with the fewest rows on ``side`` (well under 5 % of the table)."""
    return np.array([int(np.argmin(np.where(conn.neurons[side].to_numpy() > 0,
                                            conn.neurons[side].to_numpy(), 1 << 40)))])


# ----------------------------------------------------------------------------- the rule


def test_counts_rule(conn):
    assert conn.has_pair_table
    few = _few(conn)
    assert plan_read(conn).method == "table"
    # ROI filters / by ROI without confidence: the per-ROI connection table (tests/test_roi_table.py)
    assert conn.has_roi_pair_table
    assert plan_read(conn, by_roi=True).method == "roi_table"
    assert plan_read(conn, roi_filter=True).method == "roi_table"
    # a confidence filter: the connection table's pairs with their rows' confidence (tests/test_pairs_scan.py)
    assert plan_read(conn, by_roi=True, confidence=True).method == "pairs_scan"
    assert plan_read(conn, confidence=True).method == "pairs_scan"
    p = plan_read(conn, pre=few)
    assert (p.method, p.side, p.rows) == ("index", "pre", int(conn.neurons.pre.iloc[few[0]]))
    # a restricted side with ROI filters still reads the index
    assert plan_read(conn, post=_few(conn, "post"), roi_filter=True).side == "post"
    everyone = np.arange(conn.n_neurons)
    assert plan_read(conn, pre=everyone).method == "table"  # too many rows for the index
    assert plan_read(conn, pre=everyone, confidence=True).method == "pairs_scan"
    with dask.config.set({"connectome_dask.use_pair_table": False}):
        assert plan_read(conn).method == "scan"
        assert plan_read(conn, confidence=True).method == "scan"  # pairs_scan reads the connection table too
        assert plan_read(conn, method="table").method == "table"  # explicit wins over the config
    assert plan_read(conn, output=True).method == "scan"


def test_counts_rule_threshold_is_inclusive(conn, monkeypatch):
    few = _few(conn)
    rows = int(conn.neurons.pre.iloc[few[0]])
    monkeypatch.setattr(P, "INDEX_PATH_FRACTION", rows / conn.n_synapses)
    assert plan_read(conn, pre=few).method == "index"
    monkeypatch.setattr(P, "INDEX_PATH_FRACTION", (rows - 0.5) / conn.n_synapses)
    assert plan_read(conn, pre=few).method == "table"


def test_rows_rule(conn, monkeypatch):
    few = _few(conn)
    assert plan_read(conn, what="rows").method == "scan"  # never the table
    assert plan_read(conn, pre=few, what="rows").method == "index"
    assert plan_read(conn, pre=few, what="rows", either=True).method == "scan"  # either needs both sides
    p = plan_read(conn, pre=few, post=few, what="rows", either=True)
    assert (p.method, p.side) == ("index", "both")
    assert p.rows == int(conn.neurons.pre.iloc[few[0]] + conn.neurons.post.iloc[few[0]])
    monkeypatch.setattr(P, "INDEX_ROWS_LIMIT", p.rows - 1)
    assert plan_read(conn, pre=few, post=few, what="rows", either=True).method == "scan"


def test_ties_read_pre(conn):
    few = _few(conn)
    n = conn.neurons
    same = np.flatnonzero(n.post.to_numpy() == int(n.pre.iloc[few[0]]))
    if len(same):
        assert plan_read(conn, pre=few, post=same[:1]).side == "pre"


def test_forced_methods_that_cannot_work(conn):
    with pytest.raises(ValueError, match="method must be one of"):
        plan_read(conn, method="hash")
    with pytest.raises(ValueError, match="restricted side"):
        plan_read(conn, method="index")
    with pytest.raises(ValueError, match="ROI filter"):
        plan_read(conn, roi_filter=True, method="table")
    with pytest.raises(ValueError, match="synapse rows"):
        plan_read(conn, what="rows", method="table")
    with pytest.raises(ValueError, match="out-of-core"):
        plan_read(conn, output=True, method="index")
    with pytest.raises(ValueError, match="table"):
        A.pair_counts(conn, by_roi=True, method="table")


def test_the_plan_is_logged(conn, caplog):
    with caplog.at_level(logging.DEBUG, logger="connectome_dask.compute"):
        A.pair_counts(conn, pre=conn.neurons.bodyId.iloc[_few(conn)].tolist(), progress=False)
    plans = [r.plan for r in caplog.records if hasattr(r, "plan")]
    assert [p.method for p in plans] == ["index"]
    assert "read plan: index" in caplog.text


# ----------------------------------------------------------------------------- method= gives the same result


@pytest.mark.parametrize("kw", [{}, {"min_weight": 3}, {"rois": ["MB"], "by_roi": True}, {"confidence": 0.5}])
def test_pair_counts_same_on_every_method(conn, kw):
    pre = conn.neurons.bodyId.iloc[:7].tolist()
    filtered = "rois" in kw or "confidence" in kw
    want = A.pair_counts(conn, pre=pre, method="scan", progress=False, **kw)
    assert len(want)
    for m in ("auto", "index") + (() if filtered else ("table",)):
        got = A.pair_counts(conn, pre=pre, method=m, progress=False, **kw)
        assert got.equals(want), m


def test_group_counts_and_adjacency_same_on_every_method(conn):
    side = conn.neurons.side.map({"left": 0, "right": 1}).fillna(-1).to_numpy("int64") \
        if "side" in conn.neurons.columns else (np.arange(conn.n_neurons) % 2)
    post = conn.neurons.bodyId.iloc[10:30].tolist()
    ref = A.group_counts(conn, side, side, 2, 2, post=post, method="scan", progress=False)
    for m in ("auto", "index", "table"):
        assert np.array_equal(A.group_counts(conn, side, side, 2, 2, post=post, method=m, progress=False), ref), m
    a = A.adjacency(conn, None, post, by="type", method="scan", min_weight=2)
    for m in ("index", "table"):
        assert a.equals(A.adjacency(conn, None, post, by="type", method=m, min_weight=2)), m
    b = A.adjacency(conn, None, post, method="scan")
    assert (b.data != A.adjacency(conn, None, post, method="index").data).nnz == 0


# ----------------------------------------------------------------------------- layering


def test_kernel_shims_and_layering():
    import ast
    from pathlib import Path

    from connectome_dask import _agg_kernels, _containment, _kernels, kernels
    from connectome_dask.kernels import containment, pairs, scatter

    assert _agg_kernels.pair_runs is pairs.pair_runs and _agg_kernels.code_range is pairs.code_range
    assert _kernels.scatter_rows is scatter.scatter_rows
    assert _containment.query is containment.query and _containment.SUB_N == containment.SUB_N
    assert not hasattr(pairs, "merge_sorted_runs")
    pkg = Path(kernels.__file__).parent
    siblings = {f.stem for f in pkg.glob("*.py")}
    for f in pkg.glob("*.py"):  # kernels import nothing from the package (but each other)
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                sibling = node.level == 1 and node.module in siblings
                assert sibling or (node.level == 0 and not (node.module or "").startswith("connectome_dask")), f
    comp = pkg.parent / "compute"
    for f in comp.glob("*.py"):  # compute sits below criteria / aggregate
        src = f.read_text()
        assert "criteria" not in {n.module.split(".")[-1] for n in ast.walk(ast.parse(src))
                                  if isinstance(n, ast.ImportFrom) and n.module}, f
        assert "from ..aggregate" not in src and "from ..queries" not in src, f
    crit = (pkg.parent / "criteria.py").read_text()
    assert "from .aggregate" not in crit


def test_progress_in_a_log_is_two_lines_not_frames(capsys, caplog, monkeypatch):
    """Without a terminal, a long job logs its start and end instead of redrawing a bar."""
    import logging

    import dask

    from connectome_dask._compute import compute

    # an earlier logging.config.dictConfig (e.g. distributed's) may have disabled existing loggers
    monkeypatch.setattr(logging.getLogger("connectome_dask"), "disabled", False)

    parts = [dask.delayed(sum)([i, 1]) for i in range(50)]
    with caplog.at_level(logging.INFO, logger="connectome_dask"), dask.config.set(scheduler="sync"):
        assert compute(*parts, progress=True, desc="fifty sums") == tuple(range(1, 51))
    err = capsys.readouterr().err  # pytest's captured stderr is not a terminal
    assert "\r" not in err
    msgs = [r.getMessage() for r in caplog.records if r.name == "connectome_dask"]
    assert msgs[0] == "fifty sums: started" and msgs[1].startswith("fifty sums: done in ")


def test_local_schedulers_without_importing_distributed(tmp_path):
    """Without ``distributed`` imported, compute picks dask's own local scheduler and never imports it.

    Reference: dask's documented choice (the configured scheduler's name,
    else the collections' default: threads for delayed); the thread each task
    ran on tells which scheduler ran it. A fresh interpreter, so no earlier
    test has imported ``distributed``.
    """
    import subprocess
    import sys

    code = r'''
import sys, threading
import dask
from dask.delayed import delayed
from connectome_dask._compute import compute

def where(_):
    return threading.current_thread() is threading.main_thread()

tasks = [delayed(where)(i) for i in range(8)]
assert "distributed" not in sys.modules
default = compute(*tasks, progress=False)
with dask.config.set(scheduler="sync"):
    sync = compute(*tasks, progress=False)
with dask.config.set(scheduler="Threads"):
    named = compute(*tasks, progress=False)
imported = "distributed" in sys.modules
with dask.config.set(scheduler="distributed"):  # no client: dask's own error, as without the shortcut
    try:
        compute(*tasks, progress=False)
        err = None
    except RuntimeError as e:
        err = str(e)
print(not any(default), all(sync), not any(named), "no Client" in (err or ""), imported)
'''
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "True", "False"]
