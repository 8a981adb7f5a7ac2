"""One cell-type order: ``adjacency(by=...)``, nested matrices and the type heatmap agree.

The counts are checked against a pandas groupby of the synapse table built
here; the expected label order is written out by hand (the natural order:
leading letters case-insensitive, then the number, labels without a number
after those with one), not derived from the package's sort key.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import connectome_dask as cd  # noqa: E402
from connectome_dask.aggregate import adjacency  # noqa: E402
from connectome_dask.labels import natural_key, natural_type_order  # noqa: E402

#: the types of the test store, in no particular order
TYPES = ["ER10", "ER", "Pbt", "ER2", "EPG", "er3", "KC", "ER1"]
#: their natural order, by hand: EPG (letters "EPG" < "ER"), the ER family by
#: number (case-insensitive prefix: er3 sits between ER2 and ER10), ER without
#: a number last in its family, then KC, Pbt
NATURAL = ["EPG", "ER1", "ER2", "er3", "ER10", "ER", "KC", "Pbt"]
#: what a lexicographic sort gives (the order ``by="type"`` used to have)
LEXICOGRAPHIC = ["EPG", "ER", "ER1", "ER10", "ER2", "KC", "Pbt", "er3"]

N_NEURONS = 60
N_SYNAPSES = 6_000


def _raw(type_dtype: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    types = np.array([TYPES[i % len(TYPES)] for i in range(N_NEURONS)], dtype=object)
    rng.shuffle(types)
    types[rng.random(N_NEURONS) < 0.1] = None
    for t in TYPES:  # every type keeps a neuron
        if t not in set(types):
            types[int(np.flatnonzero(pd.isna(types))[0])] = t
    group = np.array([f"G{g}" for g in rng.choice([1, 2, 10, 11], N_NEURONS)], dtype=object)
    layer = rng.choice([10, 2, 1], N_NEURONS).astype(np.int64)
    neurons = pd.DataFrame({
        "bodyId": (np.arange(N_NEURONS) * 7 + 1000).astype(np.int64),
        "type": pd.array(types, dtype=type_dtype),
        "group": pd.array(group, dtype=type_dtype),
        "layer": layer,
    })
    # pairs drawn from a pool, so pairs carry several synapses
    pool = rng.integers(0, N_NEURONS, size=(400, 2))
    pick = pool[rng.integers(0, len(pool), N_SYNAPSES)]
    syn = pd.DataFrame({
        "pre": pick[:, 0].astype(np.int32),
        "post": pick[:, 1].astype(np.int32),
        "confidence": rng.random(N_SYNAPSES).astype(np.float32),
    })
    return neurons, syn


@pytest.fixture(scope="module", params=["object", "string"])
def store(request, tmp_path_factory):
    neurons, syn = _raw(request.param)
    path = tmp_path_factory.mktemp(f"order-{request.param}") / "s"
    conn = cd.write_store(path, neurons, syn, {"name": "order"}, chunk_rows=512)
    return conn, neurons, syn


def _reference(neurons: pd.DataFrame, syn: pd.DataFrame, by: str) -> pd.DataFrame:
    """Synapse counts per (pre label, post label), neurons without a label left out."""
    lab = neurons[by].astype(object).to_numpy()
    df = pd.DataFrame({"pre": lab[syn["pre"].to_numpy()], "post": lab[syn["post"].to_numpy()]}).dropna()
    return df.groupby(["pre", "post"]).size().unstack(fill_value=0)


def test_the_expected_lists_are_the_package_order():
    # the hand-written order is the labels module's order, and not the lexicographic one
    assert natural_type_order(TYPES) == sorted(TYPES, key=natural_key) == NATURAL
    assert sorted(TYPES) == LEXICOGRAPHIC != NATURAL


def test_adjacency_by_type_follows_the_natural_order(store):
    conn, neurons, syn = store
    A = adjacency(conn, by="type", progress=False)
    assert list(A.coords["pre"].values) == NATURAL
    assert list(A.coords["post"].values) == NATURAL
    ref = _reference(neurons, syn, "type").reindex(index=NATURAL, columns=NATURAL, fill_value=0)
    assert np.array_equal(np.asarray(A.values), ref.to_numpy())
    # the same counts as before, only the axes moved: in lexicographic order they match too
    lex = A.sel(pre=LEXICOGRAPHIC, post=LEXICOGRAPHIC)
    assert np.array_equal(np.asarray(lex.values), ref.loc[LEXICOGRAPHIC, LEXICOGRAPHIC].to_numpy())
    n = neurons["type"].astype(object).value_counts()
    assert A.coords["n_neurons_pre"].values.tolist() == [int(n[t]) for t in NATURAL]
    # the same order on both whole-brain read paths
    assert A.equals(adjacency(conn, by="type", method="scan", progress=False))


def test_each_axis_keeps_only_its_types_in_natural_order(store):
    conn, neurons, syn = store
    typ = neurons["type"].astype(object)
    pre = neurons["bodyId"][typ.isin(["ER10", "ER", "ER2"])].tolist()
    post = neurons["bodyId"][typ.isin(["Pbt", "er3", "EPG"])].tolist()
    A = adjacency(conn, pre, post, by="type", min_weight=2, progress=False)
    assert list(A.coords["pre"].values) == ["ER2", "ER10", "ER"]
    assert list(A.coords["post"].values) == ["EPG", "er3", "Pbt"]
    for method in ("scan", "index", "table"):  # the same on every read path
        assert A.equals(adjacency(conn, pre, post, by="type", min_weight=2, method=method, progress=False))
    lab = typ.to_numpy()
    w = syn.groupby(["pre", "post"]).size().rename("w").reset_index()
    w = w[(w["w"] >= 2) & np.isin(w["pre"], np.flatnonzero(typ.isin(["ER10", "ER", "ER2"])))
          & np.isin(w["post"], np.flatnonzero(typ.isin(["Pbt", "er3", "EPG"])))]
    ref = (pd.DataFrame({"pre": lab[w["pre"].to_numpy()], "post": lab[w["post"].to_numpy()],
                         "w": w["w"].to_numpy()})
           .groupby(["pre", "post"])["w"].sum().unstack(fill_value=0)
           .reindex(index=["ER2", "ER10", "ER"], columns=["EPG", "er3", "Pbt"], fill_value=0))
    assert np.array_equal(np.asarray(A.values), ref.to_numpy())


def test_other_string_columns_natural_numeric_columns_numeric(store):
    conn, neurons, syn = store
    G = adjacency(conn, by="group", progress=False)
    assert list(G.coords["pre"].values) == ["G1", "G2", "G10", "G11"]  # lexicographic: G1, G10, G11, G2
    ref = _reference(neurons, syn, "group").reindex(index=G.coords["pre"].values, columns=G.coords["post"].values)
    assert np.array_equal(np.asarray(G.values), ref.to_numpy())
    L = adjacency(conn, by="layer", progress=False)
    assert L.coords["pre"].values.tolist() == [1, 2, 10]  # numbers by value, not as strings
    ref = _reference(neurons, syn, "layer").reindex(index=[1, 2, 10], columns=[1, 2, 10])
    assert np.array_equal(np.asarray(L.values), ref.to_numpy())


def test_nested_matrix_and_type_heatmap_use_the_same_order(store):
    conn, neurons, syn = store
    A = adjacency(conn, by="type", progress=False)
    m = cd.NestedMatrix.from_synapses(conn, weight_mode="count", progress=False)
    assert list(m.type_boundaries) == NATURAL
    assert list(m.sum_type_matrix.index) == list(m.sum_type_matrix.columns) == NATURAL
    assert np.array_equal(m.sum_type_matrix.to_numpy(), np.asarray(A.values, dtype=np.float64))
    fig, ax = cd.plot_type_heatmap(conn, None, log=False, figsize=(3, 3), dpi=50)
    try:
        assert [t.get_text() for t in ax.get_yticklabels()] == NATURAL
        assert [t.get_text() for t in ax.get_xticklabels()] == NATURAL
        assert np.array_equal(np.asarray(ax.images[0].get_array()), np.asarray(A.values, dtype=np.float64))
    finally:
        plt.close(fig)
    # drawing the DataArray itself shows the same picture
    fig, ax = cd.plot_type_heatmap(A, None, log=False, figsize=(3, 3), dpi=50)
    try:
        assert np.array_equal(np.asarray(ax.images[0].get_array()), np.asarray(A.values, dtype=np.float64))
    finally:
        plt.close(fig)


def test_digit_only_labels_sort_by_number_before_lettered_ones():
    from connectome_dask.labels import natural_type_order

    labels = ["100", "9", "ER2", "20", "(unknown)", "ER"]
    want = sorted(["100", "9", "20"], key=int) + ["(unknown)", "ER2", "ER"]
    assert natural_type_order(labels) == want


def test_an_edited_type_column_is_grouped_as_edited(store):
    """Labels of a store's Arrow column are kept while it lives; an edit (a new column) is factorized again."""
    conn, neurons, syn = store
    first = adjacency(conn, by="type", progress=False)
    again = cd.open(conn.path, set_default=False)  # another connectome of the same generation
    assert adjacency(again, by="type", progress=False).equals(first)
    edited = neurons.copy()
    i = int(np.flatnonzero(edited["type"].eq("KC").fillna(False).to_numpy(bool))[0])
    edited.loc[i, "type"] = "ER4"  # one KC neuron (of several) becomes a new type
    again.neurons.loc[i, "type"] = "ER4"
    A = adjacency(again, by="type", progress=False)
    order = ["EPG", "ER1", "ER2", "er3", "ER4", "ER10", "ER", "KC", "Pbt"]  # by hand, as NATURAL
    assert list(A.coords["pre"].values) == order
    ref = _reference(edited, syn, "type").reindex(index=order, columns=order, fill_value=0)
    assert np.array_equal(np.asarray(A.values), ref.to_numpy())
    # the first connectome's table is untouched, and so are its groups
    assert adjacency(conn, by="type", progress=False).equals(first)
