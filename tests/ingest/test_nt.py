"""Neurotransmitters: per-synapse probabilities round trip; neuron / connection calls, signs, inprop.

References are pandas computations on the fixture file read back in the test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest

from connectome_dask.aggregate import adjacency
from connectome_dask.compute import nt as NT
from connectome_dask.ingest import ingest

from . import _releases as R

CANON = {"gaba": "gaba", "ach": "ach", "glut": "glut", "oct": "oct", "ser": "ser", "da": "da"}
SIGN = {"ach": 1, "gaba": -1, "glut": -1}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nt")
    syn = R.connectome(n_syn=600, n_neurons=15, seed=3)
    rel = R.write_flywire(syn, tmp / "rel")
    src = feather.read_table(rel / "flywire_synapses_783.feather").to_pandas()
    src["neuropil"] = src["neuropil"].astype(str)
    small = ingest(rel, tmp / "small", chunk_rows=16, progress=False)
    big = ingest(rel, tmp / "big", progress=False)
    return src, small, big


def ref_neuron(src: pd.DataFrame, weight: str | None = None) -> pd.DataFrame:
    g = src.assign(**{c: src[c].astype(np.float64) for c in R.NT})
    if weight:
        w = g[weight].astype(np.float64)
        num = g[R.NT].mul(w, axis=0).groupby(g["pre_pt_root_id"]).sum()
        means = num.div(w.groupby(g["pre_pt_root_id"]).sum(), axis=0)
    else:
        means = g.groupby("pre_pt_root_id")[R.NT].mean()
    means["top_nt"] = means[R.NT].idxmax(axis=1).map(CANON)
    return means


@pytest.mark.parametrize("weight", [None, "cleft_score"])
def test_neuron_nt_mean_then_argmax(release, weight):
    src, small, big = release
    ref = ref_neuron(src, weight)
    got = NT.neuron_nt(small, weight=weight, progress=False).set_index("bodyId").loc[ref.index]
    for c in R.NT:
        np.testing.assert_allclose(got[f"nt_{c}"].to_numpy(), ref[c].to_numpy(), rtol=1e-12)
    assert got["top_nt"].tolist() == ref["top_nt"].tolist()
    assert got["n_synapses"].tolist() == src.groupby("pre_pt_root_id").size().loc[ref.index].tolist()
    # identical whatever the chunk / partition size
    other = NT.neuron_nt(big, weight=weight, progress=False).set_index("bodyId").loc[ref.index]
    pd.testing.assert_frame_equal(got, other)


def test_connection_nt(release):
    src, small, big = release
    g = src.assign(**{c: src[c].astype(np.float64) for c in R.NT})
    ref = g.groupby(["pre_pt_root_id", "post_pt_root_id"])[R.NT].mean()
    ref["n"] = g.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    ref["nt"] = ref[R.NT].idxmax(axis=1).map(CANON)
    got = NT.connection_nt(small, progress=False)
    body = small.neurons["bodyId"].to_numpy()
    got.index = pd.MultiIndex.from_arrays([body[got["pre"]], body[got["post"]]])
    got = got.loc[ref.index]
    assert got["weight"].tolist() == ref["n"].tolist()
    assert got["nt"].tolist() == ref["nt"].tolist()
    for c in R.NT:
        np.testing.assert_allclose(got[f"nt_{c}"].to_numpy(), ref[c].to_numpy(), rtol=1e-12)
    assert len(NT.connection_nt(small, min_weight=3, progress=False)) == int((ref["n"] >= 3).sum())


def _dense_ref(src, sign_of=None, normalize=False, group=None):
    """Neuron x neuron (or group x group) reference with pandas."""
    df = src[["pre_pt_root_id", "post_pt_root_id"]].rename(columns={"pre_pt_root_id": "pre",
                                                                     "post_pt_root_id": "post"})
    w = pd.Series(1.0, index=df.index)
    if sign_of is not None:
        w = w * df["pre"].map(sign_of).astype(float)
    df = df.assign(w=w)
    if group is not None:
        df = df.assign(pre=df["pre"].map(group), post=df["post"].map(group))
    mat = df.pivot_table(index="pre", columns="post", values="w", aggfunc="sum", fill_value=0.0)
    if normalize:
        tot = src.groupby("post_pt_root_id").size()
        if group is not None:
            tot = tot.groupby(tot.index.map(group)).sum()
        mat = mat.div(tot.loc[mat.columns].to_numpy(), axis=1)
    return mat


def test_signed_adjacency_by_body_and_nt_groups(release):
    src, small, _ = release
    top = ref_neuron(src)["top_nt"]
    sign_of = top.map(lambda t: SIGN.get(t, 1))
    A = adjacency(small, sign="nt", progress=False)
    ref = _dense_ref(src, sign_of=sign_of)
    got = pd.DataFrame(A.data.todense(), index=A.coords["pre"].values, columns=A.coords["post"].values)
    got = got.loc[ref.index, ref.columns]
    np.testing.assert_array_equal(got.to_numpy(), ref.to_numpy())
    assert (got.to_numpy() < 0).any() and (got.to_numpy() > 0).any()
    # by="nt": groups are the neuron calls (neurons without outputs have no call)
    B = adjacency(small, by="nt", sign="nt", progress=False)
    calls = top.reindex(np.unique(np.concatenate([src["pre_pt_root_id"], src["post_pt_root_id"]])))
    ref = _dense_ref(src[src["post_pt_root_id"].isin(top.index)], sign_of=sign_of, group=calls)
    got = pd.DataFrame(B.values, index=B.coords["pre"].values, columns=B.coords["post"].values)
    np.testing.assert_array_equal(got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy())
    assert sorted(got.index) == sorted(ref.index)


def test_sign_table_override(release):
    src, small, _ = release
    top = ref_neuron(src)["top_nt"]
    flip = {"ach": -1, "gaba": 1, "glut": 1}
    A = adjacency(small, sign="nt", signs={"acetylcholine": -1, "GABA": 1, "glut": 1}, progress=False)
    ref = _dense_ref(src, sign_of=top.map(lambda t: flip.get(t, 1)))
    got = pd.DataFrame(A.data.todense(), index=A.coords["pre"].values, columns=A.coords["post"].values)
    np.testing.assert_array_equal(got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy())
    with pytest.raises(ValueError, match="must be \\+1 or -1"):
        adjacency(small, sign="nt", signs={"ach": 2}, progress=False)
    with pytest.raises(ValueError, match="unknown transmitter"):
        adjacency(small, sign="nt", signs={"coffee": 1}, progress=False)


def test_normalize_post_input_fractions(release):
    src, small, _ = release
    A = adjacency(small, normalize="post", progress=False)
    ref = _dense_ref(src, normalize=True)
    got = pd.DataFrame(A.data.todense(), index=A.coords["pre"].values, columns=A.coords["post"].values)
    np.testing.assert_allclose(got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(got.sum(axis=0).loc[ref.columns].to_numpy(), 1.0)  # all inputs counted
    # grouped by type, signed and normalised together
    types = small.neurons.set_index("bodyId")["type"]
    top = ref_neuron(src)["top_nt"]
    T = adjacency(small, by="type", sign="nt", normalize="post", progress=False)
    ref = _dense_ref(src, sign_of=top.map(lambda t: SIGN.get(t, 1)), normalize=True, group=types)
    got = pd.DataFrame(T.values, index=T.coords["pre"].values, columns=T.coords["post"].values)
    np.testing.assert_allclose(got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy(), rtol=1e-12)


def test_neuron_table_calls_when_no_probabilities(tmp_path):
    syn = R.connectome(n_syn=300, n_neurons=10, seed=5)
    rel = R.write_codex(syn, tmp_path / "rel")  # Codex neurons.csv.gz: nt_type, uppercase
    ids = R.neuron_ids(syn)
    calls = np.array(["ACH", "GABA", "GLUT", "DA", "SER"])[np.arange(len(ids)) % 5]
    nt = pd.read_csv(rel / "neurons.csv.gz")
    nt["nt_type"] = nt["root_id"].map(dict(zip(ids, calls, strict=True)))
    nt.to_csv(rel / "neurons.csv.gz", index=False)
    conn = ingest(rel, tmp_path / "store", progress=False)
    sign_of = pd.Series({b: {"ACH": 1, "GABA": -1, "GLUT": -1}.get(c, 1) for b, c in zip(ids, calls, strict=True)})
    A = adjacency(conn, sign="nt", progress=False)
    df = syn.assign(w=syn["pre"].map(sign_of))
    ref = df.pivot_table(index="pre", columns="post", values="w", aggfunc="sum", fill_value=0)
    got = pd.DataFrame(A.data.todense(), index=A.coords["pre"].values, columns=A.coords["post"].values)
    np.testing.assert_array_equal(got.loc[ref.index, ref.columns].to_numpy(), ref.to_numpy())
    assert list(NT.nt_calls(conn)[:5]) == ["ach", "gaba", "glut", "da", "ser"]
