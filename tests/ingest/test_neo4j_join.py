"""The neuPrint neo4j export's synapse join: an external hash join with bounded memory.

The reference is a pandas statement of the join (sites -> synapse sets ->
bodies, a site in several sets takes the smallest body ID), in the order of
the connection files. The join must give the same rows, in the same order,
whatever the number of buckets, and leave no scratch files behind.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from connectome_dask import _fsutil
from connectome_dask.errors import IngestError
from connectome_dask.ingest import dialects as D
from connectome_dask.ingest import ingest
from connectome_dask.ingest import neo4j as N

from . import _releases as R

CONNS = "Neuprint_Synapse_Connections_hemibrain.csv"
SITES = "Neuprint_Synapses_hemibrain.csv"
S2S = "Neuprint_SynapseSet_to_Synapses_hemibrain.csv"
N2S = "Neuprint_Neuron_to_SynapseSet_hemibrain.csv"


@pytest.fixture()
def scratch(tmp_path):
    """dask's temporary-directory, where the join's scratch directory goes."""
    d = tmp_path / "scratch"
    d.mkdir()
    with dask.config.set({"temporary-directory": str(d)}):
        yield d


def fan_out_export(folder, n_syn=300, seed=3):
    """An export where pre sites fan out to several post sites (as T-bars do) and some sites are in two sets."""
    rel = R.write_neo4j(R.connectome(n_syn=n_syn, n_neurons=10, seed=seed), folder)
    conns = pd.read_csv(rel / CONNS)
    rng = np.random.default_rng(seed)
    # every third connection reuses an earlier pre site: a T-bar with several partners
    reuse = np.arange(len(conns)) % 3 == 2
    conns.loc[reuse, ":START_ID(Syn-ID)"] = conns[":START_ID(Syn-ID)"].shift(1)[reuse].astype(np.int64)
    conns = conns.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # file order is not site order
    conns.to_csv(rel / CONNS, index=False)
    # a few sites also belong to a second set (of another body): the smaller body ID wins
    s2s = pd.read_csv(rel / S2S)
    n2s = pd.read_csv(rel / N2S)
    extra_set = int(n2s[":END_ID(SynSet-ID)"].max()) + 1
    body = int(n2s[":START_ID(Body-ID)"].min()) - 7  # smaller than every body
    twice = s2s[":END_ID(Syn-ID)"].to_numpy()[rng.choice(len(s2s), 12, replace=False)]
    s2s = pd.concat([s2s, pd.DataFrame({":START_ID(SynSet-ID)": extra_set, ":END_ID(Syn-ID)": twice})])
    n2s = pd.concat([n2s, pd.DataFrame({":START_ID(Body-ID)": [body], ":END_ID(SynSet-ID)": [extra_set]})])
    s2s.to_csv(rel / S2S, index=False)
    n2s.to_csv(rel / N2S, index=False)
    return rel


def reference(rel) -> pd.DataFrame:
    """The join in pandas: one row per connection, in file order."""
    sites = pd.read_csv(rel / SITES)
    conns = pd.read_csv(rel / CONNS)
    s2s = pd.read_csv(rel / S2S)
    n2s = pd.read_csv(rel / N2S)
    body = (s2s.merge(n2s, left_on=":START_ID(SynSet-ID)", right_on=":END_ID(SynSet-ID)")
            .groupby(":END_ID(Syn-ID)")[":START_ID(Body-ID)"].min())
    xyz = sites["location:point{srid:9157}"].str.extract(r"\{x:(-?\d+), y:(-?\d+), z:(-?\d+)\}").astype(float)
    xyz.index = sites[":ID(Syn-ID)"]
    conf = sites.set_index(":ID(Syn-ID)")["confidence:float"]
    out = {}
    for side, col in (("pre", ":START_ID(Syn-ID)"), ("post", ":END_ID(Syn-ID)")):
        site = conns[col].to_numpy()
        out[f"bodyId_{side}"] = body.loc[site].to_numpy()
        for k, a in enumerate("xyz"):
            out[f"{a}_{side}"] = xyz.loc[site, k].to_numpy()
        out[f"confidence_{side}"] = conf.loc[site].to_numpy()
    return pd.DataFrame(out)


def joined(rel, **kw) -> pd.DataFrame:
    release = D.find_release(rel, "neuprint-neo4j", "synapses")
    t = N.neo4j_synapse_table(release, N._depths(R.HIERARCHY), **kw)
    df = t.to_pandas()
    for side in ("pre", "post"):
        df[f"roi_{side}"] = df[f"roi_{side}"].astype(object)
    return df


@pytest.mark.parametrize("bucket_bytes", [None, 4096, 300])
def test_join_equals_pandas_in_file_order(tmp_path, scratch, bucket_bytes):
    rel = fan_out_export(tmp_path / "rel")
    got = joined(rel, bucket_bytes=bucket_bytes)
    ref = reference(rel)
    pd.testing.assert_frame_equal(got[ref.columns], ref, check_dtype=False)
    assert sorted(scratch.iterdir()) == []  # the scratch directory is gone


def test_join_is_the_same_for_every_bucket_count(tmp_path, scratch):
    rel = fan_out_export(tmp_path / "rel", n_syn=500)
    one = joined(rel, bucket_bytes=1 << 40)
    for b in (50_000, 2_000, 200):
        pd.testing.assert_frame_equal(joined(rel, bucket_bytes=b), one)


def test_roi_is_the_most_specific_true_column(tmp_path, scratch):
    rel = fan_out_export(tmp_path / "rel")
    got = joined(rel, bucket_bytes=500)
    sites = pd.read_csv(rel / SITES).set_index(":ID(Syn-ID)")
    conns = pd.read_csv(rel / CONNS)
    flags = sites[[c for c in sites.columns if c.endswith(":boolean")]].fillna(False).astype(bool)
    # MB(R) is the parent of a'L(R) and MB(+ACA)(R): a site flagged in both is in the child
    want = [next(c[: -len(":boolean")] for c in flags.columns if c != "MB(R):boolean" and flags.loc[s, c])
            for s in conns[":END_ID(Syn-ID)"]]
    assert got["roi_post"].tolist() == want


def test_ingest_with_many_buckets_equals_one_bucket(tmp_path, scratch, monkeypatch):
    rel = fan_out_export(tmp_path / "rel")
    a = ingest(rel, tmp_path / "a", progress=False)
    monkeypatch.setattr(N, "BUCKET_BYTES", 256)
    b = ingest(rel, tmp_path / "b", progress=False)
    cols = ["pre", "post", "x_pre", "y_post", "confidence_post", "roi_post"]
    ra, rb = a.read_synapses(cols), b.read_synapses(cols)
    for c in cols:
        np.testing.assert_array_equal(ra[c], rb[c])
    ref = reference(rel)
    pairs = pd.DataFrame({"pre": a.neurons["bodyId"].to_numpy()[ra["pre"]],
                          "post": a.neurons["bodyId"].to_numpy()[ra["post"]]}).value_counts().sort_index()
    want = ref.rename(columns={"bodyId_pre": "pre", "bodyId_post": "post"})[["pre", "post"]]
    pd.testing.assert_series_equal(pairs, want.value_counts().sort_index())
    # meta.json names the release's CSV files, never the scratch files of the join
    files = a.meta["extra"]["ingest"]["files"]
    assert files and all(os.path.dirname(f) == str(rel) for f in files), files
    assert a.meta["extra"]["ingest"]["format"] == "csv"
    assert sorted(scratch.iterdir()) == []


def test_site_without_body_names_file_column_and_row(tmp_path, scratch):
    rel = fan_out_export(tmp_path / "rel")
    conns = pd.read_csv(rel / CONNS)
    conns.loc[57, ":END_ID(Syn-ID)"] = 99_999_999  # no such site
    conns.to_csv(rel / CONNS, index=False)
    with pytest.raises(IngestError, match=r"Synapse_Connections_hemibrain\.csv.*':END_ID\(Syn-ID\)', row 57: "
                                          r"synapse site 99999999 has no body"):
        ingest(rel, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()
    assert sorted(scratch.iterdir()) == []


def test_row_numbers_are_per_file_with_several_connection_files(tmp_path, scratch):
    rel = fan_out_export(tmp_path / "rel")
    conns = pd.read_csv(rel / CONNS)
    first, second = conns.iloc[:100], conns.iloc[100:].reset_index(drop=True).copy()
    second.loc[5, ":START_ID(Syn-ID)"] = 88_888_888
    first.to_csv(rel / CONNS, index=False)
    second.to_csv(rel / "Neuprint_Synapse_Connections_hemibrain_2.csv", index=False)
    with pytest.raises(IngestError, match=r"hemibrain_2\.csv.*':START_ID\(Syn-ID\)', row 5: synapse site 88888888"):
        ingest(rel, tmp_path / "store", progress=False)
    second.loc[5, ":START_ID(Syn-ID)"] = conns.loc[105, ":START_ID(Syn-ID)"]
    second.to_csv(rel / "Neuprint_Synapse_Connections_hemibrain_2.csv", index=False)
    conn = ingest(rel, tmp_path / "store", progress=False)
    assert conn.n_synapses == len(conns)


def test_missing_link_column_is_reported_before_any_work(tmp_path, scratch):
    rel = fan_out_export(tmp_path / "rel")
    n2s = pd.read_csv(rel / N2S).rename(columns={":END_ID(SynSet-ID)": "set"})
    n2s.to_csv(rel / N2S, index=False)
    with pytest.raises(IngestError, match=r"Neuron_to_SynapseSet_hemibrain\.csv: column ':END_ID\(SynSet-ID\)'"):
        ingest(rel, tmp_path / "store", progress=False)
    assert sorted(scratch.iterdir()) == []  # refused before the scratch directory was made


def test_missing_link_file_is_named(tmp_path, scratch):
    rel = fan_out_export(tmp_path / "rel")
    (rel / S2S).unlink()
    with pytest.raises(IngestError, match=r"needs Neuprint_SynapseSet_to_Synapses_\*\.csv"):
        ingest(rel, tmp_path / "store", progress=False)


def test_existing_target_is_refused_before_the_join(tmp_path, scratch, monkeypatch):
    rel = fan_out_export(tmp_path / "rel")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "mine.txt").write_text("keep")

    def no_join(*a, **k):
        raise AssertionError("the join ran before the target was checked")

    monkeypatch.setattr(N, "neo4j_synapse_files", no_join)
    with pytest.raises(IngestError, match="already exists"):
        ingest(rel, tmp_path / "store", progress=False)
    assert (tmp_path / "store" / "mine.txt").read_text() == "keep"


def test_bad_point_in_a_later_block_is_named(tmp_path, scratch, monkeypatch):
    rel = fan_out_export(tmp_path / "rel")
    monkeypatch.setattr(N, "_BLOCK", 4096)  # several CSV blocks: the row number counts across them
    lines = (rel / SITES).read_text().splitlines(keepends=True)
    lines[401] = lines[401].replace("{x:", "{q:", 1)  # data row 400
    (rel / SITES).write_text("".join(lines))
    with pytest.raises(IngestError, match=r"Synapses_hemibrain\.csv.*row 400: point '\{q:"):
        ingest(rel, tmp_path / "store", progress=False)
    assert sorted(scratch.iterdir()) == []


# ----------------------------------------------------------------------------- scratch directories


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_scratch_of_a_killed_process_is_removed_others_are_kept(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f"{_fsutil.SCRATCH_PREFIX}dead"
    alive = tmp_path / f"{_fsutil.SCRATCH_PREFIX}alive"
    foreign = tmp_path / f"{_fsutil.SCRATCH_PREFIX}other-host"
    unmarked = tmp_path / f"{_fsutil.SCRATCH_PREFIX}unmarked"
    for d in (dead, alive, foreign, unmarked):
        d.mkdir()
        (d / "bucket-00000.arrow").write_bytes(b"x")
    _fsutil.write_marker(dead, "scratch", host=host, pid=_dead_pid())
    _fsutil.write_marker(alive, "scratch", host=host, pid=os.getpid())
    _fsutil.write_marker(foreign, "scratch", host=host + "-elsewhere", pid=_dead_pid())
    with _fsutil.scratch_dir("test", base=tmp_path) as d:
        mine = d
        assert json.loads((d / _fsutil.MARKER).read_text())["pid"] == os.getpid()
        assert not dead.exists()
    assert not mine.exists()
    assert alive.exists() and foreign.exists() and unmarked.exists()


def test_scratch_is_removed_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError), _fsutil.scratch_dir("test", base=tmp_path) as d:
        (d / "part").write_text("x")
        raise RuntimeError("boom")
    assert sorted(tmp_path.iterdir()) == []


def test_bucket_hash_spreads_strided_ids():
    # site IDs of an export are often strided (pre 2i, post 2i + 1): a modulo would use half the buckets
    keys = pa.array(np.arange(0, 2 * 100_000, 2, dtype=np.int64) + 10**10)
    counts = np.bincount(N._bucket_of(keys, 8), minlength=8)
    assert counts.min() > 0.9 * counts.mean()
    assert N._bucket_of(pa.array([5, None], pa.int64()), 4).tolist() == N._bucket_of(pa.array([5, -1]), 4).tolist()


def test_written_csv_keeps_the_reference_honest(tmp_path):
    # the fixture's fan-out is real: some pre sites have several post partners, some sites two bodies
    rel = fan_out_export(tmp_path / "rel")
    conns = pd.read_csv(rel / CONNS)
    assert conns[":START_ID(Syn-ID)"].duplicated().any()
    s2s = pd.read_csv(rel / S2S)
    assert s2s[":END_ID(Syn-ID)"].duplicated().any()
    with open(rel / SITES, newline="") as f:
        header = next(csv.reader(f))
    assert "MB(R):boolean" in header


@pytest.mark.parametrize("point, why", [("{x:nan, y:2, z:3}", "non-finite"), ("{x:1, y:2}", "is not"),
                                        ("{x:1, y:two, z:3}", "is not a number"),
                                        ("{x: 1, y: 2, z: 3}", None)])
def test_point_spellings(tmp_path, scratch, point, why):
    rel = fan_out_export(tmp_path / "rel")
    lines = (rel / SITES).read_text().splitlines(keepends=True)
    row = 123
    fields = next(csv.reader([lines[row + 1]]))
    fields[3] = point
    lines[row + 1] = ",".join(f'"{v}"' for v in fields) + "\n"
    (rel / SITES).write_text("".join(lines))
    if why is None:  # spaces after the colons: still a point
        got = joined(rel)
        site = int(fields[0])
        conns = pd.read_csv(rel / CONNS)
        for side, col in (("pre", ":START_ID(Syn-ID)"), ("post", ":END_ID(Syn-ID)")):
            hit = conns[col].to_numpy() == site
            assert (got.loc[hit, [f"x_{side}", f"y_{side}", f"z_{side}"]].to_numpy() == [1, 2, 3]).all()
        return
    with pytest.raises(IngestError, match=rf"Synapses_hemibrain\.csv.*row {row}: .*{why}"):
        ingest(rel, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()


def test_bad_neuron_table_is_refused_before_the_join(tmp_path, scratch, monkeypatch):
    rel = fan_out_export(tmp_path / "rel")
    pd.DataFrame({"bodyId": [5, 5], "type": ["A", "B"]}).to_csv(tmp_path / "neurons.csv", index=False)

    def no_join(*a, **k):
        raise AssertionError("the join ran before the neuron table was checked")

    monkeypatch.setattr(N, "neo4j_synapse_files", no_join)
    with pytest.raises(IngestError, match=r"neurons\.csv.*bodyId"):
        ingest(rel, tmp_path / "store", neurons=tmp_path / "neurons.csv", progress=False)
