"""Exact results whatever the partitioning, the path taken and the container of body IDs.

Two rules are checked against pure pandas references written here (a groupby
on the raw synapse table, the independent statement of each rule):

1. Thresholds hold after the full reduction. ``min_weight`` keeps a
   neuron pair whose synapse count, over all synapses that pass the
   ``rois`` / ``confidence`` / ``pre`` / ``post`` filters, is at least
   ``min_weight``; grouped results (``by="type"``, ``by="instance"``) then
   sum the kept neuron pairs into their groups (the documented rule: "neuron
   pairs with fewer synapses are dropped (before grouping)"). A pair whose
   rows straddle a partition seam must not be judged on either half.
   ``fetch_adjacencies``' ``min_roi_weight`` / ``min_total_weight`` and
   ``fetch_synapse_connections``' ``min_total_weight`` follow their own
   documented rules, just as exactly.

2. A neuron selection given as a list, tuple, set, numpy array, pandas
   Series or Index, or any other iterable of integers means body IDs (never
   positional indices) in every public function that takes one.

The property tests draw a store (chunk length), a partition size
(``connectome_dask.partition_chunks``), a scheduler (synchronous, threads, an
in-process distributed client), an aggregation path (the connection table,
the per-ROI connection table, the per-body index, the scan of the synapse
arrays; each one forced and checked to be the one taken) and the filters. Counts must be bit-identical.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from unittest import mock

import dask
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectome_dask import aggregate as A
from connectome_dask import queries as Q
from connectome_dask.compute import plan as P
from connectome_dask.criteria import NeuronCriteria, SynapseCriteria
from connectome_dask.store import StoreWriter, write_store

pytestmark = [
    pytest.mark.timeout(600),
    # dask's read_parquet (the out-of-core pair counts) on pandas 3.x
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index"),
]

N_NEURONS = 48
ROI_NAMES = ["R0", "R1", "R2", "R3"]
ROI_INFO = {"names": ROI_NAMES, "hierarchy": {"SUP": {"R0": {}, "R1": {}}}}
#: ROI selections given by name, and the codes each covers (SUP = R0 + R1)
ROI_CODES = {"R0": [0], "R1": [1], "R2": [2], "R3": [3], "SUP": [0, 1]}
CHUNKS = (7, 32, 4096)  # 4096: the whole table in one chunk
PARTITIONS = (1, 2, 3, 1000)
#: confidences are multiples of 1/64 (exact in float32), thresholds too: ties are exercised
CONFIDENCES = (0.25, 0.5, 35 / 64)


# ----------------------------------------------------------------------------- data


def _raw(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Neurons and synapses (dense ``pre``/``post``) with many repeated pairs.

    Body IDs are a permutation of 1..N_NEURONS, so a small int array is a valid
    selection both as body IDs and as positional indices (naming other bodies).
    """
    rng = np.random.default_rng(seed)
    n = N_NEURONS
    body = rng.permutation(np.arange(1, n + 1)).astype(np.int64)
    types = rng.choice(["A", "B", "C", "D", "E"], size=n).astype(object)
    side = rng.choice(["_L", "_R"], size=n)
    inst = np.array([f"{t}{s}" for t, s in zip(types, side, strict=True)], dtype=object)
    types[rng.random(n) < 0.1] = None
    inst[rng.random(n) < 0.1] = None
    neurons = pd.DataFrame({
        "bodyId": body,
        "type": pd.array(types, dtype="string"),
        "instance": pd.array(inst, dtype="string"),
    })
    # ~700 distinct pairs with geometric weights (1..~12), a few very strong
    # pairs and one neuron with many outputs (it spans many chunks)
    n_pairs = 400
    pp = rng.integers(0, n, n_pairs)
    pp[:40] = 3
    qq = rng.integers(0, n, n_pairs)
    w = rng.geometric(0.33, n_pairs)
    w[[0, 1, 2]] = [40, 25, 17]
    pre = np.repeat(pp, w).astype(np.int32)
    post = np.repeat(qq, w).astype(np.int32)
    k = len(pre)
    syn = pd.DataFrame({
        "pre": pre,
        "post": post,
        "confidence": (rng.integers(0, 65, k) / 64).astype(np.float32),
        "roi_post": rng.integers(-1, 4, k).astype(np.int16),
        "x": rng.uniform(0, 100, k).astype(np.float32),
        "y": rng.uniform(0, 100, k).astype(np.float32),
        "z": rng.uniform(0, 100, k).astype(np.float32),
    })
    return neurons, syn


@pytest.fixture(scope="module")
def raw():
    return _raw()


@pytest.fixture(scope="module")
def stores(raw, tmp_path_factory):
    """The same rows written with each chunk length (shuffled: the writer sorts)."""
    neurons, syn = raw
    root = tmp_path_factory.mktemp("exactness")
    out = {}
    cols = {c: str(syn[c].dtype) for c in syn.columns if c not in ("pre", "post")}
    for chunk_rows in CHUNKS:
        block = syn.sample(frac=1.0, random_state=chunk_rows)
        w = StoreWriter(root / f"c{chunk_rows}", len(neurons), cols, chunk_rows=chunk_rows)
        with w:
            w.append({c: block[c].to_numpy() for c in block.columns})
            out[chunk_rows] = w.close(neurons, {"name": f"exact{chunk_rows}"}, rois=ROI_INFO)
        assert out[chunk_rows].has_pair_table
    return out


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0")
    c = Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


@contextlib.contextmanager
def running(kind: str, client, partition_chunks: int):
    """Scheduler + partition size; progress bars off."""
    with dask.config.set({"connectome_dask.partition_chunks": partition_chunks, "connectome_dask.progress": False}):
        if kind == "distributed":
            with client.as_current():
                yield
        else:
            with dask.config.set(scheduler=kind):
                yield


# ----------------------------------------------------------------------------- paths


class _PlanLog(logging.Handler):
    """Collects the read plans logged by ``connectome_dask.compute.plan.plan_read``."""

    def __init__(self, taken: list[str]):
        super().__init__(logging.DEBUG)
        self.taken = taken

    def emit(self, record: logging.LogRecord) -> None:
        plan = getattr(record, "plan", None)
        if plan is not None:
            self.taken.append(plan.method)


@contextlib.contextmanager
def forced_path(path: str):
    """Force the aggregation path and record the one taken.

    ``index``: the per-body index whenever a side is restricted; ``table``:
    the connection table (``use_pair_table``, when no ROI / confidence
    filter); ``roi_table``: the per-ROI connection table
    (``use_roi_pair_table``, when a ROI filter or by ROI and no confidence
    filter); ``roi_major``: the ROI-major copy's runs of the selected ROIs
    (``ROI_MAJOR_SHARE`` lifted, when a ROI filter alone, not by ROI); ``scan``:
    the synapse arrays. The limits of the one read-path
    rule (:func:`connectome_dask.compute.plan.plan_read`) move, so queries'
    and criteria's reads follow too; the plans taken are read from its log.
    """
    taken: list[str] = []
    big, none = float("inf"), -1
    logger = logging.getLogger("connectome_dask.compute")
    handler = _PlanLog(taken)
    level = logger.level
    with contextlib.ExitStack() as st_:
        st_.enter_context(mock.patch.object(P, "INDEX_PATH_FRACTION", big if path == "index" else none))
        st_.enter_context(mock.patch.object(P, "INDEX_ROWS_LIMIT", big if path == "index" else none))
        st_.enter_context(mock.patch.object(P, "ROI_MAJOR_SHARE", big if path == "roi_major" else none))
        st_.enter_context(dask.config.set({"connectome_dask.use_pair_table": path == "table",
                                           "connectome_dask.use_roi_pair_table": path in ("roi_table",
                                                                                          "roi_major")}))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        st_.callback(logger.removeHandler, handler)
        st_.callback(logger.setLevel, level)
        yield taken


def _path_of(taken: list[str]) -> str:
    for path in ("index", "table", "roi_major", "roi_table"):
        if path in taken:
            return path
    return "scan"


# ----------------------------------------------------------------------------- references


def _syn_keep(neurons, syn, rois, confidence, pre_ids, post_ids) -> pd.DataFrame:
    """Synapses passing the row filters: ROI (postsynaptic site), confidence, pre/post bodies."""
    keep = np.ones(len(syn), dtype=bool)
    if rois is not None:
        codes = sorted({c for r in rois for c in ROI_CODES[r]})
        keep &= syn["roi_post"].isin(codes).to_numpy()
    if confidence is not None:
        keep &= syn["confidence"].to_numpy().astype(np.float64) > confidence
    body = neurons["bodyId"].to_numpy()
    if pre_ids is not None:
        keep &= np.isin(body[syn["pre"].to_numpy()], list(pre_ids))
    if post_ids is not None:
        keep &= np.isin(body[syn["post"].to_numpy()], list(post_ids))
    return syn[keep]


def ref_pairs(neurons, syn, *, rois=None, confidence=None, min_weight=1, pre_ids=None, post_ids=None,
              by_roi=False) -> pd.DataFrame:
    """``pre, post[, roi], weight`` (dense indices) with weight >= min_weight, sorted."""
    s = _syn_keep(neurons, syn, rois, confidence, pre_ids, post_ids)
    keys = ["pre", "post"] + (["roi_post"] if by_roi else [])
    w = s.groupby(keys, sort=True).size().rename("weight").reset_index()
    w = w[w["weight"] >= min_weight].rename(columns={"roi_post": "roi"}).reset_index(drop=True)
    return w.astype({c: np.int64 for c in w.columns})


def _selected(neurons, ids) -> np.ndarray:
    if ids is None:
        return np.arange(len(neurons))
    return np.flatnonzero(neurons["bodyId"].isin(list(ids)).to_numpy())


def ref_adjacency(neurons, syn, *, by, rois, confidence, min_weight, pre_ids, post_ids):
    """(pre labels, post labels, dense int64 matrix) of ``adjacency``'s documented rule."""
    w = ref_pairs(neurons, syn, rois=rois, confidence=confidence, min_weight=min_weight,
                  pre_ids=pre_ids, post_ids=post_ids)
    sel_pre, sel_post = _selected(neurons, pre_ids), _selected(neurons, post_ids)
    if by == "bodyId":
        body = neurons["bodyId"].to_numpy()
        rows, cols = body[sel_pre], body[sel_post]
        lab = pd.Series(body)
    else:
        lab = neurons[by].astype(object)
        rows = sorted(lab.iloc[sel_pre].dropna().unique())
        cols = sorted(lab.iloc[sel_post].dropna().unique())
    rpos = {v: i for i, v in enumerate(rows)}
    cpos = {v: i for i, v in enumerate(cols)}
    m = np.zeros((len(rows), len(cols)), dtype=np.int64)
    labels = lab.to_numpy(dtype=object, na_value=None)
    for p, q, wt in w[["pre", "post", "weight"]].itertuples(index=False):
        a, b = labels[p], labels[q]
        if a is not None and b is not None:
            m[rpos[a], cpos[b]] += wt
    return list(rows), list(cols), m


def dense_of(da) -> np.ndarray:
    v = da.data
    return np.asarray(v.todense() if hasattr(v, "todense") else v)


# ----------------------------------------------------------------------------- strategies

ids_strategy = st.lists(st.integers(1, N_NEURONS), min_size=1, max_size=12, unique=True)


@st.composite
def cases(draw):
    path = draw(st.sampled_from(["table", "roi_table", "roi_major", "index", "scan"]))
    rois = draw(st.none() | st.lists(st.sampled_from(sorted(ROI_CODES)), min_size=1, max_size=3, unique=True))
    confidence = draw(st.none() | st.sampled_from(CONFIDENCES))
    if path == "table":  # the connection table holds unfiltered counts only
        rois = confidence = None
    if path in ("roi_table", "roi_major"):  # the per-ROI table and its copy's runs: counts without confidence
        confidence = None
    if path == "roi_major" and not rois:  # the copy's runs answer a ROI filter
        rois = draw(st.lists(st.sampled_from(sorted(ROI_CODES)), min_size=1, max_size=3, unique=True))
    pre = draw(st.none() | ids_strategy)
    post = draw(st.none() | ids_strategy)
    if path == "index" and pre is None and post is None:
        pre = draw(ids_strategy)
    return dict(
        path=path, rois=rois, confidence=confidence,
        min_weight=draw(st.sampled_from([1, 2, 3, 5, 8])),
        pre=pre, post=post,
        pre_container=draw(st.sampled_from(CONTAINERS_L)),
        post_container=draw(st.sampled_from(CONTAINERS_L)),
        chunk_rows=draw(st.sampled_from(CHUNKS)),
        partition_chunks=draw(st.sampled_from(PARTITIONS)),
        kind=draw(st.sampled_from(["sync", "threads", "distributed"])),
    )


#: containers of body IDs that must all mean the same selection
CONTAINERS = {
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "array": lambda x: np.asarray(x, dtype=np.int64),
    "array32": lambda x: np.asarray(x, dtype=np.int32),
    "uint64": lambda x: np.asarray(x, dtype=np.uint64),
    "series": lambda x: pd.Series(x, dtype=np.int64),
    "index": pd.Index,
    "generator": lambda x: (int(v) for v in x),
    "dict_keys": lambda x: dict.fromkeys(x).keys(),
}
CONTAINERS_L = sorted(CONTAINERS)


def _wrap(ids, container: str):
    return None if ids is None else CONTAINERS[container](ids)


SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# ----------------------------------------------------------------------------- property: aggregate


#: every aggregation of one case; the path each one must take when ``path`` is forced
APIS = ("adjacency-bodyId", "adjacency-type", "adjacency-instance", "pair_counts", "pair_counts-by_roi",
        "pair_counts-parquet")


@SETTINGS
@given(case=cases())
def test_aggregations_exact_on_every_path(raw, stores, client, case):
    """Every aggregation of a drawn case equals the pandas reference, on the forced path."""
    neurons, syn = raw
    conn = stores[case["chunk_rows"]]
    kw = dict(rois=case["rois"], confidence=case["confidence"], min_weight=case["min_weight"])

    def sel():  # a fresh container per call (generators are read once)
        return _wrap(case["pre"], case["pre_container"]), _wrap(case["post"], case["post_container"])

    for api in APIS:
        if api == "pair_counts-parquet" and len(conn.partitions(conn.chunk_rows * case["partition_chunks"])) > 60:
            continue  # one file per partition: keep the example fast
        pre, post = sel()
        with running(case["kind"], client, case["partition_chunks"]), forced_path(case["path"]) as taken:
            if api.startswith("adjacency"):
                got = A.adjacency(conn, pre, post, by=api.split("-")[1], **kw)
            elif api == "pair_counts-parquet":
                with tempfile.TemporaryDirectory() as d:
                    got = A.pair_counts(conn, pre=pre, post=post, output=f"{d}/out", **kw).compute()
                    got = got.sort_values(["pre", "post"]).reset_index(drop=True)
            else:
                got = A.pair_counts(conn, pre=pre, post=post, by_roi=api == "pair_counts-by_roi", **kw)
        want_path = case["path"]
        if api == "pair_counts-by_roi" and case["path"] == "table":
            want_path = "scan"
        if case["path"] == "roi_table" and not case["rois"] and api != "pair_counts-by_roi":
            want_path = "scan"  # no ROI in the question: the connection table would answer it (switched off)
        if case["path"] == "roi_major" and api == "pair_counts-by_roi":
            want_path = "roi_table"  # counts split by ROI: the per-ROI table, not the copy
        if api != "pair_counts-parquet":  # the out-of-core result always scans
            assert _path_of(taken) == want_path, (api, taken, case)
        if api.startswith("adjacency"):
            rows, cols, ref = ref_adjacency(neurons, syn, by=api.split("-")[1], pre_ids=case["pre"],
                                            post_ids=case["post"], **kw)
            assert list(got.coords["pre"].values) == rows, api
            assert list(got.coords["post"].values) == cols, api
            mat = dense_of(got)
            assert mat.dtype == np.int64, api
            assert np.array_equal(mat, ref), (api, case)
        else:
            ref = ref_pairs(neurons, syn, pre_ids=case["pre"], post_ids=case["post"],
                            by_roi=api == "pair_counts-by_roi", **kw)
            assert list(got.columns) == list(ref.columns), api
            assert got["weight"].dtype == np.int64, api
            assert np.array_equal(got.to_numpy(np.int64), ref.to_numpy(np.int64)), (api, case)


def test_min_weight_by_type_does_not_depend_on_partitioning(raw, stores):
    """The reported case: a ROI filter (scan path) and min_weight=3 on partial sums."""
    neurons, syn = raw
    conn = stores[7]
    _, _, ref = ref_adjacency(neurons, syn, by="type", rois=["SUP", "R2"], confidence=None, min_weight=3,
                              pre_ids=None, post_ids=None)
    for k in (1, 3, 1000):
        with dask.config.set({"connectome_dask.partition_chunks": k, "scheduler": "sync"}):
            got = dense_of(conn.adjacency(by="type", rois=["SUP", "R2"], min_weight=3, progress=False))
        assert (int((got > 0).sum()), int(got.sum())) == (int((ref > 0).sum()), int(ref.sum())), k
        assert np.array_equal(got, ref), k


def test_group_counts_min_weight_exact(raw, stores):
    """``group_counts`` on its own: any neuron -> group coding, seams inside pairs."""
    neurons, syn = raw
    codes = (np.arange(N_NEURONS) * 7 % 5).astype(np.int64)
    codes[::9] = -1
    w = ref_pairs(neurons, syn, confidence=0.25, min_weight=4)
    ref = np.zeros((5, 5), np.int64)
    a, b = codes[w["pre"].to_numpy()], codes[w["post"].to_numpy()]
    ok = (a >= 0) & (b >= 0)
    np.add.at(ref, (a[ok], b[ok]), w["weight"].to_numpy()[ok])
    for chunk_rows in CHUNKS:
        for k in PARTITIONS:
            with dask.config.set({"connectome_dask.partition_chunks": k, "scheduler": "sync"}):
                got = A.group_counts(stores[chunk_rows], codes, codes, 5, 5, confidence=0.25, min_weight=4,
                                     progress=False)
            assert np.array_equal(got, ref), (chunk_rows, k)


def test_by_roi_with_nothing_selected(stores):
    """An empty scan result keeps its by-ROI columns."""
    conn = stores[7]
    with dask.config.set({"connectome_dask.use_pair_table": False, "scheduler": "sync"}):
        df = A.pair_counts(conn, rois=["R0"], confidence=1.5, by_roi=True, progress=False)
    assert list(df.columns) == ["pre", "post", "roi", "weight"] and len(df) == 0


# ----------------------------------------------------------------------------- property: queries


def ref_fetch_adjacencies(neurons, syn, pre_ids, post_ids, rois, min_roi_weight, min_total_weight):
    """neuPrint's documented fetch_adjacencies on the raw rows (primary ROIs; NotPrimary = no ROI)."""
    body = neurons["bodyId"].to_numpy()
    pre_sel = set(body) if pre_ids is None else set(pre_ids)
    post_sel = set(body) if post_ids is None else set(post_ids)
    if rois:  # as neuPrint: each side must also touch one of the ROIs (any site, here roi_post)
        codes = sorted({c for r in rois for c in ROI_CODES[r]})
        s_in = syn[syn["roi_post"].isin(codes)]
        touching = set(body[s_in["pre"]]) | set(body[s_in["post"]])
        pre_sel &= touching
        post_sel &= touching
    s = syn[np.isin(body[syn["pre"]], list(pre_sel)) & np.isin(body[syn["post"]], list(post_sel))]
    name = np.array([*ROI_NAMES, "NotPrimary"], dtype=object)
    s = s.assign(bodyId_pre=body[s["pre"]], bodyId_post=body[s["post"]], roi=name[s["roi_post"].to_numpy()])
    tot = s.groupby(["bodyId_pre", "bodyId_post"]).size().rename("total")
    rr = s.groupby(["bodyId_pre", "bodyId_post", "roi"]).size().rename("weight").reset_index()
    rr = rr.join(tot, on=["bodyId_pre", "bodyId_post"])
    if rois:
        rr = rr[rr["roi"].isin(rois)]
    rr = rr[(rr["weight"] >= min_roi_weight) & (rr["total"] >= max(min_total_weight, min_roi_weight))]
    rr = rr.sort_values(["bodyId_pre", "bodyId_post", "weight", "roi"], ascending=[True, True, False, True])
    return rr[["bodyId_pre", "bodyId_post", "roi", "weight"]].reset_index(drop=True)


def ref_synapse_connections(neurons, syn, pre_ids, post_ids, confidence, min_total_weight):
    body = neurons["bodyId"].to_numpy()
    s = _syn_keep(neurons, syn, None, None, pre_ids, post_ids)
    tot = s.groupby(["pre", "post"])["pre"].transform("size")
    s = s[(tot >= min_total_weight).to_numpy()]
    if confidence is not None:
        s = s[s["confidence"].to_numpy().astype(np.float64) > confidence]
    return pd.DataFrame({"bodyId_pre": body[s["pre"]], "bodyId_post": body[s["post"]],
                         "x_pre": s["x"].to_numpy(), "confidence_pre": s["confidence"].to_numpy()})


@st.composite
def query_cases(draw):
    pre = draw(st.none() | ids_strategy)
    post = draw(st.none() | ids_strategy)
    if pre is None and post is None:
        pre = draw(ids_strategy)
    return dict(
        path=draw(st.sampled_from(["index", "roi_table", "scan"])),
        api=draw(st.sampled_from(["fetch_adjacencies", "fetch_synapse_connections"])),
        pre=pre, post=post,
        pre_container=draw(st.sampled_from(CONTAINERS_L)),
        post_container=draw(st.sampled_from(CONTAINERS_L)),
        rois=draw(st.none() | st.lists(st.sampled_from(ROI_NAMES), min_size=1, max_size=2, unique=True)),
        confidence=draw(st.none() | st.sampled_from(CONFIDENCES)),
        min_roi_weight=draw(st.sampled_from([1, 2, 3])),
        min_total_weight=draw(st.sampled_from([1, 3, 6])),
        chunk_rows=draw(st.sampled_from(CHUNKS)),
        partition_chunks=draw(st.sampled_from(PARTITIONS)),
        kind=draw(st.sampled_from(["sync", "threads", "distributed"])),
    )


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=query_cases())
def test_queries_exact_on_every_path(raw, stores, client, case):
    neurons, syn = raw
    conn = stores[case["chunk_rows"]]
    pre = _wrap(case["pre"], case["pre_container"])
    post = _wrap(case["post"], case["post_container"])
    with running(case["kind"], client, case["partition_chunks"]), forced_path(case["path"]):
        if case["api"] == "fetch_adjacencies":
            _, got = Q.fetch_adjacencies(pre, post, rois=case["rois"], min_roi_weight=case["min_roi_weight"],
                                         min_total_weight=case["min_total_weight"], client=conn)
            ref = ref_fetch_adjacencies(neurons, syn, case["pre"], case["post"], case["rois"],
                                        case["min_roi_weight"], case["min_total_weight"])
            cols = ["bodyId_pre", "bodyId_post", "weight"]
            assert got["roi"].tolist() == ref["roi"].tolist(), case
        else:
            # confidence 0 = no filter (documented)
            got = Q.fetch_synapse_connections(pre, post, SynapseCriteria(confidence=case["confidence"] or 0),
                                              min_total_weight=case["min_total_weight"], client=conn)
            ref = ref_synapse_connections(neurons, syn, case["pre"], case["post"], case["confidence"],
                                          case["min_total_weight"])
            got = got.sort_values(["bodyId_pre", "bodyId_post", "x_pre"], kind="stable")
            ref = ref.sort_values(["bodyId_pre", "bodyId_post", "x_pre"], kind="stable")
            cols = ["bodyId_pre", "bodyId_post", "x_pre", "confidence_pre"]
    assert len(got) == len(ref), case
    assert np.array_equal(got[cols].to_numpy(np.float64), ref[cols].to_numpy(np.float64)), case


# ----------------------------------------------------------------------------- containers of body IDs


SEL = [5, 6, 17]  # valid as body IDs and as positional indices: they name different neurons


def _pos_is_not_body(neurons):
    body = neurons["bodyId"].to_numpy()
    assert set(body[SEL]) != set(SEL)  # the test data make the two readings differ


@pytest.mark.parametrize("container", CONTAINERS_L)
def test_aggregate_selections_are_body_ids(raw, stores, container):
    neurons, syn = raw
    _pos_is_not_body(neurons)
    conn = stores[32]
    want_rows = neurons["bodyId"].to_numpy()[_selected(neurons, SEL)].tolist()
    with dask.config.set({"scheduler": "sync", "connectome_dask.progress": False}):
        W = A.adjacency(conn, CONTAINERS[container](SEL), None)
        assert W.coords["pre"].values.tolist() == want_rows
        ref = A.adjacency(conn, list(SEL), None)
        assert np.array_equal(dense_of(W), dense_of(ref))
        Wt = conn.adjacency(None, CONTAINERS[container](SEL), by="type")
        assert np.array_equal(dense_of(Wt), dense_of(conn.adjacency(None, list(SEL), by="type")))
        pc = A.pair_counts(conn, pre=CONTAINERS[container](SEL), post=CONTAINERS[container](SEL))
        assert pc.equals(A.pair_counts(conn, pre=list(SEL), post=list(SEL)))
        assert set(neurons["bodyId"].to_numpy()[pc["pre"].to_numpy()]) <= set(SEL)
        codes = np.zeros(N_NEURONS, np.int64)
        g = A.group_counts(conn, codes, codes, 1, 1, pre=CONTAINERS[container](SEL))
        assert np.array_equal(g, A.group_counts(conn, codes, codes, 1, 1, pre=list(SEL)))
        assert int(g.sum()) == int(np.isin(neurons["bodyId"].to_numpy()[syn["pre"]], SEL).sum())


@pytest.mark.parametrize("container", CONTAINERS_L)
def test_unknown_body_ids_fail_the_same_way(stores, container):
    conn = stores[32]
    with pytest.raises(KeyError, match="not in"):
        A.pair_counts(conn, pre=CONTAINERS[container]([5, 10_000]), progress=False)


@pytest.mark.parametrize("container", CONTAINERS_L)
def test_query_selections_are_body_ids(raw, stores, container):
    neurons, _ = raw
    conn = stores[32]
    with dask.config.set({"scheduler": "sync", "connectome_dask.progress": False}):
        nd, _ = Q.fetch_neurons(CONTAINERS[container](SEL), client=conn)
        assert sorted(nd["bodyId"].tolist()) == sorted(SEL)
        assert NeuronCriteria(bodyId=CONTAINERS[container](SEL)).bodyId and sorted(
            NeuronCriteria(bodyId=CONTAINERS[container](SEL)).bodyId) == sorted(SEL)
        nd_c, _ = Q.fetch_neurons(NeuronCriteria(bodyId=CONTAINERS[container](SEL)), client=conn)
        assert nd_c.equals(nd)
        _, adj = Q.fetch_adjacencies(CONTAINERS[container](SEL), None, client=conn)
        assert set(adj["bodyId_pre"]) <= set(SEL) and len(adj)
        assert adj.equals(Q.fetch_adjacencies(list(SEL), None, client=conn)[1])
        syn = Q.fetch_synapses(CONTAINERS[container](SEL), client=conn)
        assert set(syn["bodyId"]) == set(SEL)
        sc = Q.fetch_synapse_connections(CONTAINERS[container](SEL), None, client=conn)
        assert set(sc["bodyId_pre"]) <= set(SEL) and len(sc)
        assert sc.equals(Q.fetch_synapse_connections(list(SEL), None, client=conn))


@pytest.mark.parametrize("container", ["tuple", "set", "generator", "dict_keys"])
def test_roi_names_in_any_container(stores, container):
    """``rois`` read once: a generator must not be consumed by the provenance attrs first."""
    conn = stores[32]
    make = {"tuple": tuple, "set": set, "generator": lambda x: (r for r in x),
            "dict_keys": lambda x: dict.fromkeys(x).keys()}[container]
    with dask.config.set({"scheduler": "sync", "connectome_dask.progress": False}):
        want = dense_of(conn.adjacency(by="type", rois=["R0", "SUP"], min_weight=2))
        got = dense_of(conn.adjacency(by="type", rois=make(["R0", "SUP"]), min_weight=2))
    assert want.sum() > 0 and np.array_equal(got, want)


def test_confidence_threshold_compares_at_stored_precision(tmp_path):
    """A stored float32(0.3) is not above a 0.3 threshold, in adjacency as in SynapseCriteria."""
    neurons = pd.DataFrame({"bodyId": [1, 2, 3]})
    syn = pd.DataFrame({"pre": np.array([0, 0, 1], np.int32), "post": np.array([1, 2, 2], np.int32),
                        "confidence": np.array([0.3, 0.3, 0.9], np.float32)})
    conn = write_store(tmp_path / "s", neurons, syn)
    got = conn.adjacency(confidence=0.3, progress=False)
    expected = int((syn["confidence"] > np.float32(0.3)).sum())  # float32 comparison
    assert expected == 1
    assert int(got.data.sum()) == expected
