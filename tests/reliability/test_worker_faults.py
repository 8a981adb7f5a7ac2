"""Worker loss on a distributed cluster of worker processes.

A worker process is SIGKILLed while it is in the middle of a task of (a)
whole-brain pair counts, (b) ``assign_rois`` writing into the store, (c) a
whole-brain ``NestedMatrix`` built from a Connectome. The nanny restarts the
worker, dask reruns the lost tasks, and every result must equal both a pure
pandas/numpy reference and an undisturbed run on the same cluster.

"The middle" is hit deterministically, not by timing: a worker plugin
(:class:`FaultInjector`) makes the task of one chosen partition wait while a
``hold`` file exists. The test waits until that task has started (a marker
file names the worker pid) *and* other partitions have finished, kills that
pid, then removes the hold so the rerun proceeds.

The cluster is the package's own :func:`connectome_dask.cluster.local_cluster`
(2 worker processes x 1 thread); its memory limit and spill thresholds are
checked here too.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import warnings
from pathlib import Path

import cloudpickle
import dask
import numpy as np
import pytest

from connectome_dask.aggregate import pair_counts
from connectome_dask.cluster import LOCAL_MEMORY_FRACTIONS, local_cluster
from connectome_dask.matrix import NestedMatrix
from connectome_dask.store import Connectome
from tests.reliability import _reliability_helpers as H

pytestmark = pytest.mark.timeout(300)

cloudpickle.register_pickle_by_value(H)


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory):
    from distributed import Client

    marker_dir = tmp_path_factory.mktemp("fault-markers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = local_cluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=60)
        fresh = client.run(_worker_memory)  # before any test restarts a worker
        client.register_plugin(H.FaultInjector(str(marker_dir)))
        yield client, marker_dir, fresh
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def markers(fault_cluster):
    client, d, _ = fault_cluster
    for p in d.iterdir():
        p.unlink()
    client.wait_for_workers(2, timeout=60)
    return d


def _in_client(client, fn, *args, **kwargs):
    # one chunk per partition, and the scan of the synapse arrays (not the
    # store's connection table, which answers unfiltered counts in few tasks):
    # many tasks, so a worker can be killed mid-job
    with client.as_current(), dask.config.set(
        {"connectome_dask.partition_chunks": 1, "connectome_dask.use_pair_table": False}
    ):
        return fn(*args, **kwargs)


def _kill_mid_task(client, d: Path, fname: str, min_start: int, fn, *args, **kwargs):
    """Run ``fn`` on the cluster; SIGKILL the worker running the held task of ``fname``.

    Returns (result, facts) where facts describe what was observed at the kill.
    """
    for p in d.iterdir():  # markers of earlier (undisturbed) runs
        p.unlink()
    hold = d / f"hold~{fname}"
    hold.write_text(str(min_start))
    prefix = f"{fname}-"

    def done_tags():
        return {t for t, _ in H.markers(d, "done") if t.startswith(prefix)}

    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        fut = pool.submit(_in_client, client, fn, *args, **kwargs)
        H.wait_for(
            lambda: fut.done() or (H.markers(d, "held") and len(done_tags()) >= 1),
            timeout=90,
            what=f"a task of {fname} held and others done",
        )
        assert not fut.done(), f"finished before the kill: {fut.exception()}"
        pids = client.run(os.getpid)
        ((tag, victim),) = H.markers(d, "held")
        assert victim in pids.values()
        victim_addr = next(a for a, p in pids.items() if p == victim)
        done_at_kill = done_tags()
        os.kill(victim, signal.SIGKILL)
        hold.unlink()
        result = fut.result(timeout=120)
    finally:
        hold.unlink(missing_ok=True)
        pool.shutdown(wait=True)
    _wait_replaced(client, victim_addr)
    new_pids = set(client.run(os.getpid).values())
    starts = H.markers(d, "start", tag)
    n_parts = len(done_tags())
    facts = {
        "victim": victim,
        "held": tag,
        "done_at_kill": done_at_kill,
        "n_parts": n_parts,
        "starts_of_held": starts,
        "new_pids": new_pids,
    }
    # the kill happened mid-job: some but not all partitions were done
    assert 1 <= len(done_at_kill) < n_parts, facts
    assert tag not in done_at_kill and tag in done_tags()
    # the held task was run again, by another process, and the worker was replaced
    assert len(starts) >= 2 and {p for _, p in starts} - {victim}, facts
    assert victim not in new_pids and len(new_pids) == 2, facts
    return result, facts


def _wait_replaced(client, victim_addr: str) -> None:
    """Wait until the scheduler lists two workers and the killed one is not among them."""
    H.wait_for(
        lambda: (lambda w: victim_addr not in w and len(w) == 2)(
            client.scheduler_info(n_workers=-1)["workers"]
        ),
        timeout=60,
        what="the nanny to restart the killed worker",
        interval=0.05,
    )


def _partitions(conn):
    with dask.config.set({"connectome_dask.partition_chunks": 1}):
        return conn.partitions()


def test_pair_counts_survive_worker_kill(fault_cluster, markers, small_store, tmp_path):
    client, _, _ = fault_cluster
    conn = small_store.conn
    parts = _partitions(conn)
    assert len(parts) >= 8
    ref = H.pair_reference(small_store.synapses)
    # the undisturbed run reads a copy: other graph keys, so nothing is reused from it
    other = Connectome(H.copy_store(small_store.path, tmp_path / "copy"))
    undisturbed = _in_client(client, pair_counts, other, progress=False)
    H.assert_pairs_equal(undisturbed, ref)
    got, facts = _kill_mid_task(
        client, markers, "_pairs_chunk", conn.n_synapses // 2, pair_counts, conn, progress=False
    )
    assert facts["n_parts"] >= 8
    H.assert_pairs_equal(got, ref)
    H.assert_pairs_equal(got, undisturbed)


def test_assign_rois_survives_worker_kill(fault_cluster, markers, small_store, tmp_path):
    client, _, _ = fault_cluster
    rs = H.slab_roiset()
    a = Connectome(H.copy_store(small_store.path, tmp_path / "a"))
    b = Connectome(H.copy_store(small_store.path, tmp_path / "b"))
    parts = _partitions(a)
    a2 = _in_client(client, a.assign_rois, rs, progress=False)
    mid = parts[len(parts) // 2][0]
    b2, facts = _kill_mid_task(
        client, markers, "_write_outputs", mid, b.assign_rois, rs, progress=False
    )
    cols = ["roi_pre", "roi_post", "x_pre", "x_post"]
    ra, rb = a2.read_synapses(cols), b2.read_synapses(cols)
    for c in ("roi_pre", "roi_post"):
        assert np.array_equal(ra[c], rb[c]), c
        assert not (rb[c] == -7).any(), "garbage of the killed (torn) write survived"
        x = rb[f"x_{c[4:]}"]
        far = H.far_from_slab_faces(x)
        assert far.mean() > 0.9
        assert np.array_equal(rb[c][far], H.slab_codes(x)[far]), c
    assert b2.roi_names == H.SLAB_NAMES
    assert b2.check() == [] and b2.unreferenced() == []
    assert b2.generation == a2.generation == small_store.conn.generation + 1


def test_nested_matrix_survives_worker_kill(fault_cluster, markers, small_store, tmp_path):
    client, _, _ = fault_cluster
    conn = small_store.conn
    parts = _partitions(conn)
    syn = small_store.synapses
    ann = small_store.neurons.rename(columns={"bodyId": "root_id", "type": "cell_type"})
    ref = NestedMatrix.from_synapses(
        syn.rename(columns={"bodyId_pre": "pre_pt_root_id", "bodyId_post": "post_pt_root_id"}),
        ann,
        weight_mode="relative_outgoing",
    )
    other = Connectome(H.copy_store(small_store.path, tmp_path / "copy"))
    undisturbed = _in_client(
        client, NestedMatrix.from_synapses, other, weight_mode="relative_outgoing", progress=False
    )
    mid = parts[len(parts) // 3][0]
    got, facts = _kill_mid_task(
        client,
        markers,
        "_pairs_chunk",
        mid,
        NestedMatrix.from_synapses,
        conn,
        weight_mode="relative_outgoing",
        progress=False,
    )
    for other in (undisturbed, ref):
        assert got.ordered_neurons == other.ordered_neurons
        assert dict(got.type_boundaries) == dict(other.type_boundaries)
    a, b = got.to_scipy(), undisturbed.to_scipy()
    assert (a != b).nnz == 0 and np.array_equal(a.data, b.data)  # bit-identical
    r = ref.to_scipy()
    assert a.shape == r.shape and abs(a - r).max() < 1e-12
    assert np.array_equal(got.sum_type_matrix.to_numpy(), undisturbed.sum_type_matrix.to_numpy())


def _worker_memory(dask_worker):
    mm = dask_worker.memory_manager
    return {
        "limit": mm.memory_limit,
        "target": mm.memory_target_fraction,
        "spill": mm.memory_spill_fraction,
        "pause": mm.memory_pause_fraction,
        "local_directory": dask_worker.local_directory,
    }


def _assert_memory_defaults(info):
    from distributed.system import MEMORY_LIMIT

    assert len(info) == 2
    for w in info.values():
        assert w["limit"] and 0 < w["limit"] <= MEMORY_LIMIT // 2 + 1, w
        assert w["target"] == LOCAL_MEMORY_FRACTIONS["target"], w
        assert w["spill"] == LOCAL_MEMORY_FRACTIONS["spill"], w
        assert w["pause"] == LOCAL_MEMORY_FRACTIONS["pause"], w
        assert "connectome-dask-" in w["local_directory"], w


def test_local_cluster_memory_limits_and_spilling(fault_cluster):
    """Fresh workers of ``local_cluster()`` have a memory limit and the documented spill thresholds."""
    client, _, fresh = fault_cluster
    _assert_memory_defaults(fresh)
    nanny_terminate = {
        n.memory_manager.memory_terminate_fraction for n in client.cluster.workers.values()
    }
    assert nanny_terminate == {LOCAL_MEMORY_FRACTIONS["terminate"]}


def test_memory_thresholds_survive_worker_restart(fault_cluster, markers):
    client, _, _ = fault_cluster
    pids = client.run(os.getpid)
    victim_addr, victim = sorted(pids.items())[0]
    os.kill(victim, signal.SIGKILL)
    _wait_replaced(client, victim_addr)
    _assert_memory_defaults(client.run(_worker_memory))
