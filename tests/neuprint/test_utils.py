"""connectome_dask.neuprint.utils against neuprint-python's own pure functions (same inputs, equal frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectome_dask.errors import UnknownColumnError
from connectome_dask.neuprint import utils as ours

npu = pytest.importorskip("neuprint.utils")


def _conn_df(seed: int, n: int = 60, dtype=np.int64) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    types = np.array(["PEN_a(PEN1)", "PEN_b(PEN2)", "Delta7", "EPG", "FB4Y"])
    pre = rng.choice([734581598, 911911193, 911911004, 5813061383, 387023620], n)
    post = rng.choice([387023620, 509410587, 1002507131, 5813056953, 734581598], n)
    tmap = {b: types[i % len(types)] for i, b in enumerate(sorted(set(pre) | set(post)))}
    return pd.DataFrame({
        "bodyId_pre": pre, "bodyId_post": post,
        "roi": rng.choice(["PB", "EB", "FB"], n),
        "weight": rng.integers(1, 50, n).astype(dtype),
        "type_pre": [tmap[b] for b in pre], "type_post": [tmap[b] for b in post],
    })


CASES = [
    dict(group_cols="bodyId"),
    dict(group_cols="type"),
    dict(group_cols=("bodyId_pre", "type_post")),
    dict(group_cols=["type_pre", "bodyId_post"]),
    dict(group_cols="bodyId", sort_by="type"),
    dict(group_cols="bodyId", sort_by=("type_pre", "type_post")),
    dict(group_cols="bodyId", make_square=True),
    dict(group_cols="type", make_square=True),
    dict(group_cols="bodyId", sort_by="type", make_square=True),
    dict(group_cols="bodyId", weight_col="weight"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kw", CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_connection_table_to_matrix_equals_neuprint(kw, seed):
    df = _conn_df(seed)
    want = npu.connection_table_to_matrix(df.copy(), **kw)
    got = ours.connection_table_to_matrix(df.copy(), **kw)
    pd.testing.assert_frame_equal(got, want)  # values, dtypes, row/column order, axis names


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_connection_table_to_matrix_dtype_follows_weight(dtype):
    df = _conn_df(5, dtype=dtype)
    want = npu.connection_table_to_matrix(df, "bodyId")
    got = ours.connection_table_to_matrix(df, "bodyId")
    pd.testing.assert_frame_equal(got, want)
    assert got.dtypes.unique().tolist() == [np.dtype(dtype)]


def test_connection_table_to_matrix_first_appearance_order():
    df = pd.DataFrame({"bodyId_pre": [3, 1, 3, 2], "bodyId_post": [9, 7, 8, 9], "weight": [1, 2, 3, 4]})
    m = ours.connection_table_to_matrix(df)
    # the rule stated in pandas: labels in the order of their first row
    assert m.index.tolist() == list(dict.fromkeys(df.bodyId_pre))
    assert m.columns.tolist() == list(dict.fromkeys(df.bodyId_post))
    assert m.loc[3, 9] == 1 and m.loc[2, 8] == 0


def test_connection_table_to_matrix_sums_repeated_pairs():
    df = _conn_df(3)
    m = ours.connection_table_to_matrix(df, ("bodyId_pre", "type_post"))
    ref = df.groupby(["bodyId_pre", "type_post"])["weight"].sum()
    for (a, b), w in ref.items():
        assert m.loc[a, b] == w
    assert int(m.to_numpy().sum()) == int(df.weight.sum())


def test_connection_table_to_matrix_errors():
    df = _conn_df(0)
    with pytest.raises(UnknownColumnError):
        ours.connection_table_to_matrix(df, "instance")
    with pytest.raises(ValueError, match="two column names"):
        ours.connection_table_to_matrix(df, ("bodyId_pre", "bodyId_post", "roi"))
    with pytest.raises(UnknownColumnError):
        ours.connection_table_to_matrix(df, "bodyId", sort_by="instance")


def _neurons() -> pd.DataFrame:
    return pd.DataFrame({
        "bodyId": [734581598, 911911193, 911911004, 5813061383, 387023620, 509410587, 1002507131],
        "type": ["Delta7", "Delta7", None, "EPG", "PEN_b(PEN2)", "PEN_a(PEN1)", "FB4Y"],
        "instance": ["a", "b", "c", "d", "e", "f", "g"],
        "status": ["Traced"] * 7,
    })


@pytest.mark.parametrize("props", ["type", ["type", "instance"], ("instance",), ["status", "type"],
                                   np.array(["type"]), pd.Series(["instance", "type"])])
def test_merge_neuron_properties_equals_neuprint(props):
    conn_df = _conn_df(1).drop(columns=["type_pre", "type_post"])
    nd = _neurons()
    want = npu.merge_neuron_properties(nd, conn_df.copy(), props)
    got = ours.merge_neuron_properties(nd, conn_df.copy(), props)
    pd.testing.assert_frame_equal(got, want)


def test_merge_neuron_properties_is_idempotent_like_neuprint():
    conn_df = _conn_df(2)  # already has type_pre / type_post (different values)
    nd = _neurons()
    want = npu.merge_neuron_properties(nd, conn_df.copy(), ["type", "instance"])
    got = ours.merge_neuron_properties(nd, conn_df.copy(), ["type", "instance"])
    pd.testing.assert_frame_equal(got, want)
    again = ours.merge_neuron_properties(nd, got, ["type", "instance"])
    pd.testing.assert_frame_equal(again, got)
    assert list(again.columns).count("type_pre") == 1


def test_merge_neuron_properties_default_and_missing_bodies():
    conn_df = pd.DataFrame({"bodyId_pre": [1, 734581598], "bodyId_post": [387023620, 2], "weight": [1, 2]})
    nd = _neurons()
    pd.testing.assert_frame_equal(ours.merge_neuron_properties(nd, conn_df),
                                  npu.merge_neuron_properties(nd, conn_df))
    with pytest.raises(UnknownColumnError):
        ours.merge_neuron_properties(nd, conn_df, "flavour")


@pytest.mark.parametrize("x", [None, 1, "PB", [1, 2], (1, 2), np.array([3, 4]), pd.Series([5]),
                               [np.int64(1), np.int64(2)], np.int64(9)])
def test_ensure_list_equals_neuprint(x):
    assert ours.ensure_list(x) == npu.ensure_list(x)


def test_ensure_list_of_a_set_is_a_list():
    # neuprint-python returns the set itself (np.asarray(set) is a 0-d object array); its docstring
    # promises a list: we return one (listed in the README)
    assert npu.ensure_list({7}) == {7}
    assert ours.ensure_list({7}) == [7]


def test_iter_batches_equals_neuprint():
    assert [list(b) for b in ours.iter_batches(range(7), 3)] == [list(b) for b in npu.iter_batches(range(7), 3)]
