"""neuprint's Client on a store: default-client rules (as neuprint-python's), methods, inject_client."""

from __future__ import annotations

import gc

import pytest

import connectome_dask as cd
import connectome_dask.neuprint as neuprint
from connectome_dask.neuprint import client as npc


@pytest.fixture(autouse=True)
def _fresh_registry():
    npc._clients.clear()
    npc.clear_default_client()
    yield
    npc._clients.clear()
    npc.clear_default_client()


def test_first_client_becomes_default(small_store):
    with pytest.raises(neuprint.NoDefaultClientError, match="haven't yet created a Client"):
        neuprint.default_client()
    c = neuprint.Client(small_store.path, "hemibrain:v1.2.1", token="ignored", verify=False)
    assert neuprint.default_client() is c
    assert c.conn.path == small_store.conn.path and c.dataset == "hemibrain:v1.2.1"
    assert c in neuprint.list_all_clients()
    assert repr(c).startswith('Client("') and "verify=False" in repr(c)


def test_two_different_clients_need_an_explicit_default(small_store):
    a = neuprint.Client(small_store.conn, "a")
    b = neuprint.Client(small_store.conn, "b")
    with pytest.raises(RuntimeError, match="more than one Client exists"):  # neuprint's error type
        neuprint.default_client()
    with pytest.raises(neuprint.NoDefaultClientError):
        neuprint.fetch_neurons(None)
    neuprint.set_default_client(b)
    assert neuprint.default_client() is b
    neuprint.set_default_client(None)
    with pytest.raises(RuntimeError):
        neuprint.default_client()
    # an explicit client always works
    n, _ = neuprint.fetch_neurons(None, client=a)
    assert len(n) > 0
    del a
    gc.collect()
    assert neuprint.default_client() is b  # the only live client is chosen again


def test_equal_clients_share_the_default(small_store):
    a = neuprint.Client(small_store.conn, "x")
    b = neuprint.Client(str(small_store.path), "x")
    assert a == b and hash(a) == hash(b)
    assert neuprint.default_client() in (a, b)


def test_empty_server_is_the_default_connectome(small_store):
    cd.set_default_connectome(small_store.conn)
    c = neuprint.Client("", "ds", "TOKEN")
    assert c.conn is small_store.conn
    cd.set_default_connectome(None)
    with pytest.raises(cd.StoreError):
        neuprint.Client("")
    with pytest.raises(TypeError):
        neuprint.Client(42)


def test_every_fetch_function_is_a_method(small_store):
    import neuprint as real

    c = neuprint.Client(small_store.conn)
    # every query of neuprint-python's top level that a store can answer
    unsupported = {"fetch_custom_neurons", "fetch_mitochondria", "fetch_synapses_and_closest_mitochondria",
                   "fetch_connection_mitochondria"}
    names = [n for n in dir(real) if n.startswith("fetch_") and n not in unsupported]
    for name in names:
        assert callable(getattr(neuprint, name)), name
        if name not in ("fetch_skeleton",):
            assert callable(getattr(c, name)), name
    for name in ("fetch_skeleton", "fetch_version", "fetch_datasets", "fetch_custom"):
        assert callable(getattr(c, name))
    a, ra = c.fetch_neurons("EPG")
    b, rb = neuprint.fetch_neurons("EPG", client=c)
    assert a.drop(columns=["roiInfo"]).equals(b.drop(columns=["roiInfo"])) and ra.equals(rb)
    assert c.primary_rois == sorted(small_store.rois["primary"])
    assert set(c.all_rois) >= set(small_store.rois["names"])
    assert c.meta["primaryRois"] == c.primary_rois
    assert list(c.fetch_datasets()) == [c.dataset]


def test_fetch_custom_names_what_to_use(small_store):
    c = neuprint.Client(small_store.conn)
    with pytest.raises(NotImplementedError, match="fetch_neurons"):
        c.fetch_custom("MATCH (n:Neuron) RETURN n.bodyId")
    with pytest.raises(NotImplementedError, match="fetch_adjacencies"):
        neuprint.fetch_custom("MATCH (n) RETURN n")


def test_inject_client(small_store):
    @neuprint.inject_client
    def n_bodies(*, client=None):
        return client.conn.n_neurons

    with pytest.raises(neuprint.NoDefaultClientError):
        n_bodies()
    c = neuprint.Client(small_store.conn)
    assert n_bodies() == n_bodies(client=c) == small_store.conn.n_neurons
    with pytest.raises(TypeError, match="keyword-only"):
        neuprint.inject_client(lambda client=None: None)
