"""Tests of ``connectome_dask.crantpy``: crantpy's semantics against a pure-pandas reference."""
