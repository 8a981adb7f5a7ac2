"""The nested matrix classes: :class:`NestedMatrix` (square) and :class:`DirectedNestedMatrix` (source x target)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ConnectomeDaskError
from ..labels import str_value
from .axes import _Annotations, _Axis, _check_axis_parts
from .base import _build_matrix, _NestedBase
from .common import (
    _NORM_SCOPES,
    AnnotationScope,
    NormalizationScope,
    WeightMode,
    _is_connectome,
    _is_dask_frame,
    _log,
    _materialize,
    _provenance,
    _validate_common,
)
from .select import NeuropilCollection, _sel_attrs, _select_codes, _selection
from .sources import (
    _neuropil_groups,
    _PairRows,
    _Pairs,
    _pairs_from_connectivity,
    _Rows,
    _synapse_rows,
)

__all__ = ["DirectedNestedMatrix", "NestedMatrix"]


def _log_build(kind: str, what: str, source: Any, ann: Any, **kw: Any) -> None:
    """crantpy's INFO line at the start of a build (row counts of pandas inputs only: dask / stores are lazy)."""
    rows = len(source) if isinstance(source, pd.DataFrame) else "out-of-core"
    n_ann = len(ann) if isinstance(ann, pd.DataFrame) else "store neuron table"
    extra = ", ".join(f"{k}={v}" for k, v in kw.items())
    _log.info("Building %s from %s: input_rows=%s, annotation_rows=%s, %s", kind, what, rows, n_ann, extra)


class NestedMatrix(_NestedBase):
    """Square neuron x neuron connectivity matrix ordered and blocked by cell type.

    Build with :meth:`from_connectivity`, :meth:`from_synapses` or
    :meth:`from_synapses_by_neuropil` (pandas frames, a dask DataFrame, or a
    :class:`~connectome_dask.store.Connectome`). Instances are immutable;
    public properties are read-only views and type matrices are cached.

    Parameters
    ----------
    matrix
        Square DataFrame whose index and columns equal ``ordered_neurons``.
    type_boundaries
        Type -> (start, end) slices, contiguous from 0, in order.
    ordered_neurons
        Neuron IDs in matrix order (typed blocks first).
    neuron_to_type
        Neuron ID -> type for the typed neurons.

    Raises
    ------
    ValueError
        ``matrix`` is not square or its index / columns differ from
        ``ordered_neurons``; ``ordered_neurons`` has null or duplicate IDs;
        the type boundaries are not contiguous from 0, do not match
        ``neuron_to_type``, or a typed neuron comes after them.

    Examples
    --------
    >>> import pandas as pd
    >>> adj = pd.DataFrame({1: [0, 10, 0], 2: [5, 0, 15], 3: [0, 20, 0]}, index=[1, 2, 3])
    >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ER", "ER", "Pbt"]})
    >>> m = NestedMatrix.from_connectivity(adj, ann)
    >>> dict(m.type_boundaries)
    {'ER': (0, 2), 'Pbt': (2, 3)}
    """

    _square = True

    def __init__(
        self,
        matrix: pd.DataFrame,
        type_boundaries: Mapping[Any, tuple[int, int]],
        ordered_neurons: Iterable[Any],
        neuron_to_type: Mapping[Any, Any],
    ) -> None:
        ordered = list(ordered_neurons)
        if matrix.shape[0] != matrix.shape[1]:
            raise ConnectomeDaskError(f"matrix must be square, got shape {matrix.shape}")
        axis = _check_axis_parts(matrix, ordered, type_boundaries, neuron_to_type, "ordered_neurons")
        idx = [str_value(i) for i in matrix.index]
        cols = [str_value(i) for i in matrix.columns]
        if idx != cols:
            raise ConnectomeDaskError("matrix index and columns must match exactly")
        if idx != list(axis.ids):
            raise ConnectomeDaskError("matrix axes must match ordered_neurons exactly")
        data = sp.csr_matrix(matrix.to_numpy(dtype=np.float64, na_value=0.0)) if len(idx) else sp.csr_matrix((0, 0))
        self._init_parts(data, axis, axis, {"source": "constructor"})

    @classmethod
    def _from_parts(cls, data, axis: _Axis, attrs: Mapping[str, Any]) -> NestedMatrix:
        obj = cls.__new__(cls)
        obj._init_parts(data, axis, axis, attrs)
        return obj

    def __repr__(self) -> str:
        types = list(self._src.boundaries)
        ts = ", ".join(types[:5]) + (f", ... ({len(types)} total)" if len(types) > 5 else "")
        return f"NestedMatrix({len(self._src)} neurons, types=[{ts}])"

    @property
    def type_boundaries(self) -> Mapping[str, tuple[int, int]]:
        """Read-only mapping type -> (start, end) slice of :attr:`ordered_neurons`.

        Examples
        --------
        >>> adj = pd.DataFrame({1: [0, 10, 0], 2: [5, 0, 15], 3: [0, 20, 0]}, index=[1, 2, 3])
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ER", "ER", "Pbt"]})
        >>> m = NestedMatrix.from_connectivity(adj, ann)
        >>> dict(m.type_boundaries)
        {'ER': (0, 2), 'Pbt': (2, 3)}
        """
        return MappingProxyType(self._src.boundaries)

    @property
    def ordered_neurons(self) -> tuple[str, ...]:
        """Neuron IDs (str) in matrix order.

        Examples
        --------
        >>> adj = pd.DataFrame({1: [0, 10, 0], 2: [5, 0, 15], 3: [0, 20, 0]}, index=[1, 2, 3])
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ER", "ER", "Pbt"]})
        >>> m = NestedMatrix.from_connectivity(adj, ann)
        >>> m.ordered_neurons
        ('1', '2', '3')
        """
        return tuple(self._src.ids.tolist())

    @cached_property
    def _n2t(self) -> dict[str, str]:
        return self._src.neuron_to_type()

    @property
    def neuron_to_type(self) -> Mapping[str, str]:
        """Read-only mapping neuron ID -> type (typed neurons only).

        Examples
        --------
        >>> adj = pd.DataFrame({1: [0, 10, 0], 2: [5, 0, 15], 3: [0, 20, 0]}, index=[1, 2, 3])
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["ER", "ER", "Pbt"]})
        >>> m = NestedMatrix.from_connectivity(adj, ann)
        >>> dict(m.neuron_to_type)
        {'1': 'ER', '2': 'ER', '3': 'Pbt'}
        """
        return MappingProxyType(self._n2t)

    # -- constructors
    @classmethod
    def from_connectivity(
        cls,
        connections_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        cell_type_column: str = "cell_type",
        neuron_id_column: str = "root_id",
        type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
    ) -> NestedMatrix:
        """Nested matrix from an adjacency matrix or an aggregated edge list.

        Parameters
        ----------
        connections_df
            Adjacency matrix (index = presynaptic IDs, columns = postsynaptic
            IDs) or an edge list with columns ``pre, post[, weight]``,
            ``source, target[, weight | n_syn]`` or ``type.from, type.to[, weight]``
            (duplicate pairs are summed; no weight column counts rows).
            Columns matching several formats are rejected. A
            :class:`~connectome_dask.store.Connectome` gives synapse counts.
        neuron_annotations
            One row per neuron (first row per ID wins, typed rows preferred).
            Optional for a Connectome (its neuron table is used).
        cell_type_column, neuron_id_column
            Default ``"cell_type"`` / ``"root_id"`` (crantpy's); a
            Connectome's own neuron table uses ``"type"`` / ``"bodyId"``
            when it has no column of the given name.
        type_order
            Preferred type order (exact labels or letter prefixes).
        annotation_scope
            ``"annotated_only"`` or ``"all"``.

        Returns
        -------
        NestedMatrix

        Raises
        ------
        ValueError
            Unknown ``annotation_scope``; no ``neuron_annotations`` for pandas
            input; ``connections_df`` matches several edge-list formats, has a
            non-numeric weight column, or is neither an edge list nor a numeric
            adjacency matrix.
        TypeError
            ``connections_df`` or ``neuron_annotations`` is not a pandas DataFrame.
        KeyError
            ``neuron_annotations`` lacks the ID or type column.

        Examples
        --------
        >>> import pandas as pd
        >>> edges = pd.DataFrame({"pre": [1, 1, 2], "post": [2, 2, 1], "weight": [3, 4, 5]})
        >>> ann = pd.DataFrame({"root_id": [1, 2], "cell_type": ["A", "B"]})
        >>> NestedMatrix.from_connectivity(edges, ann).matrix.loc["1", "2"]
        np.float64(7.0)
        """
        type_order = _materialize(type_order)
        if _is_connectome(connections_df) or _is_dask_frame(connections_df):
            return cls.from_synapses(
                connections_df,
                neuron_annotations,
                weight_mode="count",
                cell_type_column=cell_type_column,
                neuron_id_column=neuron_id_column,
                type_order=type_order,
                annotation_scope=annotation_scope,
            )
        _validate_common(None, None, annotation_scope)
        if neuron_annotations is None:
            raise ConnectomeDaskError("neuron_annotations is required for pandas input")
        _log_build("NestedMatrix", "connectivity", connections_df, neuron_annotations,
                   annotation_scope=annotation_scope, type_order=type_order)
        ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
        pairs = _pairs_from_connectivity(connections_df)
        attrs = _provenance(
            connections_df, weight_mode="given", annotation_scope=annotation_scope, type_order=type_order
        )
        return cls._finish(pairs, ann, annotation_scope, None, type_order, attrs)

    @classmethod
    def _finish_rows(cls, rows, ann: _Annotations, weight_mode, type_order, attrs, min_weight: int) -> NestedMatrix:
        """Matrix of scoped synapse rows: de-duplicated pairs; neurons are those of the kept pairs."""
        pairs = rows.pairs()
        _log.info("Aggregated synapses into %d weighted edge(s) before matrix construction", len(pairs.src))
        if min_weight > 1:
            pairs = pairs.at_least(min_weight)
        return cls._finish(pairs, ann, "all", weight_mode, type_order, attrs)

    @classmethod
    def _finish(cls, pairs: _Pairs, ann: _Annotations, scope: str, weight_mode, type_order, attrs) -> NestedMatrix:
        ann_pos = ann.positions(pairs.universe)
        pairs = pairs.scoped(ann_pos, scope)
        w = pairs.normalised(weight_mode) if weight_mode else pairs.weight
        present = np.concatenate([pairs.present_src, pairs.present_tgt])
        axis = _Axis.build(present, pairs.universe, ann, ann_pos, type_order, pairs.universe_int)
        out = cls._from_parts(_build_matrix(pairs, w, axis, axis), axis, attrs)
        _log.info("Constructed NestedMatrix with matrix_shape=%s and %d nonzero value(s)", out.shape, out.nnz)
        return out

    @classmethod
    def from_synapses(
        cls,
        synapses_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        pre_col: str = "pre_pt_root_id",
        post_col: str = "post_pt_root_id",
        weight_mode: WeightMode = "relative_outgoing",
        weight_column: str | None = None,
        cell_type_column: str = "cell_type",
        neuron_id_column: str = "root_id",
        type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
        *,
        confidence: float | None = None,
        min_weight: int = 1,
        progress: bool | None = None,
    ) -> NestedMatrix:
        """Nested matrix from synapse rows (pandas, dask DataFrame or a Connectome).

        Parameters
        ----------
        synapses_df
            One row per synapse with body IDs in ``pre_col`` / ``post_col``
            (pandas or dask), or a :class:`~connectome_dask.store.Connectome`
            (whole brain, out of core: pair counts via
            :func:`connectome_dask.aggregate.pair_counts`).
        neuron_annotations
            Annotation table; optional for a Connectome.
        pre_col, post_col
            Columns with the presynaptic / postsynaptic body IDs (pandas or
            dask input).
        weight_mode
            ``"relative_outgoing"``, ``"relative_incoming"``, ``"count"`` or
            ``"column"`` (sum of ``weight_column``; not for a Connectome).
        weight_column
            Column summed for ``weight_mode="column"`` only.
        cell_type_column, neuron_id_column, type_order, annotation_scope
            As :meth:`from_connectivity`.
        confidence
            Connectome only: keep synapses with confidence ``>`` this.
        min_weight
            Drop neuron pairs with fewer synapses (before normalisation).
        progress
            Show a progress bar for out-of-core work.

        Returns
        -------
        NestedMatrix

        Raises
        ------
        ValueError
            Unknown ``weight_mode`` / ``annotation_scope``; ``weight_column``
            given without ``weight_mode="column"`` or missing with it (or not
            numeric); ``weight_mode="column"`` for a Connectome; ``confidence``
            for a DataFrame; no ``neuron_annotations`` for DataFrame input;
            ``min_weight < 1``.
        TypeError
            ``synapses_df`` is neither a pandas / dask DataFrame nor a Connectome.
        KeyError
            A named column is missing.

        Examples
        --------
        >>> import pandas as pd
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 1], "post_pt_root_id": [2, 2, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "B"]})
        >>> m = NestedMatrix.from_synapses(syn, ann)
        >>> round(float(m.matrix.loc["1", "2"]), 3)
        0.667
        """
        _validate_common(weight_mode, weight_column, annotation_scope)
        type_order = _materialize(type_order)
        _log_build("NestedMatrix", "synapses", synapses_df, neuron_annotations, pre_col=pre_col, post_col=post_col,
                   weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope)
        rows, ann = _synapse_rows(
            synapses_df, neuron_annotations, pre_col, post_col, weight_mode, weight_column,
            cell_type_column, neuron_id_column, annotation_scope, confidence, min_weight, progress,
        )  # fmt: skip
        attrs = _provenance(
            synapses_df, weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope,
            type_order=type_order, min_weight=min_weight, confidence=confidence,
        )  # fmt: skip
        return cls._finish_rows(rows, ann, weight_mode, type_order, attrs, int(min_weight))

    @classmethod
    def from_synapses_by_neuropil(
        cls,
        synapses_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        neuropil_names: Sequence[str] | None = None,
        coordinates: str = "nm",
        position_column: str | Sequence[str] = "ctr_pt_position",
        pre_col: str = "pre_pt_root_id",
        post_col: str = "post_pt_root_id",
        weight_mode: WeightMode = "relative_outgoing",
        weight_column: str | None = None,
        cell_type_column: str = "cell_type",
        neuron_id_column: str = "root_id",
        type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
        include_other: bool = True,
        voxel_offset: tuple[float, float, float] | None = None,
        *,
        rois: Any = None,
        voxel_size: tuple[float, float, float] | None = None,
        confidence: float | None = None,
        min_weight: int = 1,
        progress: bool | None = None,
    ) -> NeuropilCollection:
        """One nested matrix per neuropil (ROI), as a :class:`NeuropilCollection`.

        As crantpy, a synapse counts in EVERY listed neuropil whose mesh
        contains its position (nested meshes, e.g. a glomerulus and its
        neuropil, both count; so do overlapping ones), and in ``"other"``
        when it is in none of the listed ones. Containment is the exact
        per-mesh test of :meth:`connectome_dask.rois.RoiSet.contains`.
        Weighting, scope and ordering follow :meth:`from_synapses` within
        each neuropil.

        * pandas / dask DataFrame: the positions in ``position_column`` are
          tested against the meshes of ``rois`` (partition by partition for
          dask).
        * Connectome with meshes (``rois=``, or else the store's own ROI set
          written by :func:`~connectome_dask.rois.assign_rois`, reloaded with
          :meth:`RoiSet.from_store <connectome_dask.rois.RoiSet.from_store>`):
          the same rule. Every partition of the store tests its synapses'
          positions against each listed mesh and returns pair counts per
          neuropil; the partial counts are summed in a tree (integers: the
          same result for any chunk or partition size, and the same matrices
          as from a DataFrame of the same synapses). The store's positions
          for ``position_column``: ``"ctr_pt_position"`` (the default) is the
          centre point ``x, y, z``, or the postsynaptic site ``x_post..`` in a
          store holding both sites (it has no centre point; ``roi_post`` is
          assigned from that site); ``"pre_pt_position"`` /
          ``"post_pt_position"`` name a site; three names are store columns
          or crantpy's split names (``post_pt_position_x``, ...). A listed
          hierarchy group without a mesh of its own is the union of its
          descendants' meshes.
        * Connectome without meshes (its ``rois.json`` has names only, or it
          has no positions): the fallback uses the store's one ROI code per
          synapse (the postsynaptic site's ``roi_post``) and the hierarchy: a
          listed ROI counts every code of its subtree. Nested ROIs that are
          parent and child in the hierarchy both count, but two overlapping
          ROIs that are not count a synapse only once (in the one its code
          names), unlike crantpy.

        Parameters
        ----------
        synapses_df
            One row per synapse (pandas or dask, with positions), or a
            :class:`~connectome_dask.store.Connectome` (with positions and
            meshes, or with ROI codes).
        neuron_annotations
            Annotation table; optional for a Connectome.
        neuropil_names
            ROIs to build (default: all). Unknown names raise ``ValueError``.
        coordinates
            ``"nm"`` or ``"pixels"`` (pixels: ``(p + voxel_offset) * voxel_size``;
            ``voxel_size`` defaults to crantpy's scale ``(8, 8, 42)``,
            :data:`connectome_dask.crantpy.SCALE`). A store's positions are
            nm: ``"pixels"`` is for DataFrame input only.
        position_column
            Column holding ``[x, y, z]`` per row, or three column names (for
            a store see above).
        pre_col, post_col, weight_mode, weight_column
            As :meth:`from_synapses`.
        cell_type_column, neuron_id_column, type_order, annotation_scope
            As :meth:`from_connectivity`.
        include_other
            Collect synapses outside every listed ROI under ``"other"``.
        voxel_offset
            Added to pixel positions before scaling by ``voxel_size``.
        rois
            The meshes: a :class:`connectome_dask.rois.RoiSet` or a folder
            for ``RoiSet.from_directory``. Required for DataFrame input; for
            a Connectome it replaces the store's own meshes.
        voxel_size
            nm per pixel for ``coordinates="pixels"``.
        confidence, min_weight, progress
            As :meth:`from_synapses` (``min_weight`` applies per neuropil).

        Returns
        -------
        NeuropilCollection

        Raises
        ------
        ValueError
            As :meth:`from_synapses`; also an unknown ``coordinates`` or
            neuropil name, no ``rois`` for pandas input, a missing
            ``weight_column``, malformed positions, ``coordinates="pixels"``
            or ``rois=`` without positions for a Connectome, or a store with
            neither meshes nor ROI codes.
        TypeError
            ``synapses_df`` is neither a pandas / dask DataFrame nor a Connectome.
        KeyError
            A named column is missing (for a store: a position column it
            does not have).
        RoiError
            The store's ``rois.json`` lists meshes that cannot be read.

        Examples
        --------
        From a store with ROIs assigned (its meshes; neuropils without synapses are left out):

        >>> c = NestedMatrix.from_synapses_by_neuropil(conn, neuropil_names=["MB_CA_R"])
        >>> list(c), c.MB_CA_R.shape[0] > 0
        (['MB_CA_R', 'other'], True)
        """
        _validate_common(weight_mode, weight_column, annotation_scope)
        if coordinates not in ("nm", "pixels"):
            raise ConnectomeDaskError(f"coordinates must be 'nm' or 'pixels', got {coordinates!r}")
        type_order, neuropil_names = _materialize(type_order), _materialize(neuropil_names)
        _log_build("NestedMatrix collection", "synapses by neuropil", synapses_df, neuron_annotations,
                   coordinates=coordinates, include_other=include_other, weight_mode=weight_mode,
                   annotation_scope=annotation_scope)
        groups = _neuropil_groups(
            synapses_df, neuron_annotations, neuropil_names, coordinates, position_column, pre_col, post_col,
            weight_mode, weight_column, cell_type_column, neuron_id_column, annotation_scope, include_other,
            voxel_offset, rois, voxel_size, confidence, min_weight, progress,
        )  # fmt: skip
        out = NeuropilCollection()
        for name, rows, ann in groups:
            _log.info("Building NestedMatrix for neuropil %s", name)
            attrs = _provenance(
                synapses_df, weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope,
                type_order=type_order, min_weight=min_weight, confidence=confidence, neuropil=name,
            )  # fmt: skip
            out[name] = cls._finish_rows(rows, ann, weight_mode, type_order, attrs, int(min_weight))
        return out


# ----------------------------------------------------------------------------- DirectedNestedMatrix


class DirectedNestedMatrix(_NestedBase):
    """Rectangular source x target nested matrix with independent axes.

    Rows are presynaptic (source) neurons, columns postsynaptic (target).
    On each axis the type selector and the neuron selector are unioned;
    ``None`` for both selects every neuron available on that axis.

    Parameters
    ----------
    matrix
        DataFrame whose index equals ``source_neurons`` and whose columns
        equal ``target_neurons``.
    source_neurons, target_neurons
        Neuron IDs of the rows / columns in order (typed blocks first).
    source_type_boundaries, target_type_boundaries
        Type -> (start, end) slices per axis, contiguous from 0, in order
        (default: no typed blocks).
    source_neuron_to_type, target_neuron_to_type
        Neuron ID -> type of the typed neurons per axis.

    Raises
    ------
    ValueError
        The index / columns differ from ``source_neurons`` /
        ``target_neurons``; an axis has null or duplicate IDs; its type
        boundaries are not contiguous from 0, do not match its neuron -> type
        mapping, or a typed neuron comes after them.

    Examples
    --------
    >>> import pandas as pd
    >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
    >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
    >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types="A", weight_mode="count")
    >>> d.source_neurons, d.target_neurons
    (('1',), ('2', '3'))
    """

    def __init__(
        self,
        matrix: pd.DataFrame,
        source_neurons: Iterable[Any],
        target_neurons: Iterable[Any],
        source_type_boundaries: Mapping[Any, tuple[int, int]] | None = None,
        target_type_boundaries: Mapping[Any, tuple[int, int]] | None = None,
        source_neuron_to_type: Mapping[Any, Any] | None = None,
        target_neuron_to_type: Mapping[Any, Any] | None = None,
    ) -> None:
        src = _check_axis_parts(matrix, list(source_neurons), source_type_boundaries or {}, source_neuron_to_type or {}, "source_neurons")
        tgt = _check_axis_parts(matrix, list(target_neurons), target_type_boundaries or {}, target_neuron_to_type or {}, "target_neurons")
        if [str_value(i) for i in matrix.index] != list(src.ids):
            raise ConnectomeDaskError("matrix index must match source_neurons exactly")
        if [str_value(i) for i in matrix.columns] != list(tgt.ids):
            raise ConnectomeDaskError("matrix columns must match target_neurons exactly")
        self._init_parts(sp.csr_matrix(matrix.to_numpy(dtype=np.float64, na_value=0.0)), src, tgt, {"source": "constructor"})

    @classmethod
    def _from_parts(cls, data, src: _Axis, tgt: _Axis, attrs: Mapping[str, Any]) -> DirectedNestedMatrix:
        obj = cls.__new__(cls)
        obj._init_parts(data, src, tgt, attrs)
        return obj

    def __repr__(self) -> str:
        return (
            f"DirectedNestedMatrix({len(self._src)} source neurons, {len(self._tgt)} target neurons, "
            f"source_types={list(self._src.boundaries)}, target_types={list(self._tgt.boundaries)})"
        )

    @property
    def source_neurons(self) -> tuple[str, ...]:
        """Row neuron IDs in order.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> d.source_neurons
        ('1', '2')
        """
        return tuple(self._src.ids.tolist())

    @property
    def target_neurons(self) -> tuple[str, ...]:
        """Column neuron IDs in order.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> d.target_neurons
        ('2', '3')
        """
        return tuple(self._tgt.ids.tolist())

    @property
    def source_type_boundaries(self) -> Mapping[str, tuple[int, int]]:
        """Read-only source type -> row slice.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> dict(d.source_type_boundaries)
        {'A': (0, 1), 'B': (1, 2)}
        """
        return MappingProxyType(self._src.boundaries)

    @property
    def target_type_boundaries(self) -> Mapping[str, tuple[int, int]]:
        """Read-only target type -> column slice.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> dict(d.target_type_boundaries)
        {'B': (0, 1), 'C': (1, 2)}
        """
        return MappingProxyType(self._tgt.boundaries)

    @property
    def source_neuron_to_type(self) -> Mapping[str, str]:
        """Read-only source neuron ID -> type.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> dict(d.source_neuron_to_type)
        {'1': 'A', '2': 'B'}
        """
        return MappingProxyType(self._src.neuron_to_type())

    @property
    def target_neuron_to_type(self) -> Mapping[str, str]:
        """Read-only target neuron ID -> type.

        Examples
        --------
        >>> syn = pd.DataFrame({"pre_pt_root_id": [1, 1, 2], "post_pt_root_id": [2, 3, 3]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_synapses(syn, ann, source_types=["A", "B"], weight_mode="count")
        >>> dict(d.target_neuron_to_type)
        {'2': 'B', '3': 'C'}
        """
        return MappingProxyType(self._tgt.neuron_to_type())

    @classmethod
    def _finish(
        cls, pairs: _Pairs, ann: _Annotations, scope: str, weight_mode, sel: dict, norm_scope: str, attrs
    ) -> DirectedNestedMatrix:
        ann_pos = ann.positions(pairs.universe)
        return cls._finish_rows(_PairRows(pairs.scoped(ann_pos, scope)), ann, weight_mode, sel, norm_scope, attrs, 1)

    @classmethod
    def _finish_rows(
        cls, rows: _Rows | _PairRows | Any, ann: _Annotations, weight_mode, sel: dict, norm_scope: str, attrs,
        min_weight: int,
    ) -> DirectedNestedMatrix:
        """crantpy's order: axes from the scoped rows, then the axis filter, ``id`` de-duplication, weights."""
        u = rows.universe
        ann_pos = ann.positions(u)
        src_codes = _select_codes(rows.present_src, u, ann, ann_pos, sel["source_types"], sel["source_neurons"])
        tgt_codes = _select_codes(rows.present_tgt, u, ann, ann_pos, sel["target_types"], sel["target_neurons"])
        src = _Axis.build(src_codes, u, ann, ann_pos, sel["source_type_order"], rows.universe_int)
        tgt = _Axis.build(tgt_codes, u, ann, ann_pos, sel["target_type_order"], rows.universe_int)
        in_src = np.zeros(len(u), dtype=bool)
        in_src[src.codes] = True
        in_tgt = np.zeros(len(u), dtype=bool)
        in_tgt[tgt.codes] = True
        if norm_scope == "all" and weight_mode == "relative_outgoing":
            sub = rows.pairs(in_src, None)
        elif norm_scope == "all" and weight_mode == "relative_incoming":
            sub = rows.pairs(None, in_tgt)
        else:
            sub = rows.pairs(in_src, in_tgt)
        if min_weight > 1:
            sub = sub.at_least(min_weight)
        w = sub.normalised(weight_mode) if weight_mode else sub.weight
        out = cls._from_parts(_build_matrix(sub, w, src, tgt), src, tgt, attrs)
        _log.info("Constructed DirectedNestedMatrix with matrix_shape=%s and %d nonzero value(s)", out.shape, out.nnz)
        return out

    @classmethod
    def from_connectivity(
        cls,
        connections_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        source_types: Any = None,
        target_types: Any = None,
        source_neurons: Any = None,
        target_neurons: Any = None,
        cell_type_column: str = "cell_type",
        neuron_id_column: str = "root_id",
        type_order: Sequence[Any] | None = None,
        source_type_order: Sequence[Any] | None = None,
        target_type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
    ) -> DirectedNestedMatrix:
        """Rectangular nested matrix from an adjacency matrix / edge list (or a Connectome).

        Sources available are the rows (neurons with outgoing entries),
        targets the columns. See :meth:`NestedMatrix.from_connectivity`.

        Parameters
        ----------
        connections_df, neuron_annotations
            As :meth:`NestedMatrix.from_connectivity`.
        source_types, target_types, source_neurons, target_neurons
            Axis selectors, as :meth:`from_synapses`.
        cell_type_column, neuron_id_column, type_order, annotation_scope
            As :meth:`NestedMatrix.from_connectivity`.
        source_type_order, target_type_order
            Per-axis type order (default ``type_order``).

        Returns
        -------
        DirectedNestedMatrix

        Raises
        ------
        ValueError, TypeError, KeyError
            As :meth:`NestedMatrix.from_connectivity`.

        Examples
        --------
        >>> edges = pd.DataFrame({"pre": [1, 1, 2], "post": [2, 3, 3], "weight": [4, 1, 6]})
        >>> ann = pd.DataFrame({"root_id": [1, 2, 3], "cell_type": ["A", "B", "C"]})
        >>> d = DirectedNestedMatrix.from_connectivity(edges, ann, source_types=["A"])
        >>> d.source_neurons, d.target_neurons, d.matrix.loc["1"].tolist()
        (('1',), ('2', '3'), [4.0, 1.0])
        """
        if _is_connectome(connections_df) or _is_dask_frame(connections_df):
            return cls.from_synapses(
                connections_df, neuron_annotations, source_types, target_types, source_neurons, target_neurons,
                weight_mode="count", cell_type_column=cell_type_column, neuron_id_column=neuron_id_column,
                type_order=type_order, source_type_order=source_type_order, target_type_order=target_type_order,
                annotation_scope=annotation_scope,
            )  # fmt: skip
        _validate_common(None, None, annotation_scope)
        if neuron_annotations is None:
            raise ConnectomeDaskError("neuron_annotations is required for pandas input")
        ann = _Annotations(neuron_annotations, neuron_id_column or "root_id", cell_type_column or "cell_type")
        pairs = _pairs_from_connectivity(connections_df)
        sel = _selection(source_types, target_types, source_neurons, target_neurons, type_order, source_type_order, target_type_order)
        attrs = _provenance(connections_df, weight_mode="given", annotation_scope=annotation_scope, **_sel_attrs(sel))
        return cls._finish(pairs, ann, annotation_scope, None, sel, "selected", attrs)

    @classmethod
    def from_synapses(
        cls,
        synapses_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        source_types: Any = None,
        target_types: Any = None,
        source_neurons: Any = None,
        target_neurons: Any = None,
        pre_col: str = "pre_pt_root_id",
        post_col: str = "post_pt_root_id",
        weight_mode: WeightMode = "relative_outgoing",
        weight_column: str | None = None,
        normalization_scope: NormalizationScope = "selected",
        cell_type_column: str = "cell_type",
        neuron_id_column: str = "root_id",
        type_order: Sequence[Any] | None = None,
        source_type_order: Sequence[Any] | None = None,
        target_type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
        *,
        confidence: float | None = None,
        min_weight: int = 1,
        progress: bool | None = None,
    ) -> DirectedNestedMatrix:
        """Rectangular nested matrix from synapse rows (pandas, dask or a Connectome).

        Parameters
        ----------
        synapses_df, neuron_annotations, pre_col, post_col, weight_mode, weight_column
            As :meth:`NestedMatrix.from_synapses`.
        source_types, target_types, source_neurons, target_neurons
            Axis selectors (a label/ID or an iterable); types and neurons on
            the same axis are unioned; ``None`` and ``None`` = all.
        normalization_scope
            ``"selected"``: relative weights over the selected source x target
            block only; ``"all"``: over all partners (within the annotation
            scope) of each selected source (``relative_outgoing``) or target
            (``relative_incoming``) before restricting the matrix.
        cell_type_column, neuron_id_column, type_order, annotation_scope
            As :meth:`NestedMatrix.from_synapses`.
        source_type_order, target_type_order
            Per-axis type order (default ``type_order``).
        confidence, min_weight, progress
            As :meth:`NestedMatrix.from_synapses`.

        Returns
        -------
        DirectedNestedMatrix

        Raises
        ------
        ValueError
            Unknown ``normalization_scope``; otherwise as
            :meth:`NestedMatrix.from_synapses`.
        TypeError, KeyError
            As :meth:`NestedMatrix.from_synapses`.

        Examples
        --------
        Kenyon cells onto themselves and one target type, from a store:

        >>> d = DirectedNestedMatrix.from_synapses(
        ...     conn, source_types=["KCg-m"], target_types=["KCg-m", "LHPV1c3"], weight_mode="count")
        >>> list(d.source_type_boundaries), list(d.target_type_boundaries)
        (['KCg-m'], ['KCg-m', 'LHPV1c3'])
        >>> d.matrix.shape == d.shape
        True
        """
        _validate_common(weight_mode, weight_column, annotation_scope)
        if normalization_scope not in _NORM_SCOPES:
            raise ConnectomeDaskError(f"normalization_scope must be one of {list(_NORM_SCOPES)}, got {normalization_scope!r}")
        sel = _selection(source_types, target_types, source_neurons, target_neurons, type_order, source_type_order, target_type_order)
        _log_build("DirectedNestedMatrix", "synapses", synapses_df, neuron_annotations, weight_mode=weight_mode,
                   weight_column=weight_column, normalization_scope=normalization_scope,
                   annotation_scope=annotation_scope)
        rows, ann = _synapse_rows(
            synapses_df, neuron_annotations, pre_col, post_col, weight_mode, weight_column,
            cell_type_column, neuron_id_column, annotation_scope, confidence, min_weight, progress,
        )  # fmt: skip
        attrs = _provenance(
            synapses_df, weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope,
            normalization_scope=normalization_scope, min_weight=min_weight, confidence=confidence, **_sel_attrs(sel),
        )  # fmt: skip
        return cls._finish_rows(rows, ann, weight_mode, sel, normalization_scope, attrs, int(min_weight))

    @classmethod
    def from_synapses_by_neuropil(
        cls,
        synapses_df: pd.DataFrame | Any,
        neuron_annotations: pd.DataFrame | None = None,
        neuropil_names: Sequence[str] | None = None,
        coordinates: str = "nm",
        position_column: str | Sequence[str] = "ctr_pt_position",
        source_types: Any = None,
        target_types: Any = None,
        source_neurons: Any = None,
        target_neurons: Any = None,
        pre_col: str = "pre_pt_root_id",
        post_col: str = "post_pt_root_id",
        weight_mode: WeightMode = "relative_outgoing",
        weight_column: str | None = None,
        normalization_scope: NormalizationScope = "selected",
        cell_type_column: str = "cell_type",
        neuron_id_column: str = "root_id",
        type_order: Sequence[Any] | None = None,
        source_type_order: Sequence[Any] | None = None,
        target_type_order: Sequence[Any] | None = None,
        annotation_scope: AnnotationScope = "annotated_only",
        include_other: bool = True,
        voxel_offset: tuple[float, float, float] | None = None,
        *,
        rois: Any = None,
        voxel_size: tuple[float, float, float] | None = None,
        confidence: float | None = None,
        min_weight: int = 1,
        progress: bool | None = None,
    ) -> NeuropilCollection:
        """Directed nested matrices per neuropil; see :meth:`NestedMatrix.from_synapses_by_neuropil`.

        The same neuropil rule and inputs: a synapse counts in every listed
        neuropil mesh containing it (DataFrames, and stores with meshes:
        ``rois=`` or the store's own, tested partition by partition), or by
        the ROI codes and hierarchy of a store without meshes. Neuropils
        whose matrix has no rows or no columns are left out.

        Parameters
        ----------
        synapses_df, neuron_annotations, neuropil_names, coordinates, position_column
            As :meth:`NestedMatrix.from_synapses_by_neuropil`.
        source_types, target_types, source_neurons, target_neurons
            Axis selectors, as :meth:`from_synapses`.
        pre_col, post_col, weight_mode, weight_column
            As :meth:`NestedMatrix.from_synapses`.
        normalization_scope
            As :meth:`from_synapses`.
        cell_type_column, neuron_id_column, type_order, annotation_scope
            As :meth:`NestedMatrix.from_connectivity`.
        source_type_order, target_type_order
            Per-axis type order (default ``type_order``).
        include_other, voxel_offset, rois, voxel_size
            As :meth:`NestedMatrix.from_synapses_by_neuropil`.
        confidence, min_weight, progress
            As :meth:`NestedMatrix.from_synapses`.

        Returns
        -------
        NeuropilCollection

        Raises
        ------
        ValueError
            Unknown ``normalization_scope``; otherwise as
            :meth:`NestedMatrix.from_synapses_by_neuropil`.
        TypeError, KeyError
            As :meth:`NestedMatrix.from_synapses_by_neuropil`.

        Examples
        --------
        >>> c = DirectedNestedMatrix.from_synapses_by_neuropil(
        ...     conn, neuropil_names=["MB_CA_R"], source_types=["KCg-m"], weight_mode="count")
        >>> list(c), list(c["MB_CA_R"].source_type_boundaries)
        (['MB_CA_R', 'other'], ['KCg-m'])
        """
        _validate_common(weight_mode, weight_column, annotation_scope)
        if normalization_scope not in _NORM_SCOPES:
            raise ConnectomeDaskError(f"normalization_scope must be one of {list(_NORM_SCOPES)}, got {normalization_scope!r}")
        if coordinates not in ("nm", "pixels"):
            raise ConnectomeDaskError(f"coordinates must be 'nm' or 'pixels', got {coordinates!r}")
        sel = _selection(source_types, target_types, source_neurons, target_neurons, type_order, source_type_order, target_type_order)
        neuropil_names = _materialize(neuropil_names)
        groups = _neuropil_groups(
            synapses_df, neuron_annotations, neuropil_names, coordinates, position_column, pre_col, post_col,
            weight_mode, weight_column, cell_type_column, neuron_id_column, annotation_scope, include_other,
            voxel_offset, rois, voxel_size, confidence, min_weight, progress,
        )  # fmt: skip
        out = NeuropilCollection()
        for name, rows, ann in groups:
            attrs = _provenance(
                synapses_df, weight_mode=weight_mode, weight_column=weight_column, annotation_scope=annotation_scope,
                normalization_scope=normalization_scope, min_weight=min_weight, confidence=confidence,
                neuropil=name, **_sel_attrs(sel),
            )  # fmt: skip
            m = cls._finish_rows(rows, ann, weight_mode, sel, normalization_scope, attrs, int(min_weight))
            if m.shape[0] and m.shape[1]:
                out[name] = m
        return out
