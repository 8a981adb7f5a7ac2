"""Scale and extent checks of points against ROI meshes (:class:`RoiScaleWarning`)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import RoiError

__all__ = ["RoiScaleWarning"]

# the extent check of assign / assign_rois: warn when the points' and the meshes' extents
# differ by this factor, judged on at least _SCALE_MIN_POINTS points (a few points span nothing)
_SCALE_FACTOR = 4.0


_SCALE_MIN_POINTS = 256


class RoiScaleWarning(UserWarning):
    """Points and ROI meshes do not overlap, or their extents differ by 4x or more: units?

    E.g. hemibrain synapses in 8 nm voxels ingested as nm: they still overlap the
    meshes (both start near 0) but span 1/8 of them, and most labels are wrong.
    """


def _warn_scale(P: np.ndarray, bounds: np.ndarray, scale: float, what: str, error: bool = False) -> None:
    def bbox(Q):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            return np.nanmin(Q, axis=0), np.nanmax(Q, axis=0)

    def overlaps(lo, hi):
        return np.isfinite(lo).all() and (hi >= bounds[0]).all() and (lo <= bounds[1]).all()

    # a strided sample's bbox lies inside the full bbox: if it overlaps the
    # meshes, so do all points, and the full pass (20 % of a fast assign) is
    # skipped; a small sample, as each strided row is a cache miss
    step = max(1, len(P) // 4096)
    sample = P[::step]
    if step > 1 and overlaps(*bbox(sample)):
        _check_extent(sample, bounds, scale, what)
        return
    lo, hi = bbox(P)
    if not np.isfinite(lo).all():
        return
    if overlaps(lo, hi):
        _check_extent(sample, bounds, scale, what)
        return
    ps = float(np.abs(np.concatenate([lo, hi])).max()) or 1.0
    ms = float(np.abs(bounds).max()) or 1.0
    ratio = ps / ms
    hint = ""
    if ratio > 3 or ratio < 1 / 3:
        hint = (f"; the points are ~{ratio:.3g}x larger than the meshes: a units mismatch? "
                f"(meshes were scaled by {scale:g}; try scale={scale * 10 ** round(math.log10(ratio)):g})")
    msg = (f"{what}: points (bbox {lo.round(3).tolist()}..{hi.round(3).tolist()}) do not overlap the "
           f"ROI meshes (bbox {bounds[0].round(3).tolist()}..{bounds[1].round(3).tolist()}) at all{hint}")
    if error:
        raise RoiError(msg)
    warnings.warn(msg, RoiScaleWarning, stacklevel=4)


def _check_extent(P: np.ndarray, bounds: np.ndarray, scale: float, what: str) -> None:
    """Warn when the points' extent and the meshes' extent differ by a factor >= 4.

    Overlapping points can still be in the wrong units: hemibrain synapses in
    8 nm voxels ingested as nm start near 0 like the meshes but span 1/8 of
    them (90 % wrong labels). The extent is the largest side of the 1st..99th
    percentile box (robust to a few stray points), judged only on
    ``_SCALE_MIN_POINTS`` or more finite points.
    """
    Q = np.asarray(P, dtype=np.float64)
    Q = Q[np.isfinite(Q).all(axis=1)]
    if len(Q) < _SCALE_MIN_POINTS:
        return
    lo, hi = np.percentile(Q[:: max(1, len(Q) // 65536)], [1, 99], axis=0)
    ext_p = float((hi - lo).max())
    ext_m = float((bounds[1] - bounds[0]).max())
    if not (ext_p > 0 and ext_m > 0):
        return
    ratio = ext_p / ext_m
    if 1 / _SCALE_FACTOR < ratio < _SCALE_FACTOR:
        return
    if ratio < 1:
        hint = ("Are the points in voxels but read as nm (hemibrain: ingest with units='voxels', "
                f"voxel_size=8), or the meshes scaled too much (scale={scale:g}; try "
                f"scale={scale * ratio:.3g})? Ignore this if the points cover only part of the "
                "meshes' volume on purpose.")
    else:
        hint = (f"Are the meshes in larger units than the points (scale={scale:g}; meshes in "
                f"micrometres need scale='um'; try scale={scale * ratio:.3g})? Ignore this if the "
                "meshes cover only part of the points' volume on purpose.")
    warnings.warn(
        f"{what}: the points' extent is ~{ratio:.3g}x that of the ROI meshes (largest side "
        f"{ext_p:.4g} vs {ext_m:.4g}, 1st..99th percentile of {len(Q)} points): a units "
        f"mismatch? {hint}",
        RoiScaleWarning, stacklevel=5)
