"""Independent containment reference for the ROI tests (plain numpy, no connectome_dask code).

Imported as ``from tests._gwn import gwn_reference`` (the suite is a package).
"""

from __future__ import annotations

import numpy as np


def gwn_reference(P: np.ndarray, V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Brute-force generalized winding number (Van Oosterom-Strackee solid angles), numpy."""
    A, B, C = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    out = np.empty(len(P))
    for s in range(0, len(P), 32):
        p = P[s : s + 32, None, :]
        a, b, c = A[None] - p, B[None] - p, C[None] - p
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        det = np.einsum("ijk,ijk->ij", a, np.cross(b, c))
        den = la * lb * lc + np.einsum("ijk,ijk->ij", a, b) * lc + np.einsum("ijk,ijk->ij", a, c) * lb \
            + np.einsum("ijk,ijk->ij", b, c) * la
        out[s : s + 32] = (2 * np.arctan2(det, den)).sum(axis=1) / (4 * np.pi)
    return out
