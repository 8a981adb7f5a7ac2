"""connectome_dask.cluster: local cluster defaults, connecting, jobqueue configuration.

Fast tests: no batch system is needed (jobqueue clusters are built but no job
is submitted; their job scripts are checked).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import dask
import psutil
import pytest
import yaml

distributed = pytest.importorskip("distributed")
pytest.importorskip("dask_jobqueue")

from connectome_dask import cluster as cl  # noqa: E402

KINDS = ("slurm", "pbs", "lsf")


def _worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


# ----------------------------------------------------------------------------- local


def test_local_cluster_defaults_memory_and_spilling():
    n = 2
    with cl.connect("local", workers=n, dashboard_address=":0") as client:
        cluster = client.cluster
        tmpdir = Path(cl._tmpdir_of(cluster))
        assert tmpdir.is_dir()
        info = client.scheduler_info()["workers"]
        assert len(info) == n
        # worker processes, not threads of this process
        pids = _worker_pids(client)
        assert len(pids) == n and os.getpid() not in pids
        # memory limit = usable machine memory / n_workers (the package's one definition)
        from connectome_dask.compute.dense import machine_memory

        limits = {w["memory_limit"] for w in info.values()}
        assert limits == {machine_memory() // n}
        assert machine_memory() // n * n <= psutil.virtual_memory().total
        # threads: the 2 cores split over the workers
        assert {w["nthreads"] for w in info.values()} == {max(1, (os.cpu_count() or 1) // n)}

        # spilling thresholds as configured, in the worker processes themselves
        def fractions(dask_worker):
            mm = dask_worker.memory_manager
            return (
                mm.memory_target_fraction,
                mm.memory_spill_fraction,
                mm.memory_pause_fraction,
                dask.config.get("distributed.worker.memory.terminate"),
                str(dask_worker.local_directory),
            )

        want = cl.LOCAL_MEMORY_FRACTIONS
        for target, spill, pause, term, local_dir in client.run(fractions).values():
            assert (target, spill, pause, term) == (
                want["target"],
                want["spill"],
                want["pause"],
                want["terminate"],
            )
            assert Path(local_dir).resolve().is_relative_to(tmpdir.resolve())

        # nanny (parent process) enforces the terminate threshold
        def term(dask_worker):
            return dask_worker.memory_manager.memory_terminate_fraction

        assert set(client.run(term, nanny=True).values()) == {want["terminate"]}
        assert client.submit(sum, [1, 2, 3]).result() == 6
    # connect's exit closes the cluster it started and removes the spill directory
    assert cluster.status.name == "closed"
    assert not tmpdir.exists()


def _repeat_alloc_faults() -> list[int]:
    """Page faults of five successive 32 MB allocations (each freed before the next)."""
    import resource

    import numpy as np

    out = []
    for _ in range(5):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = np.ones(4_000_000)
        out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        del a
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tunables: Linux only")
def test_local_cluster_workers_reuse_freed_memory(monkeypatch):
    # distributed spawns workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive
    # mmap threshold: every large array is fresh memory the kernel faults in again. The embedded
    # cluster's workers keep glibc's defaults, even with a value an earlier nanny left in os.environ.
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as a nanny leaves it (not in /proc/self/environ)
    with (
        cl.local_cluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        (env,) = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()
        (faults,) = client.run(_repeat_alloc_faults).values()
    assert env is None
    assert faults[0] > 100  # a fresh 32 MB array is faulted in
    assert max(faults[2:]) < faults[0] / 4, faults  # later ones reuse the freed memory
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # this process's environment is put back


def test_local_cluster_keeps_a_users_malloc_trim_threshold():
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 131072}),
        cl.local_cluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        (env,) = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()
        (faults,) = client.run(_repeat_alloc_faults).values()
    assert env == "131072"
    assert min(faults[2:]) > faults[0] / 4, faults  # glibc's adaptive threshold is off, as the user asked


def test_gather_direct_only_for_a_local_scheduler():
    from types import SimpleNamespace as NS

    from connectome_dask._compute import gather_direct

    def client(address, chosen=None):
        return NS(direct_to_workers=chosen, scheduler=NS(address=address))

    assert gather_direct(client("tcp://127.0.0.1:8786")) is True
    assert gather_direct(client("tcp://localhost:8786")) is True
    assert gather_direct(client("inproc://10.0.0.1/123/1")) is True
    assert gather_direct(client("tcp://[::1]:8786")) is True
    assert gather_direct(client("tcp://10.0.0.7:8786")) is None  # a remote cluster: distributed decides
    assert gather_direct(client("tls://node17:8786")) is None
    assert gather_direct(client("tcp://127.0.0.1:8786", chosen=False)) is False  # the user's choice stands
    assert gather_direct(client("tcp://10.0.0.7:8786", chosen=True)) is True


def test_memory_fractions_follow_dask_config():
    with dask.config.set({"connectome_dask.cluster.memory.spill": 0.5}):
        assert cl._memory_fractions()["spill"] == 0.5
    # a user's own distributed.worker.memory settings are respected too
    with dask.config.set({"distributed.worker.memory.pause": 0.9}):
        assert cl._memory_fractions()["pause"] == 0.9
    assert cl._memory_fractions() == cl.LOCAL_MEMORY_FRACTIONS


def test_local_cluster_explicit_arguments():
    with (
        cl.local_cluster(
            n_workers=1, threads_per_worker=2, memory_limit="1GiB", dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        (w,) = client.scheduler_info()["workers"].values()
        assert w["nthreads"] == 2
        assert w["memory_limit"] == 2**30


def test_connect_to_running_scheduler_leaves_it_running(tmp_path):
    sched_file = tmp_path / "scheduler.json"
    with distributed.LocalCluster(
        n_workers=1,
        processes=False,
        protocol="tcp://",
        dashboard_address=":0",
        scheduler_kwargs={"scheduler_file": str(sched_file)},
    ) as user_cluster:
        addr = user_cluster.scheduler_address
        assert addr.startswith("tcp://")
        for target in (addr, str(sched_file), addr.removeprefix("tcp://")):
            with cl.connect(target) as client:
                assert client.scheduler.address == addr
                assert client.submit(lambda x: x + 1, 41).result() == 42
            assert client.status == "closed"
            # the user's scheduler is still up and usable
            assert user_cluster.status.name == "running"
            with distributed.Client(addr) as c2:
                assert len(c2.scheduler_info()["workers"]) == 1
        # an existing cluster object: not closed either
        with cl.connect(cluster=user_cluster) as client:
            assert client.submit(pow, 2, 5).result() == 32
        assert user_cluster.status.name == "running"
        # plain get_client on an address, closed by the user: scheduler keeps running
        client = cl.get_client(addr)
        client.close()
        assert user_cluster.status.name == "running"


def test_unknown_scheduler_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown scheduler 'sge'.*slurm"):
        cl.get_client("sge")
    with pytest.raises(ValueError, match="unknown batch system 'moab'.*slurm, pbs, lsf"):
        cl.jobqueue_cluster("moab")
    with pytest.raises(FileNotFoundError, match="scheduler file .*missing.json does not exist"):
        cl.get_client(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="give either scheduler or cluster"):
        cl.get_client("local", cluster=object())


# ----------------------------------------------------------------------------- jobqueue


# What each batch system's job script says for cores=C, memory=M, walltime=W, queue=Q
# (written out by hand from the SLURM / PBS Pro / LSF directive syntax).
def _expected_lines(kind: str, cores: int, mem_gib: int, walltime: str, queue: str) -> list[str]:
    if kind == "slurm":
        return [
            f"#SBATCH -p {queue}",
            f"#SBATCH --cpus-per-task={cores}",
            f"#SBATCH --mem={mem_gib}G",
            f"#SBATCH -t {walltime}",
        ]
    if kind == "pbs":
        return [
            f"#PBS -q {queue}",
            f"#PBS -l select=1:ncpus={cores}:mem={mem_gib * 1024}MB",
            f"#PBS -l walltime={walltime}",
        ]
    # LSF: -M in kB (10^3 bytes, rounded up), -W as HH:MM
    kb = -(-(mem_gib * 2**30) // 1000)
    return [f"#BSUB -q {queue}", f"#BSUB -n {cores}", f"#BSUB -M {kb}", f"#BSUB -W {walltime[:5]}"]


def _script(kind: str, config, **kw) -> str:
    kw.setdefault("scheduler_options", {"dashboard_address": ":0"})
    c = cl.jobqueue_cluster(kind, config, **kw)
    try:
        return c.job_script()
    finally:
        c.close()


@pytest.fixture
def yaml_file(tmp_path):
    data = {
        "jobqueue": {
            k: {
                "cores": 2,
                "memory": "3GiB",
                "walltime": "00:40:00" if k != "lsf" else "00:40",
                "queue": "yamlq",
                "job-extra-directives": [],  # hyphenated keys are accepted
            }
            for k in KINDS
        }
    }
    p = tmp_path / "jobqueue.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("kind", KINDS)
def test_jobqueue_precedence(kind, yaml_file):
    # 3. the YAML file alone
    s = _script(kind, yaml_file)
    for line in _expected_lines(kind, 2, 3, "00:40:00", "yamlq"):
        assert line in s, (line, s)
    assert sys.executable in s  # python defaults to the client's interpreter
    assert "export DASK_DISTRIBUTED__WORKER__MEMORY__SPILL=0.7" in s

    # 2. dask config beats the file: both namespaces, connectome_dask's is more specific
    conf = {
        f"jobqueue.{kind}.walltime": "00:50:00" if kind != "lsf" else "00:50",
        f"jobqueue.{kind}.queue": "jobqueueq",
        f"connectome_dask.cluster.{kind}.queue": "daskq",
    }
    with dask.config.set(conf):
        s = _script(kind, yaml_file)
        for line in _expected_lines(kind, 2, 3, "00:50:00", "daskq"):
            assert line in s, (line, s)
        # 1. explicit arguments beat everything
        s = _script(kind, yaml_file, memory="5GiB", cores=3, queue="argq", walltime="01:10:00")
        for line in _expected_lines(kind, 3, 5, "01:10:00", "argq"):
            assert line in s, (line, s)


@pytest.mark.parametrize("kind", KINDS)
def test_jobqueue_builtin_defaults(kind):
    # 4. nothing configured anywhere: the built-in defaults
    s = _script(kind, {})
    want = cl.JOBQUEUE_DEFAULTS[kind]
    lines = _expected_lines(kind, want["cores"], 4, "01:00:00", "unused")[1:]
    for line in lines:
        assert line in s, (line, s)
    assert "-q " not in s and "-p " not in s  # no queue unless configured


def test_jobqueue_shipped_yaml_is_valid():
    path = Path(cl.__file__).resolve().parents[1] / "deploy" / "jobqueue.yaml"
    assert cl.default_jobqueue_file() == path
    with path.open() as f:
        data = yaml.safe_load(f)
    for kind in KINDS:
        section = data["jobqueue"][kind]
        opts = cl.jobqueue_options(kind)
        assert opts["cores"] == section["cores"] and opts["memory"] == section["memory"]
        assert opts["job_name"] == section["job_name"]


def test_jobqueue_file_from_dask_config(tmp_path):
    p = tmp_path / "site.yaml"
    p.write_text("jobqueue:\n  slurm:\n    memory: 7GiB\n    account: lab42\n")
    with dask.config.set({"connectome_dask.cluster.jobqueue_file": str(p)}):
        assert cl.default_jobqueue_file() == p
        s = _script("slurm", None)
    assert "#SBATCH --mem=7G" in s and "#SBATCH -A lab42" in s
    with (
        dask.config.set({"connectome_dask.cluster.jobqueue_file": str(tmp_path / "nope.yaml")}),
        pytest.raises(FileNotFoundError, match="nope.yaml"),
    ):
        cl.default_jobqueue_file()


def test_jobqueue_bad_file_errors(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("jobqueue:\n  slurm:\n    memroy: 4GiB\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: unknown setting\(s\) \['memroy'\]"):
        cl.jobqueue_options("slurm", p)
    p.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        cl.jobqueue_options("slurm", p)
    with pytest.raises(FileNotFoundError):
        cl.jobqueue_options("slurm", tmp_path / "missing.yaml")
    # YAML is read with safe_load: python tags are refused
    p.write_text("jobqueue: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(yaml.YAMLError):
        cl.jobqueue_options("slurm", p)


def test_lsf_walltime_conversion():
    assert cl._lsf_walltime("01:30:00") == "01:30"
    assert cl._lsf_walltime("00:59:01") == "01:00"
    assert cl._lsf_walltime("02:00") == "02:00"
    opts = cl.jobqueue_options("lsf", {}, walltime="00:20:30")
    assert opts["walltime"] == "00:21"


# ----------------------------------------------------------------------------- CLI


def test_cli_arguments_and_client_from_args():
    parser = argparse.ArgumentParser()
    from connectome_dask.cli import add_scheduler_argument

    add_scheduler_argument(parser)
    args = parser.parse_args([])
    assert args.scheduler is None and args.workers is None
    args = parser.parse_args(["--scheduler", "local", "--workers", "1"])
    with cl.client_from_args(args) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        cluster = client.cluster
        assert client.submit(max, [3, 9, 4]).result() == 9
    assert client.status == "closed"
    assert cluster.status.name == "closed"
    with (
        pytest.raises(ValueError, match="--workers must be at least 1"),
        cl.client_from_args(argparse.Namespace(scheduler="local", workers=0)),
    ):
        pass


def test_dashboard_link():
    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, protocol="tcp://", dashboard_address=":0"
        ) as c,
        distributed.Client(c) as client,
    ):
        link = cl.dashboard_link(client)
        has_dashboard = "dashboard" in client.scheduler_info().get("services", {})
        if has_dashboard:  # bokeh installed
            port = client.scheduler_info()["services"]["dashboard"]
            assert link is not None and f":{port}/" in link
        else:
            assert link is None


@pytest.mark.parametrize("version", ["v1", "v2", "none"])
def test_machine_memory_reads_the_process_cgroup(tmp_path, version):
    """The limits of the process's own cgroup and of the cgroups above it, written here as files.

    A SLURM job's limit sits in its own cgroup, below the root (whose files
    are the host's): the smallest limit on the path counts, ``max`` and
    unlimited values do not, and a path that leaves the root is ignored.
    """
    from connectome_dask.compute.dense import _cgroup_limits

    root = tmp_path / "cgroup"
    proc = tmp_path / "proc_self_cgroup"
    if version == "v2":
        job = root / "system.slice" / "slurmstepd.scope" / "job_42"
        job.mkdir(parents=True)
        (root / "memory.max").write_text("max\n")
        (root / "system.slice" / "memory.max").write_text("64000000000\n")
        (job / "memory.max").write_text("4000000000\n")
        (job / "memory.high").write_text("max\n")
        proc.write_text("0::/system.slice/slurmstepd.scope/job_42\n")
        want = [4000000000, 64000000000]
    elif version == "v1":
        job = root / "memory" / "slurm" / "uid_1" / "job_7"
        job.mkdir(parents=True)
        (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
        (job / "memory.limit_in_bytes").write_text("2147483648\n")
        proc.write_text("5:cpuset:/slurm/uid_1/job_7\n4:memory:/slurm/uid_1/job_7\n0::/\n")
        want = [2147483648, 9223372036854771712]
    else:
        root.mkdir()
        proc.write_text("4:memory:/../../etc\n0::/\n")
        want = []
    assert sorted(_cgroup_limits(proc, root)) == sorted(want)
    assert _cgroup_limits(tmp_path / "missing", root) == []
