"""The tutorial notebooks run end to end on small data (CONNECTOME_DASK_NB_SMALL=1).

Each notebook checks its own results against plain pandas computations
(assert cells); here we execute them with nbclient (any cell error fails the
test), then check the summaries and files they write, and that the committed
notebooks carry no outputs and match ``notebooks/make_notebooks.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests import notebooks_runner as runner

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"




def _load(name: str, path: Path):
    """Import a script that is not part of a package (notebooks/make_notebooks.py) by its path."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


NAMES = runner.NOTEBOOKS

pytest.importorskip("nbclient")
pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name):
    import nbformat

    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} has outputs: strip them"
            assert cell.execution_count is None, f"{name} cell {i} has an execution count"


def test_notebooks_match_their_generator():
    import nbformat

    gen = _load("_cd_make_notebooks", NB_DIR / "make_notebooks.py")
    assert sorted(gen.NOTEBOOKS) == sorted(f"{n}.ipynb" for n in NAMES)
    for fname, cells in gen.NOTEBOOKS.items():
        want = nbformat.writes(gen.build(fname, cells)) + "\n"
        got = (NB_DIR / fname).read_text()
        assert got == want, f"{fname} differs from notebooks/make_notebooks.py: run python notebooks/make_notebooks.py"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run all three notebooks once (in order: the first builds the shared store)."""
    work = tmp_path_factory.mktemp("nbwork")
    results = runner.run_notebooks(NAMES, small=True, workdir=work, timeout=300)
    return work, {r.name: r for r in results}


def _summary(work: Path, name: str) -> dict:
    p = work / f"{name}.summary.json"
    assert p.exists(), f"{name} did not write its summary"
    return json.loads(p.read_text())


def _outputs(nb) -> str:
    text = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                text.append(o["text"])
            elif "data" in o and "text/plain" in o["data"]:
                text.append(o["data"]["text/plain"])
    return "\n".join(text)


def _n_images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_query_tutorial(executed):
    work, res = executed
    s = _summary(work, "query_tutorial")
    assert s["n_neurons"] == 3000 and s["n_synapses"] == 300_000
    assert s["criteria_examples"] >= 12
    assert s["pattern_pairs"] > 0 and s["pattern_synapses"] > 0
    assert s["epg_synapse_sites"] > 0 and s["connectors"] > 0
    assert len(s["figures"]) == 4 and all(Path(f).stat().st_size > 10_000 for f in s["figures"])
    nb = res["query_tutorial"].notebook
    out = _outputs(nb)
    assert "└── " in out and "EB*" in out  # the ROI hierarchy printed as text
    assert _n_images(nb) >= 4


def test_nested_matrices(executed):
    import connectome_dask.matrix as cm

    work, res = executed
    s = _summary(work, "nested_matrices")
    assert s["weight_modes"] == ["column", "count", "relative_incoming", "relative_outgoing"]
    assert s["synapses"] > 0 and s["types"] > 1 and s["whole_nnz"] > 0 and s["neuropils"]
    m = cm.open_matrix(s["zarr"][0])
    assert m.nnz == s["whole_nnz"]
    assert cm.open_dataarray(s["zarr"][1]).shape == m.shape
    assert len(s["figures"]) >= 5 and all(Path(f).stat().st_size > 5_000 for f in s["figures"])
    assert _n_images(res["nested_matrices"].notebook) >= 5


def test_whole_brain_on_a_cluster(executed):
    import numpy as np

    import connectome_dask as cd
    import connectome_dask.matrix as cm

    work, res = executed
    s = _summary(work, "whole_brain_on_a_cluster")
    assert s["scheduler"] == "local"
    A = cm.open_dataarray(s["zarr"])
    assert A.shape == (s["types"], s["types"]) and int(A.sum()) == s["synapses_typed"]
    # independent check of the saved matrix: typed synapses of the store
    store = next(p for p in work.iterdir() if p.is_dir() and (p / "meta.json").exists())
    conn = cd.open(store, set_default=False)
    typed = conn.neurons["type"].notna().to_numpy()
    d = conn.read_synapses(["pre", "post"])
    assert int((typed[d["pre"]] & typed[d["post"]]).sum()) == s["synapses_typed"]
    assert np.asarray(A.sum()) > 0
    assert Path(s["figure"]).stat().st_size > 10_000
    out = _outputs(res["whole_brain_on_a_cluster"].notebook)
    assert "dashboard:" in out


def test_neuprint_query_tutorial(executed):
    """neuprint-python's Query Tutorial, imports changed only, on the seed store: the tutorial's tables."""
    work, res = executed
    s = _summary(work, "neuprint_query_tutorial")
    cols = s["columns"]
    assert cols["conn_df"] == ["bodyId_pre", "bodyId_post", "roi", "weight", "type_pre", "instance_pre",
                               "type_post", "instance_post"]
    assert cols["roi_counts_df"] == ["bodyId", "roi", "pre", "post", "downstream", "upstream", "mito"]
    assert cols["skeletons"] == ["rowId", "x", "y", "z", "radius", "link", "bodyId", "color"]
    sh = s["shapes"]
    assert sh["neuron_df"][0] > 0 and sh["conn_df"][0] > 0 and sh["eb_tbars"][0] > 0
    assert sh["eb_conns"][0] > 0 and sh["skeletons"][0] > 0 and sh["matrix"][0] > 0
    assert 1 <= len(s["fb4y"]) <= 5  # Accent[5] colours one skeleton each
    assert "EPG" in s["top5"]
    out = _outputs(res["neuprint_query_tutorial"].notebook)
    assert " +-- CX" in out and " |   +-- EB*" in out  # neuprint's text tree (asciitree style)
    assert "size" in out and "NotPrimary" in out  # neuron_df's columns, roi_counts_df's rows


def test_crantpy_port(executed):
    """A crantpy nested-matrix notebook with its import changed: it checks itself against pandas."""
    work, res = executed
    s = _summary(work, "crantpy_port")
    assert s["synapses"] > 0 and s["types"] > 1 and s["directed_shape"][0] > 0 and s["directed_shape"][1] > 0
    assert len(s["neuropils"]) >= 2
    assert len(s["figures"]) >= 5 and all(Path(f).stat().st_size > 5_000 for f in s["figures"])
    assert _n_images(res["crantpy_port"].notebook) >= 4
    assert "import connectome_dask.crantpy as cp" in res["crantpy_port"].notebook.cells[2].source
