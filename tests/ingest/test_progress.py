"""Progress of the ingest: a bar on a terminal, a few log lines in a log (no ``\\r`` frames)."""

from __future__ import annotations

import logging
import re

import pytest

from connectome_dask import _compute
from connectome_dask.ingest import ingest

from . import _releases as R


@pytest.mark.parametrize("writer", ["flywire-783", "neuprint-neo4j"])
def test_no_terminal_gives_a_few_log_lines(tmp_path, capsys, caplog, writer):
    rel = R.WRITERS[writer](R.connectome(n_syn=3000, n_neurons=20), tmp_path / "rel")
    with caplog.at_level(logging.INFO, logger="connectome_dask"):
        ingest(rel, tmp_path / "store", progress=True, batch_rows=256)  # ~12 batches per pass
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [r.getMessage() for r in caplog.records if r.name == "connectome_dask"]
    passes = ["ingest 1/2 (ids)", "ingest 2/2 (write)"] + (["ingest 0/2 (join the neo4j export)"]
                                                          if writer == "neuprint-neo4j" else [])
    for p in passes:
        mine = [m for m in lines if m.startswith(p + ":")]
        assert mine[0].startswith(f"{p}: started") and mine[-1].startswith(f"{p}: done"), mine
        assert len(mine) <= 12, mine  # start, quarters (and the join's 7 pass names), end


def test_terminal_gets_a_bar(monkeypatch):
    monkeypatch.setattr(_compute, "_interactive", lambda: True)
    bar = _compute.progress_bar(10, "x", progress=True)
    assert type(bar).__name__ == "tqdm_asyncio" or hasattr(bar, "format_dict")
    bar.close()
    assert _compute.progress_bar(10, "x", progress=False) is None


def test_log_progress_counts_quarters(caplog):
    with caplog.at_level(logging.INFO, logger="connectome_dask"):
        bar = _compute._LogProgress(100, "job", "rows")
        for _ in range(100):
            bar.update(1)
        bar.close()
    msgs = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0] for m in msgs[:4]] == ["job: started", "job: 25%", "job: 50%", "job: 75%"]
    assert re.fullmatch(r"job: done, 100 rows in \d+\.\d s", msgs[4]) and len(msgs) == 5
