"""Whole jobs on a real SLURM cluster: dask workers submitted as SLURM jobs.

Needs a SLURM controller with an idle node (``bash deploy/slurm/setup_slurm.sh``
starts a single-node one on this machine, as root). Skipped otherwise, unless
``CONNECTOME_DASK_REQUIRE_SLURM=1`` (set by ``.ci/run``), which turns the
skip into a failure so CI cannot silently stop testing SLURM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask_jobqueue")
distributed = pytest.importorskip("distributed")
xr = pytest.importorskip("xarray")

import connectome_dask  # noqa: E402
from connectome_dask import cluster as cl  # noqa: E402

pytestmark = pytest.mark.slurm

ROI_NAMES = ["R0", "R1", "R2", "R3"]
TYPES = ["A", "B", "C", "D", "E"]


def _slurm_unavailable() -> str | None:
    """Why SLURM cannot be used here, or ``None`` when a node is idle."""
    if shutil.which("sinfo") is None or shutil.which("squeue") is None:
        return (
            "SLURM not installed (no sinfo/squeue): run `bash deploy/slurm/setup_slurm.sh` as root"
        )
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo failed: {e}"
    if out.returncode != 0:
        return f"sinfo failed (is slurmctld running?): {out.stderr.strip()}"
    states = {s.strip().rstrip("*~#") for s in out.stdout.split()}
    if not states & {"idle", "mixed"}:
        return f"no idle SLURM node (sinfo states: {sorted(states) or 'none'})"
    return None


@pytest.fixture(scope="module")
def slurm_ready():
    reason = _slurm_unavailable()
    if reason:
        if os.environ.get("CONNECTOME_DASK_REQUIRE_SLURM") == "1":
            pytest.fail(f"CONNECTOME_DASK_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A small store (80 neurons, 6000 synapses, 512-row chunks) with roi_post codes."""
    rng = np.random.default_rng(7)
    n, m = 80, 6000
    neurons = pd.DataFrame(
        {
            "bodyId": rng.choice(np.arange(10**9, 10**9 + 10**6), n, replace=False).astype(
                np.int64
            ),
            "type": [TYPES[i % len(TYPES)] for i in range(n)],
            "instance": [f"{TYPES[i % len(TYPES)]}_{i}" for i in range(n)],
        }
    )
    # skewed partners so some pairs repeat many times
    pre = (rng.zipf(1.6, m) % n).astype(np.int32)
    post = rng.integers(0, n, m).astype(np.int32)
    xyz = rng.uniform(0, 1250, (m, 6)).astype(np.float32)
    syn = pd.DataFrame({"pre": pre, "post": post})
    for j, c in enumerate(["x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"]):
        syn[c] = xyz[:, j]
    path = tmp_path_factory.mktemp("slurm") / "store"
    conn = connectome_dask.write_store(path, neurons, syn, {"name": "slurm-test"}, chunk_rows=512)

    def roi_of(block):
        code = (block["x_post"] // 250).astype(np.int16)
        code[code >= len(ROI_NAMES)] = -1
        return {"roi_post": code}

    def write_rois(d):
        info = {"names": ROI_NAMES, "primary": ROI_NAMES, "hierarchy": {}}
        (d / "rois.json").write_text(json.dumps(info))

    conn = conn.write_synapse_columns(
        roi_of, ["x_post"], {"roi_post": "int16"}, write_rois=write_rois, progress=False
    )
    code = (syn["x_post"] // 250).astype(np.int16)
    syn["roi_post"] = code.where(code < len(ROI_NAMES), -1).astype(np.int16)
    return conn, neurons, syn


def _results(conn):
    """The two results under test, computed on the current client."""
    from connectome_dask.aggregate import pair_counts

    mat = conn.adjacency(by="type", progress=False)
    per_roi = pair_counts(conn, by_roi=True, progress=False)
    return mat, per_roi


def _squeue() -> dict[str, tuple[str, str]]:
    """job id -> (name, state) of the jobs in the queue."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%j|%T"], capture_output=True, text=True, check=True, timeout=20
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return {r[0]: (r[1], r[2]) for r in rows}


def test_slurm_workers_match_local_cluster(slurm_ready, store, tmp_path):
    conn, neurons, syn = store

    # reference 1: plain pandas on the raw tables
    t = neurons["type"].to_numpy()
    ref_type = pd.DataFrame({"a": t[syn["pre"]], "b": t[syn["post"]]}).groupby(["a", "b"]).size()
    ref_roi = (
        syn.groupby(["pre", "post", "roi_post"]).size().rename("weight").reset_index()
    ).rename(columns={"roi_post": "roi"})

    # reference 2: the embedded LocalCluster
    with cl.connect("local", workers=2, dashboard_address=":0") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        local_mat, local_roi = _results(conn)

    # the same on two dask workers that are SLURM jobs
    job_name = f"cd-test-{uuid.uuid4().hex[:6]}"
    t0 = time.perf_counter()
    cluster = cl.jobqueue_cluster(
        "slurm",
        {},  # built-in defaults + these arguments only (not deploy/jobqueue.yaml)
        cores=1,
        processes=1,
        memory="1GiB",
        walltime="00:10:00",
        python=sys.executable,
        interface="lo",
        local_directory=str(tmp_path / "spill"),
        log_directory=str(tmp_path / "logs"),
        job_name=job_name,
        death_timeout=30,
        scheduler_options={"dashboard_address": ":0"},
    )
    try:
        script = cluster.job_script()
        assert f"#SBATCH -J {job_name}" in script and "--mem=1G" in script
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        with cl.connect(cluster=cluster, workers=2) as client:
            client.wait_for_workers(2, timeout=180)
            started = time.perf_counter() - t0
            print(f"2 SLURM workers up in {started:.1f} s")
            # squeue lists exactly our two worker jobs, running
            job_ids = {j.job_id for j in cluster.workers.values()}
            assert len(job_ids) == 2 and None not in job_ids
            queue = _squeue()
            ours = {jid: v for jid, v in queue.items() if v[0] == job_name}
            assert set(ours) == job_ids, (queue, job_ids)
            assert {state for _, state in ours.values()} == {"RUNNING"}
            # the workers really are the batch jobs' processes
            worker_env = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
            assert set(worker_env.values()) == job_ids

            slurm_mat, slurm_roi = _results(conn)
            # every worker took part in the computation
            assert len(client.scheduler_info()["workers"]) == 2
        # connect() did not close the user's cluster object
        assert cluster.status.name == "running"
    finally:
        cluster.close()
    # closing the cluster cancels the jobs
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not any(v[0] == job_name for v in _squeue().values()):
            break
        time.sleep(1)
    else:
        pytest.fail(f"SLURM jobs named {job_name} still queued after cluster.close(): {_squeue()}")

    # (a) type x type matrix: identical to the LocalCluster result and to pandas
    xr.testing.assert_identical(slurm_mat, local_mat)
    dense = np.asarray(slurm_mat.values)
    assert dense.sum() == len(syn)
    pre_labels = list(slurm_mat.indexes["pre"])
    post_labels = list(slurm_mat.indexes["post"])
    got = {
        (pre_labels[i], post_labels[j]): int(dense[i, j])
        for i, j in zip(*np.nonzero(dense), strict=True)
    }
    assert got == {k: int(v) for k, v in ref_type.items()}

    # (b) per-ROI pair counts: identical DataFrames, and equal to pandas
    pd.testing.assert_frame_equal(slurm_roi, local_roi)
    cols = ["pre", "post", "roi", "weight"]
    got_roi = slurm_roi[cols].astype("int64").sort_values(cols[:3]).reset_index(drop=True)
    want_roi = ref_roi[cols].astype("int64").sort_values(cols[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got_roi, want_roi)


def test_skip_reason_is_clear(monkeypatch):
    """Without sinfo on PATH the tests skip with an instruction, not an error."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "setup_slurm.sh" in _slurm_unavailable()
