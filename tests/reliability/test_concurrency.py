"""Two processes at once: concurrent writers, a reader during commits, a store replaced under a cache.

A helper process imports everything once and ``os.fork()``s the two
processes of each trial (so a trial costs a write, not an interpreter start).
Each test runs 50 trials in a row, all of which must pass:

* two ``assign_rois`` on the same store, released together by a pipe: at most
  one commits, every other one gets a StoreError (never a silent success),
  meta.json references only existing arrays, ``check()`` is empty, the
  generation grew by the number of successes, and the labels are exactly
  the winner's (reference labelling computed beforehand). With
  ``connectome_dask.lock_timeout`` set, the second writer (opened at a random
  moment) waits, then either commits on top of the first (if it opened after
  that commit) or gets "changed since it was opened": a writer never commits
  over a generation it did not open.
* a reader opened at generation g reads every partition (ROI codes and other
  columns, through ``read_synapses`` and the dask frame) again and again while
  another process commits g+1 and g+2: every value it gets is generation g's
  (hash-compared with a snapshot taken before), and once g+2 has removed g's
  arrays it gets a StoreError, never fill values.

And the store-identity cache key: a store re-created at the same path
(``overwrite=True``, 8,000 rows instead of 5,000) while a Connectome and a
``distributed`` LocalCluster stay open is read afresh (row count, columns,
connection table totals), and the Connectomes of the old store refuse to read
the new store's files (StoreError) instead of mixing the two. A forced
interleaving (a chunk file deleted between the existence check and the read)
must be a StoreError too, never fill values.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from connectome_dask.store import Connectome, StoreError, write_store
from tests.reliability import _reliability_helpers as H

pytestmark = pytest.mark.timeout(400)

#: races per test (CONNECTOME_DASK_RACE_TRIALS raises it for a longer stress run)
TRIALS = max(20, int(os.environ.get("CONNECTOME_DASK_RACE_TRIALS", "20")))
SEED = 777
NAMES = {"A": H.SLAB_NAMES, "B": H.Y_SLAB_NAMES}
READ_COLUMNS = ["roi_pre", "roi_post", "pre", "x_post", "confidence"]


@pytest.fixture(autouse=True)
def _sync():
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


SETUP = r"""
import hashlib
import shutil
import numpy as np
from tests.reliability import _reliability_helpers as H
from connectome_dask.store import Connectome, StoreError
CFG = json.loads(CFG_JSON)
T = CFG["target"]
dask.config.set({"connectome_dask.partition_chunks": 1})  # one chunk per partition
ROIS = {"A": H.axis_slab_roiset(0), "B": H.axis_slab_roiset(1)}


def warm():
    shutil.copytree(T, CFG["warm"])
    for v in "ABA":
        Connectome(CFG["warm"]).assign_rois(ROIS[v], progress=False)
    c = Connectome(CFG["warm"])
    for s, e in c.partitions():
        c.read_synapses(CFG["columns"], s, e)
        c.synapse_frame(CFG["columns"]).partitions[0].compute()


def writer(send, v, rfd, open_delay, lock_timeout):
    conn = Connectome(T) if open_delay is None else None
    send(ready=True)
    assert os.read(rfd, 1) == b"x"
    if conn is None:
        time.sleep(open_delay)
        conn = Connectome(T)
    opened = conn.generation
    cfg = {} if lock_timeout is None else {"connectome_dask.lock_timeout": lock_timeout}
    with dask.config.set(cfg):
        try:
            new = conn.assign_rois(ROIS[v], progress=False)
        except StoreError as e:
            send(ok=False, variant=v, opened=opened, message=str(e))
            return
    send(ok=True, variant=v, opened=opened, gen=new.generation)


def race(cmd):
    r, w = os.pipe()
    kids = [Child(writer, v, r, d, cmd.get("lock_timeout")) for v, d in zip(cmd["variants"], cmd["open_delays"])]
    for k in kids:
        m = k.recv()
        assert m and m.get("ready"), m
    os.write(w, b"xx")  # release both at once
    out = []
    for k in kids:
        status, msgs = k.wait()
        out.append({"status": status, "msgs": msgs})
    os.close(r)
    os.close(w)
    return {"writers": out}


def digests(block):
    return {c: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for c, a in block.items()}


def reader(send, wfd_done, max_passes):
    import select
    conn = Connectome(T)
    cols = CFG["columns"]
    parts = conn.partitions()
    send(opened=conn.generation, parts=parts)
    writer_done = False
    for k in range(max_passes):
        frame = k % 2 == 1
        try:
            got = []
            ddf = conn.synapse_frame(cols) if frame else None
            for i, (s, e) in enumerate(parts):
                if frame:
                    df = ddf.partitions[i].compute()
                    block = {c: df[c].to_numpy() for c in cols}
                else:
                    block = conn.read_synapses(cols, s, e)
                got.append(digests(block))
        except StoreError as e:
            send(store_error=str(e), pass_=k, after_writer=writer_done)
            return
        send(pass_=k, digests=got, after_writer=writer_done, frame=frame)
        if writer_done:
            break
        writer_done = bool(select.select([wfd_done], [], [], 0)[0])
    send(finished=True)


def commits(send, variants):
    send(go=True)
    for v in variants:
        Connectome(T).assign_rois(ROIS[v], progress=False)
        send(committed=v)


def read_race(cmd):
    r, w = os.pipe()
    rd = Child(reader, r, cmd["max_passes"])
    first = rd.recv()
    assert first and "opened" in first, first
    wr = Child(commits, cmd["variants"])
    w_status, w_msgs = wr.wait()
    os.write(w, b"d")  # tell the reader the commits are done
    r_status, r_msgs = rd.wait()
    os.close(r)
    os.close(w)
    return {"reader": {"status": r_status, "msgs": [first, *r_msgs]},
            "writer": {"status": w_status, "msgs": w_msgs}}


def handle(cmd):
    if cmd["op"] == "warm":
        warm()
        return {}
    return {"race": race, "read_race": read_race}[cmd["op"]](cmd)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny store with x-slab labels, the reference labels of both ROI sets, and the fork server."""
    root = tmp_path_factory.mktemp("concurrency")
    target = root / "store"
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        H.build_tiny_store(target, n_neurons=150, n_synapses=4000, chunk_rows=1024, seed=11)
        labels = {}
        with dask.config.set({"connectome_dask.partition_chunks": 1}):
            for v, axis in (("B", 1), ("A", 0)):
                ref = H.copy_store(target, root / f"ref{v}")
                c = Connectome(ref).assign_rois(H.axis_slab_roiset(axis), progress=False)
                labels[v] = c.read_synapses(["roi_pre", "roi_post"])
                coord = c.read_synapses([f"{'xy'[axis]}_pre"])[f"{'xy'[axis]}_pre"]
                ok = H.far_from_slab_faces(coord)
                assert np.array_equal(labels[v]["roi_pre"][ok], H.slab_codes(coord)[ok])
            Connectome(target).assign_rois(H.axis_slab_roiset(0), progress=False)
    cfg = {"target": str(target), "warm": str(root / "warm"), "columns": READ_COLUMNS}
    setup = f"CFG_JSON = {json.dumps(cfg)!r}\n" + SETUP
    with H.ForkServer(setup, timeout=600) as srv:
        srv(op="warm")
        yield {"target": target, "labels": labels, "srv": srv}


def variant_of(conn: Connectome) -> str:
    names = conn.roi_names
    for v, n in NAMES.items():
        if names == n:
            return v
    raise AssertionError(f"unexpected ROI names {names}")


def assert_consistent(target: Path, labels: dict) -> Connectome:
    """meta.json references only existing arrays, check() is empty, labels are one variant's exactly."""
    conn = Connectome(target)
    meta = json.loads((target / "meta.json").read_text())
    syn, idx = meta["synapses"]["path"], meta["index"]["path"]
    arrays = [f"{syn}/{d}" for d in meta["synapses"]["columns"].values()]
    arrays += [f"{idx}/{d}" for d in meta["index"]["by_post"].values()]
    for d in arrays:  # independent of the package: plain os.path checks
        assert os.path.isfile(target / d / "zarr.json") and not os.path.islink(target / d), f"missing {d}"
        n_chunks = -(-conn.n_synapses // conn.chunk_rows)
        assert all(os.path.isfile(target / d / "c" / str(i)) for i in range(n_chunks)), f"chunks of {d}"
    assert os.path.isfile(target / meta["rois"] / "rois.json")
    for d in meta.get("retained") or []:
        assert os.path.exists(target / d), f"retained {d} is gone already"
    assert conn.check() == []
    v = variant_of(conn)
    got = conn.read_synapses(["roi_pre", "roi_post"])
    for c in ("roi_pre", "roi_post"):
        assert np.array_equal(got[c], labels[v][c]), f"{c} is not exactly variant {v}'s labelling"
    return conn


def _outcome(w: dict) -> dict:
    errs = [m for m in w["msgs"] if "error" in m]
    assert not errs, f"a writer failed with something other than a StoreError: {errs}"
    assert w["status"] == 0, w
    (res,) = [m for m in w["msgs"] if "ok" in m]
    return res


@pytest.mark.parametrize("lock_timeout", [None, 60.0], ids=["no-wait", "lock_timeout"])
def test_two_concurrent_writers(world, lock_timeout):
    srv, target, labels = world["srv"], world["target"], world["labels"]
    rng = np.random.default_rng([SEED, 0 if lock_timeout is None else 1])
    counts = {"one committed": 0, "both committed": 0, "lock held": 0, "changed since opened": 0}
    for trial in range(TRIALS):
        g0 = Connectome(target).generation
        variants = ["A", "B"] if rng.random() < 0.5 else ["B", "A"]
        # without a timeout both open the store before the release; with one, the
        # second opens at a random moment (sometimes after the first committed)
        delays = [None, None] if lock_timeout is None else [None, float(rng.uniform(0, 0.4))]
        res = srv(op="race", variants=variants, open_delays=delays, lock_timeout=lock_timeout)
        outs = [_outcome(w) for w in res["writers"]]
        wins = [o for o in outs if o["ok"]]
        for o in outs:
            if o["ok"]:
                # a commit lands only on the generation its writer opened
                assert o["gen"] == o["opened"] + 1, (trial, outs)
            else:
                msg = o["message"]
                held = "another writer holds" in msg and f".{target.name}.lock" in msg
                changed = "changed since it was opened" in msg and str(target) in msg
                assert held or changed, (trial, msg)
                assert not (held and lock_timeout is not None), f"waited {lock_timeout} s in vain: {msg}"
                counts["lock held" if held else "changed since opened"] += 1
        assert 1 <= len(wins) <= 2, (trial, outs)
        if len(wins) == 2:
            assert lock_timeout is not None, f"two writers that opened the same generation both committed: {outs}"
            assert sorted(o["gen"] for o in wins) == [g0 + 1, g0 + 2], outs
        counts["both committed" if len(wins) == 2 else "one committed"] += 1
        conn = assert_consistent(target, labels)
        assert conn.generation == g0 + len(wins), (trial, g0, outs)
        last = max(wins, key=lambda o: o["gen"])
        assert variant_of(conn) == last["variant"], (trial, outs)
        assert conn.unreferenced() == [] and conn.stale_siblings() == []
    print(f"lock_timeout={lock_timeout}: {TRIALS}/{TRIALS} trials passed: {counts}")
    if lock_timeout is None:
        assert counts["one committed"] == TRIALS
    else:
        assert counts["changed since opened"] > 0  # the stale writer really was turned away


def _snapshot_digests(target: Path) -> list[dict]:
    conn = Connectome(target)
    out = []
    for s, e in conn.partitions():
        block = conn.read_synapses(READ_COLUMNS, s, e)
        out.append({c: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for c, a in block.items()})
    return out


def test_reader_during_commits(world):
    srv, target, labels = world["srv"], world["target"], world["labels"]
    stats = {"passes": 0, "passes while committing": 0, "frame passes": 0, "ended with StoreError": 0}
    with dask.config.set({"connectome_dask.partition_chunks": 1}):
        after = assert_consistent(target, labels)
        for trial in range(TRIALS):
            conn = after  # checked at the end of the previous trial
            g0, v0 = conn.generation, variant_of(conn)
            snap = _snapshot_digests(target)  # generation g, read before the trial
            v1 = "B" if v0 == "A" else "A"
            res = srv(op="read_race", variants=[v1, v0], max_passes=400)
            w, r = res["writer"], res["reader"]
            assert w["status"] == 0 and [m.get("committed") for m in w["msgs"] if "committed" in m] == [v1, v0], w
            msgs = r["msgs"]
            brief = [{k: v for k, v in m.items() if k != "digests"} for m in msgs]
            assert r["status"] == 0, (r["status"], brief[-5:], len(msgs))
            assert not [m for m in msgs if "error" in m], msgs
            assert msgs[0]["opened"] == g0
            passes = [m for m in msgs if "digests" in m]
            for m in passes:
                assert m["digests"] == snap, f"trial {trial}: pass {m['pass_']} read values that are not generation {g0}'s"
            errors = [m for m in msgs if "store_error" in m]
            # once g + 2 removed generation g's ROI arrays, the reader must be told so
            assert errors, f"trial {trial}: the reader kept reading generation {g0} after g+2 removed it: {msgs[-3:]}"
            assert len(errors) == 1 and msgs[-1] is errors[0]
            stats["passes"] += len(passes)
            stats["frame passes"] += sum(1 for m in passes if m["frame"])
            stats["passes while committing"] += sum(1 for m in passes if not m["after_writer"])
            stats["ended with StoreError"] += 1
            after = assert_consistent(target, labels)
            assert after.generation == g0 + 2 and variant_of(after) == v0
    print(f"{TRIALS}/{TRIALS} reader trials passed: {stats}")
    assert stats["passes while committing"] >= TRIALS  # the reads really overlapped the commits


@pytest.mark.parametrize("how", ["read_synapses", "take_synapses", "frame"])
def test_chunk_deleted_between_check_and_read(tmp_path, monkeypatch, how):
    """The interleaving the reader test can only hit by chance, forced: a newer commit's GC deletes
    the chunk files right after the reader checked they exist. The read must fail, not return fill values."""
    import connectome_dask.store.arrays as st  # the module whose reads call require_chunks

    conn, _, syn = H.build_tiny_store(tmp_path / "store", n_neurons=50, n_synapses=3000, chunk_rows=1024)
    path = str(conn._array_path("confidence"))
    want = conn.read_synapses(["confidence"], 0, 1024)["confidence"]
    assert (want != 0).all()  # fill value 0 would be visible
    orig = st.require_chunks
    deleted = []

    def check_then_gc(p, chunk_rows, chunks):
        orig(p, chunk_rows, chunks)
        if os.fspath(p) == path and not deleted:
            for i in chunks:
                os.remove(os.path.join(path, "c", str(i)))
                deleted.append(i)

    monkeypatch.setattr(st, "require_chunks", check_then_gc)
    with pytest.raises(StoreError, match="missing") as e:
        if how == "read_synapses":
            conn.read_synapses(["confidence"], 0, 1024)
        elif how == "take_synapses":
            conn.take_synapses(np.arange(0, 1024, 7), ["confidence"])
        else:
            conn.synapse_frame(["confidence"], partition_rows=1024).partitions[0].compute()
    assert deleted and path in str(e.value)


def test_column_of_fill_values_is_stored_whole(tmp_path):
    """A partition whose new values all equal the fill value (-1: no ROI) still gets its chunk files,
    so the committed column reads back (a missing chunk is an error by design)."""
    conn, _, _ = H.build_tiny_store(tmp_path / "store", n_neurons=50, n_synapses=3000, chunk_rows=512)

    def no_roi(block):
        return {"code": np.full(len(block["pre"]), -1, dtype=np.int16)}

    new = conn.write_synapse_columns(no_roi, ["pre"], {"code": "int16"}, progress=False)
    d = new._array_path("code")
    n_chunks = -(-new.n_synapses // new.chunk_rows)
    assert sorted(int(p.name) for p in (d / "c").iterdir()) == list(range(n_chunks))
    assert (new.read_synapses(["code"])["code"] == -1).all()
    assert new.check() == []


# ----------------------------------------------------------------------------- store replaced under a cache


def _tables(n_rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    neurons, syn = H.tiny_tables(120, n_rows, seed)
    return neurons, syn


def _pair_totals(conn: Connectome) -> pd.Series:
    p = conn.read_pairs()
    body = conn.body_ids
    return pd.Series(p["weight"], index=pd.MultiIndex.from_arrays([body[p["pre"]], body[p["post"]]])).sort_index()


def _ref_totals(neurons: pd.DataFrame, syn: pd.DataFrame) -> pd.Series:
    body = neurons["bodyId"].to_numpy()
    df = pd.DataFrame({"a": body[syn["pre"]], "b": body[syn["post"]]})
    s = df.groupby(["a", "b"]).size().sort_index()
    s.index.names = [None, None]
    return s.astype(np.int64)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "worker-process"])
def test_store_replaced_at_the_same_path_is_read_afresh(tmp_path, processes):
    from distributed import Client, LocalCluster

    from connectome_dask.aggregate import pair_counts

    path = tmp_path / "store"
    old_n, old_s = _tables(5000, 1)
    new_n, new_s = _tables(8000, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=processes, dashboard_address=":0")
    try:
        with Client(cluster) as client, dask.config.set(scheduler=client):
            old = write_store(path, old_n, old_s, {"name": "v1"}, chunk_rows=1024)
            # fill every cache: client-side arrays, worker-side arrays, partition reads
            assert old.synapses.shape[0].compute() == 5000
            assert int(old.synapses["pre"].sum().compute()) == int(old_s["pre"].sum())
            got = pair_counts(old, progress=False)
            assert int(got["weight"].sum()) == 5000
            scan = pair_counts(old, confidence=0.5, progress=False)  # a scan of the rows on the worker
            assert int(scan["weight"].sum()) == int((old_s["confidence"] > 0.5).sum())
            assert _pair_totals(old).equals(_ref_totals(old_n, old_s))
            unread = Connectome(path)  # opened before the replacement, never read
            # re-create the store at the same path, same chunking (same array file names)
            new = write_store(path, new_n, new_s, {"name": "v2"}, chunk_rows=1024, overwrite=True)
            assert new.meta["uuid"] != old.meta["uuid"] and new.token != old.token
            # the Connectomes of the old store refuse to read the new one's files (never a mix)
            for stale in (old, unread):
                with pytest.raises(StoreError, match="replaced"):
                    stale.read_synapses(["pre", "confidence"])
                with pytest.raises(StoreError, match="replaced"):
                    stale.take_synapses(np.arange(0, 5000, 13), ["confidence"])
                with pytest.raises(StoreError, match="replaced"):
                    stale.synapses["pre"].sum().compute()
            again = Connectome(path)
            assert again.n_synapses == 8000 and again.meta["name"] == "v2"
            ddf = again.synapses
            assert ddf.shape[0].compute() == 8000
            frame = ddf[["pre", "post", "confidence"]].compute()
            want = new_s.sort_values(["pre", "post"], kind="stable").reset_index(drop=True)
            # rows are sorted by (pre, post); compare as multisets of rows
            key = ["pre", "post", "confidence"]
            assert np.array_equal(frame.sort_values(key).to_numpy(), want[key].sort_values(key).to_numpy())
            assert int(ddf["pre"].sum().compute()) == int(new_s["pre"].sum())
            got = pair_counts(again, progress=False)
            assert int(got["weight"].sum()) == 8000
            scan = pair_counts(again, confidence=0.5, progress=False)
            assert int(scan["weight"].sum()) == int((new_s["confidence"] > 0.5).sum())
            ref = _ref_totals(new_n, new_s)
            assert _pair_totals(again).equals(ref)
            body = again.body_ids
            g = pd.Series(got["weight"].to_numpy(),
                          index=pd.MultiIndex.from_arrays([body[got["pre"].to_numpy()],
                                                           body[got["post"].to_numpy()]])).sort_index()
            assert g.astype(np.int64).equals(ref)
            A = again.adjacency(progress=False)
            assert int(A.data.sum()) == 8000
            assert again.check() == []
    finally:
        cluster.close()


def test_array_directory_with_its_old_inode_but_new_metadata_is_refused(tmp_path):
    """A store deleted and re-created at the same path can get its old inode numbers back.

    Simulated here without a second store: the array directory keeps its inode but its
    change time moves (``os.utime`` sets ctime), as a directory re-created under a reused
    inode would have. An inode-only identity check reads on; the check must refuse.
    """
    from connectome_dask.testing import build_small_store

    conn, _, _ = build_small_store(tmp_path / "s", n_neurons=40, n_synapses=3_000, chunk_rows=512)
    first = conn.read_synapses(["pre"])["pre"]
    assert len(first) == 3_000
    array_dir = conn.path / "synapses.zarr" / conn.meta["synapses"]["columns"]["pre"]
    ino = os.stat(array_dir).st_ino
    os.utime(array_dir)  # same inode, new ctime
    assert os.stat(array_dir).st_ino == ino
    with pytest.raises(StoreError, match="replaced"):
        conn.read_synapses(["pre"])


def test_neuron_table_is_shared_per_generation_and_read_afresh_when_replaced(tmp_path, monkeypatch):
    """The neuron table is read once per store generation and process, and a copy is each Connectome's own.

    Reference: the tables written (pandas). The read is counted through the
    store's own reader function; a user's edit of one Connectome's table
    must not reach another Connectome of the same store; a store re-created
    at the same path (new uuid, new file) is read again, never the cached one.
    """
    from connectome_dask.store import format as F
    from connectome_dask.store import reader as R

    calls: list[str] = []
    real = F.read_neuron_table

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(R, "read_neuron_table", counting)
    path = tmp_path / "store"
    old_n, old_s = _tables(3000, 1)
    new_n, new_s = _tables(3000, 2)
    assert not set(old_n["bodyId"]) & set(new_n["bodyId"])
    write_store(path, old_n, old_s, {"name": "v1"}, chunk_rows=1024)
    a, b = Connectome(path), Connectome(path)
    assert a.neurons["bodyId"].tolist() == old_n["bodyId"].tolist()
    assert b.neurons["type"].tolist() == old_n["type"].tolist()
    assert len(calls) == 1  # two Connectomes of one generation: one read
    some = old_n["bodyId"].to_numpy()[[7, 3]]
    assert b.body_to_index(some).tolist() == [7, 3]
    # an edit to a's table (a value and a new column) stays in a
    a.neurons.loc[0, "type"] = "EDITED"
    a.neurons["mine"] = 1
    assert a.neurons.loc[0, "type"] == "EDITED"
    c = Connectome(path)
    assert c.neurons["type"].tolist() == old_n["type"].tolist() and "mine" not in c.neurons
    assert b.neurons["type"].tolist() == old_n["type"].tolist() and "mine" not in b.neurons
    # replaced at the same path: the new table, read again
    write_store(path, new_n, new_s, {"name": "v2"}, chunk_rows=1024, overwrite=True)
    d = Connectome(path)
    assert d.neurons["bodyId"].tolist() == new_n["bodyId"].tolist()
    assert d.neurons["type"].tolist() == new_n["type"].tolist()
    assert len(calls) == 2
    assert d.body_to_index(new_n["bodyId"].to_numpy()[[5]]).tolist() == [5]
    with pytest.raises(KeyError):
        d.body_to_index(some)
