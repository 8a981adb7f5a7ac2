"""Internals of the synthetic connectome generator (see :mod:`connectome_dask.datasets`).

Everything random that depends on a neuron is drawn from a counter-based
hash generator (splitmix64) keyed by ``(seed, neuron index)``: a neuron's
synapses are therefore the same whatever batch it is generated in, whatever
the Zarr chunk length and whatever block size is appended to the store.

The generative model (Peters' rule at type level):

* every cell type has 1-3 arbor *zones* (a Gaussian cloud with centre inside a
  neuropil and a width of a few micrometres);
* type ``A`` connects to a sparse set of partner types whose zones overlap its
  own (weights ``exp(-d^2 / 2(sa^2 + sb^2))`` times the partner's popularity);
* each neuron has its own zone centres (type centre + a per-neuron shift);
* a connection ``i -> j`` through type edge ``(zone a, zone b)`` places its
  synapses where the two arbor clouds overlap (the product of the two
  Gaussians), so both neurons' skeletons pass near each synapse.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numba
import numpy as np

from .units import parse_units

__all__ = [
    "PROCEDURAL_LAYOUT",
    "PROCEDURAL_HIERARCHY",
    "gen_block",
    "neuron_zone_centres",
    "prim_tree",
    "seed_key",
    "procedural_blob",
    "load_mesh_dir",
    "sample_inside",
    "type_names",
    "skeleton_swc",
]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


# ----------------------------------------------------------------------------- hash RNG


@numba.njit(inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(inline="always")
def _u01(st):
    """Uniform in [0, 1) from the counter state ``st[0]`` (advanced)."""
    st[0] += _GOLDEN
    return float(_mix(st[0]) >> _S11) * _INV53


_MASK21 = np.uint64((1 << 21) - 1)
_S21 = np.uint64(21)
_S42 = np.uint64(42)
_INV21 = 1.0 / 2097152.0


@numba.njit(inline="always")
def _u3(st):
    """Three 21-bit uniforms in [0, 1) from one hash (cheap variates for jitter)."""
    st[0] += _GOLDEN
    h = _mix(st[0])
    return (
        float(h & _MASK21) * _INV21,
        float((h >> _S21) & _MASK21) * _INV21,
        float((h >> _S42) & _MASK21) * _INV21,
    )


@numba.njit(inline="always")
def _g(st):
    """Approximately standard normal (Irwin-Hall sum of three uniforms, variance 1)."""
    a, b, c = _u3(st)
    return (a + b + c - 1.5) * 2.0


@numba.njit(inline="always")
def _stream(key, a, b):
    """Seed a counter state for the pair ``(a, b)`` under ``key``."""
    return _mix(key ^ _mix(np.uint64(a) * _GOLDEN + np.uint64(b) + _M1))


def seed_key(seed: int, domain: int) -> np.uint64:
    """64-bit key for a (seed, purpose) pair."""
    return np.uint64(
        int(_mix_py((int(seed) & 0xFFFFFFFFFFFFFFFF) ^ _mix_py(domain * 0x9E3779B97F4A7C15)))
    )


def _mix_py(z: int) -> int:
    m = 0xFFFFFFFFFFFFFFFF
    z &= m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


@numba.njit(inline="always")
def _pick(cum, lo, hi, u):
    # smallest p in [lo, hi) with cum[p] > u
    a = lo
    b = hi - 1
    while a < b:
        mid = (a + b) >> 1
        if cum[mid] > u:
            b = mid
        else:
            a = mid + 1
    return a


@numba.njit(inline="always")
def _centre(neuron, zone, key_shift, zc, zsig, shift_frac, out, st):
    st[0] = _stream(key_shift, neuron, zone)
    g0 = _g(st)
    g1 = _g(st)
    g2 = _g(st)
    s = zsig[zone] * shift_frac
    out[0] = zc[zone, 0] + s * g0
    out[1] = zc[zone, 1] + s * g1
    out[2] = zc[zone, 2] + s * g2


@numba.njit(cache=True)
def neuron_zone_centres(neurons, zones, key_shift, zc, zsig, shift_frac):
    """Per-neuron arbor centres (nm) for the pairs ``(neurons[k], zones[k])``."""
    out = np.empty((len(neurons), 3), dtype=np.float64)
    tmp = np.empty(3, dtype=np.float64)
    st = np.empty(1, dtype=np.uint64)
    for k in range(len(neurons)):
        _centre(neurons[k], zones[k], key_shift, zc, zsig, shift_frac, tmp, st)
        out[k, 0] = tmp[0]
        out[k, 1] = tmp[1]
        out[k, 2] = tmp[2]
    return out


# ----------------------------------------------------------------------------- generation kernel


@numba.njit(cache=True, nogil=True)
def gen_block(
    lo,
    hi,
    counts,
    ntype,
    e_ptr,
    e_dst,
    e_cum,
    e_scale,
    e_za,
    e_zb,
    m_ptr,
    members,
    m_cum,
    zc,
    zsig,
    shift_frac,
    alpha,
    key_rows,
    key_shift,
    voxel,
    n_neurons,
    out_pre,
    out_post,
    out_xa,
    out_ya,
    out_za,
    out_xb,
    out_yb,
    out_zb,
    out_conf,
    out_size,
):
    """Generate all output synapses of neurons ``lo..hi-1`` into the ``out_*`` arrays.

    Rows come out sorted by ``(pre, post)``; ``out_xa..out_zb`` are the float32
    x/y/z of the pre site then of the post site, on the ``voxel`` grid (nm).
    """
    maxc = 0
    for i in range(lo, hi):
        if counts[i] > maxc:
            maxc = counts[i]
    pj = np.empty(maxc, dtype=np.int32)
    pw = np.empty(maxc, dtype=np.int64)
    pe = np.empty(maxc, dtype=np.int64)
    st = np.empty(1, dtype=np.uint64)
    st2 = np.empty(1, dtype=np.uint64)
    ca = np.empty(3, dtype=np.float64)
    cb = np.empty(3, dtype=np.float64)
    inv_alpha = 1.0 / alpha
    vx, vy, vz = voxel[0], voxel[1], voxel[2]
    ivx, ivy, ivz = 1.0 / vx, 1.0 / vy, 1.0 / vz
    row = 0
    for i in range(lo, hi):
        s_i = counts[i]
        if s_i == 0:
            continue
        st[0] = _stream(key_rows, i, 0)
        a_t = ntype[i]
        elo = e_ptr[a_t]
        ehi = e_ptr[a_t + 1]
        remaining = s_i
        npairs = 0
        while remaining > 0:
            j = -1
            e = elo
            for _try in range(16):
                e = _pick(e_cum, elo, ehi, _u01(st))
                b_t = e_dst[e]
                mlo = m_ptr[b_t]
                mhi = m_ptr[b_t + 1]
                cand = members[_pick(m_cum, mlo, mhi, _u01(st))]
                if cand != i:
                    j = cand
                    break
            if j < 0:
                j = (i + 1) % n_neurons
                e = elo
            u = 1.0 - _u01(st)
            w = 1 + int(math.floor(e_scale[e] * (u ** (-inv_alpha) - 1.0)))
            if w > remaining:
                w = remaining
            pj[npairs] = j
            pw[npairs] = w
            pe[npairs] = e
            npairs += 1
            remaining -= w
        order = np.argsort(pj[:npairs], kind="mergesort")
        for k in range(npairs):
            p = order[k]
            j = pj[p]
            e = pe[p]
            za = e_za[e]
            zb = e_zb[e]
            _centre(i, za, key_shift, zc, zsig, shift_frac, ca, st2)
            _centre(j, zb, key_shift, zc, zsig, shift_frac, cb, st2)
            sa2 = zsig[za] * zsig[za]
            sb2 = zsig[zb] * zsig[zb]
            den = sa2 + sb2
            sd = math.sqrt(sa2 * sb2 / den)
            mx = (ca[0] * sb2 + cb[0] * sa2) / den
            my = (ca[1] * sb2 + cb[1] * sa2) / den
            mz = (ca[2] * sb2 + cb[2] * sa2) / den
            for _r in range(pw[p]):
                x = mx + sd * _g(st)
                y = my + sd * _g(st)
                z = mz + sd * _g(st)
                # post site 100-300 nm away in a random direction
                g3, g4, g5 = _u3(st)
                g3 -= 0.5
                g4 -= 0.5
                g5 -= 0.5
                nrm = math.sqrt(g3 * g3 + g4 * g4 + g5 * g5) + 1e-9
                dist = (100.0 + 200.0 * _u01(st)) / nrm
                x2 = x + dist * g3
                y2 = y + dist * g4
                z2 = z + dist * g5
                out_pre[row] = i
                out_post[row] = j
                out_xa[row] = round(x * ivx) * vx
                out_ya[row] = round(y * ivy) * vy
                out_za[row] = round(z * ivz) * vz
                out_xb[row] = round(x2 * ivx) * vx
                out_yb[row] = round(y2 * ivy) * vy
                out_zb[row] = round(z2 * ivz) * vz
                # confidence: Beta(3, 1) (max of three uniforms), skewed to 1, 3 decimals
                c1, c2, c3 = _u3(st)
                out_conf[row] = round(max(c1, c2, c3) * 1000.0) / 1000.0
                out_size[row] = max(1.0, round(math.exp(4.0 + 0.6 * _g(st))))
                row += 1
    return row


# ----------------------------------------------------------------------------- procedural meshes

# name: (centre um, semi-axes um); right-hemisphere neuropils at small x, like JFRC2
_RIGHT = {
    "ME": ((60, 150, 70), (24, 72, 42)),
    "LO": ((112, 160, 90), (17, 52, 32)),
    "LOP": ((142, 160, 105), (9, 44, 28)),
    "AL": ((262, 172, 28), (28, 28, 20)),
    "MB_CA": ((255, 66, 128), (20, 16, 14)),
    "MB_ML": ((272, 110, 44), (12, 9, 11)),
    "LH": ((198, 88, 112), (24, 21, 19)),
    "SMP": ((262, 70, 70), (22, 18, 18)),
    "AVLP": ((190, 152, 42), (33, 28, 24)),
    "LAL": ((252, 150, 78), (17, 14, 14)),
}
_CENTRAL = {
    "SAD": ((310, 208, 60), (36, 16, 18)),
    "GNG": ((310, 266, 70), (40, 26, 30)),
    "EB": ((310, 122, 58), (18, 9, 11)),
    "FB": ((310, 94, 82), (36, 11, 13)),
    "PB": ((310, 54, 132), (30, 7, 7)),
    "NO": ((310, 142, 100), (9, 5, 5)),
}
_MIDLINE_X = 310.0


def _layout() -> dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]]:
    out: dict = {}
    for base, (c, ax) in _RIGHT.items():
        out[f"{base}_R"] = (c, ax)
        out[f"{base}_L"] = ((2 * _MIDLINE_X - c[0], c[1], c[2]), ax)
    out.update(_CENTRAL)
    return dict(sorted(out.items()))


PROCEDURAL_LAYOUT = _layout()

PROCEDURAL_HIERARCHY: dict = {
    **{
        f"OL_{s}": {f"ME_{s}": {}, f"LO_{s}": {}, f"LOP_{s}": {}}
        for s in ("L", "R")
    },
    **{f"MB_{s}": {f"MB_CA_{s}": {}, f"MB_ML_{s}": {}} for s in ("L", "R")},
    **{f"LX_{s}": {f"LAL_{s}": {}} for s in ("L", "R")},
    **{f"SNP_{s}": {f"SMP_{s}": {}} for s in ("L", "R")},
    **{f"VLNP_{s}": {f"AVLP_{s}": {}} for s in ("L", "R")},
    "CX": {"FB": {}, "EB": {}, "PB": {}, "NO": {}},
    "PENP": {"SAD": {}},
    "AL_L": {},
    "AL_R": {},
    "GNG": {},
    "LH_L": {},
    "LH_R": {},
}


def procedural_blob(name: str, seed: int = 0, amplitude: float = 0.07):
    """One watertight, star-shaped neuropil blob (trimesh, nm) of the procedural layout."""
    import trimesh

    centre, axes = PROCEDURAL_LAYOUT[name]
    sphere = trimesh.creation.icosphere(subdivisions=3)
    v = sphere.vertices.copy()
    rng = np.random.default_rng([int(seed), sum(name.encode()) * 131 + len(name)])
    radial = np.ones(len(v))
    for _ in range(4):
        k = rng.normal(size=3) * rng.uniform(1.0, 2.5)
        ph = rng.uniform(0, 2 * np.pi)
        radial += amplitude / 4 * np.sin(v @ k + ph) * 2
    radial = np.clip(radial, 1 - amplitude, 1 + amplitude)
    v = v * radial[:, None] * np.asarray(axes, dtype=float) * 1000.0
    v += np.asarray(centre, dtype=float) * 1000.0
    mesh = trimesh.Trimesh(vertices=v, faces=sphere.faces, process=False)
    return mesh


# ----------------------------------------------------------------------------- mesh loading


def detect_scale(units: str | None, extent: float) -> float:
    """Factor converting mesh coordinates to nm from a ``units`` string or the extent.

    ``units`` is read with :func:`connectome_dask.units.parse_units`; when it is
    missing or unknown, a brain smaller than 5000 units is taken as micrometres.
    """
    if units:
        try:
            factor = parse_units(units)
        except ValueError:
            factor = None
        if factor is not None:
            return factor
    # a whole fly brain is ~600 um: extents below 5000 are micrometres
    return 1000.0 if extent < 5000 else 1.0


def load_mesh_dir(path: Path, scale: float | None = None):
    """Load ``*.ply``/``*.obj``/``*.stl`` meshes + ``hierarchy.json`` from a folder, scaled to nm.

    Returns ``(meshes, hierarchy_info, scale)``.
    """
    import trimesh

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"mesh directory {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".ply", ".obj", ".stl", ".off"))
    if not files:
        raise ValueError(f"mesh directory {path} holds no .ply/.obj/.stl/.off meshes")
    info: dict = {}
    hp = path / "hierarchy.json"
    if hp.exists():
        info = json.loads(hp.read_text())
    meshes = {}
    for f in files:
        m = trimesh.load(f, force="mesh", process=False)
        if not isinstance(m, trimesh.Trimesh):
            raise ValueError(f"mesh file {f} holds a {type(m).__name__}, not a triangle mesh")
        if len(m.faces) == 0:
            raise ValueError(f"mesh file {f} has no faces")
        meshes[f.stem] = m
    lo = np.min([m.bounds[0] for m in meshes.values()], axis=0)
    hi = np.max([m.bounds[1] for m in meshes.values()], axis=0)
    if scale is None:
        scale = detect_scale(info.get("units"), float(np.max(hi - lo)))
    scale = float(scale)
    if scale <= 0:
        raise ValueError(f"mesh_scale must be positive, got {scale}")
    if scale != 1.0:
        meshes = {k: m.copy().apply_scale(scale) for k, m in meshes.items()}
    primary = [n for n in info.get("primary", list(meshes)) if n in meshes] or list(meshes)
    return {k: meshes[k] for k in primary}, info, scale


def _containment_mesh(mesh):
    """A mesh whose ``contains`` is usable: holes filled for non-watertight inputs."""
    import trimesh

    if mesh.is_watertight:
        return mesh
    m = mesh.copy()
    m.merge_vertices()
    trimesh.repair.fill_holes(m)
    return m


def sample_inside(
    mesh, n: int, rng: np.random.Generator, min_depth: float = 0.0, max_rounds: int = 60
) -> np.ndarray:
    """``n`` points inside ``mesh`` by rejection from its bounding box (deterministic per rng).

    With ``min_depth`` points closer than that to the surface are rejected
    (relaxed to half the deepest candidate's depth for thin meshes), so
    clouds around them stay mostly inside.
    """
    if n <= 0:
        return np.zeros((0, 3))
    m = _containment_mesh(mesh)
    lo, hi = m.bounds
    got: list[np.ndarray] = []
    have = 0
    for _ in range(max_rounds):
        cand = rng.uniform(lo, hi, size=(max(64, 4 * (n - have)), 3))
        ok = cand[m.contains(cand)]
        got.append(ok)
        have += len(ok)
        if have >= 4 * n:
            break
    pts = np.concatenate(got) if got else np.zeros((0, 3))
    if min_depth > 0 and len(pts):
        _, depth, _ = m.nearest.on_surface(pts)
        need = min(float(min_depth), 0.5 * float(depth.max()))
        pts = pts[depth >= need]
    if len(pts) < n:  # degenerate mesh: fall back to the centroid
        extra = np.repeat(mesh.centroid[None, :], n - len(pts), axis=0)
        pts = np.concatenate([pts, extra])
    return pts[:n]


# ----------------------------------------------------------------------------- type names

_GLOMERULI = [
    "DA1", "DA2", "DA3", "DA4l", "DA4m", "DC1", "DC2", "DC3", "DC4", "DL1", "DL2d",
    "DL2v", "DL3", "DL4", "DL5", "DM1", "DM2", "DM3", "DM4", "DM5", "DM6", "DP1l",
    "DP1m", "VA1d", "VA1v", "VA2", "VA3", "VA4", "VA5", "VA6", "VA7l", "VA7m", "VC1",
    "VC2", "VC3", "VC4", "VC5", "VL1", "VL2a", "VL2p", "VM1", "VM2", "VM3", "VM4",
    "VM5d", "VM5v", "VM7d", "VM7v", "V", "D",
]  # fmt: skip
_OPTIC = ["Mi", "Tm", "TmY", "Dm", "Pm", "T", "LC", "LPLC", "LLPC", "Li", "Lawf", "C", "L"]
_KC = ["KCg-m", "KCg-d", "KCab-c", "KCab-s", "KCab-m", "KCab-p", "KCa'b'-ap1", "KCa'b'-ap2", "KCa'b'-m"]
_CX = ["EPG", "PEG", "PEN_a(PEN1)", "PEN_b(PEN2)", "PFL1", "PFL2", "PFL3", "PFN", "hDeltaA",
       "vDeltaB", "ER1", "ER2", "ER3d", "ER4m", "FB4", "FB5", "FB6", "FC1", "FS1", "FR1",
       "LNO1", "GLNO", "Delta7", "P6-8P9", "EL", "ExR1"]  # fmt: skip
_PREFIXES = {
    "SMP": "SMP", "SLP": "SLP", "SIP": "SIP", "AVLP": "AVLP", "PVLP": "PVLP", "LAL": "LAL",
    "GNG": "GNG", "SAD": "SAD", "CRE": "CRE", "ICL": "CL", "SCL": "CL", "IB": "IB",
    "PLP": "PLP", "WED": "WED", "VES": "VES", "SPS": "DNa", "IPS": "DNp", "LH": "LHPV",
    "AOTU": "AOTU", "FLA": "FLA", "PRW": "PRW", "AMMC": "AMMC",
}  # fmt: skip


def _base(neuropil: str) -> str:
    return re.sub(r"_[LR]$", "", neuropil)


def type_names(primary_neuropils: list[str], sizes: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Realistic-looking, unique cell-type names from each type's main neuropil and size."""
    used: set[str] = set()
    counters: dict[str, int] = {}
    names = []
    for np_name, size in zip(primary_neuropils, sizes, strict=True):
        base = _base(np_name)
        fam = None
        if base in ("ME", "LO", "LOP", "LA", "AME"):
            fam = _OPTIC[int(rng.integers(len(_OPTIC)))]
            sfx = ["", "a", "b", "c", "d"][int(rng.integers(5))]
            k = counters.get(fam, 0) + 1
            counters[fam] = k
            cand = f"{fam}{k}{sfx}"
        elif base.startswith("MB"):
            if size >= 20 and rng.random() < 0.6:
                cand = _KC[counters.get("KC", 0) % len(_KC)]
                counters["KC"] = counters.get("KC", 0) + 1
            else:
                k = counters.get("MBON", 0) + 1
                counters["MBON"] = k
                cand = f"MBON{k:02d}" if rng.random() < 0.6 else f"PAM{k:02d}"
        elif base == "AL":
            g = _GLOMERULI[int(rng.integers(len(_GLOMERULI)))]
            kind = ["ORN_{g}", "{g}_adPN", "{g}_lPN", "{g}_vPN", "lLN{k}", "il3LN{k}"][int(rng.integers(6))]
            k = counters.get("LN", 0) + 1
            counters["LN"] = k
            cand = kind.format(g=g, k=k)
        elif base in ("EB", "FB", "PB", "NO", "BU", "GA"):
            cand = _CX[counters.get("CX", 0) % len(_CX)]
            counters["CX"] = counters.get("CX", 0) + 1
        else:
            pre = _PREFIXES.get(base, base)
            k = counters.get(pre, 0) + 1
            counters[pre] = k
            if pre.startswith("DN"):
                cand = f"{pre}{k:02d}"
            elif pre == "LHPV":
                cand = f"LHPV{k // 6 + 1}{'abcdef'[k % 6]}{k % 3 + 1}"
            else:
                cand = f"{pre}{k:03d}"
        name = cand
        n = 1
        while name in used:
            n += 1
            name = f"{cand}_{'abcdefghijklmnopqrstuvwxyz'[(n - 2) % 26]}{'' if n < 28 else n // 26}"
        used.add(name)
        names.append(name)
        del fam
    return names


# ----------------------------------------------------------------------------- skeletons


@numba.njit(cache=True)
def prim_tree(pts, root):
    """Minimum spanning tree of a small point cloud by Prim's algorithm (dense, O(n^2)).

    Returns ``(order, parent)``: nodes in the order they joined the tree
    (``order[0] == root``) and each node's parent (-1 for the root).
    """
    n = pts.shape[0]
    best = np.full(n, np.inf)
    src = np.full(n, -1, dtype=np.int64)
    done = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int64)
    cur = root
    best[root] = 0.0
    for k in range(n):
        done[cur] = True
        order[k] = cur
        nxt = -1
        nb = np.inf
        for j in range(n):
            if done[j]:
                continue
            d = 0.0
            for c in range(3):
                t = pts[cur, c] - pts[j, c]
                d += t * t
            if d < best[j]:
                best[j] = d
                src[j] = cur
            if best[j] < nb:
                nb = best[j]
                nxt = j
        if nxt < 0:
            break
        cur = nxt
    return order, src


def _resample_edges(pts: np.ndarray, parent: np.ndarray, step: float, rng) -> tuple:
    """Insert nodes so that no edge is longer than ``step`` (slight wiggle), vectorised.

    ``parent[k] < k`` for every non-root node; the output keeps that property:
    each original node is preceded by the new nodes on the edge from its parent.
    """
    n = len(pts)
    par = parent.copy()
    par[0] = 0
    seg = np.ones(n, dtype=np.int64)
    d = np.linalg.norm(pts - pts[par], axis=1)
    seg[1:] = np.maximum(1, np.ceil(d[1:] / step).astype(np.int64))
    end = np.cumsum(seg)  # new index (exclusive end) of each original node's block
    new_of = end - 1  # new index of original node k
    total = int(end[-1])
    owner = np.repeat(np.arange(n), seg)  # original node each new node belongs to
    pos_in = np.arange(total) - (end - seg)[owner]  # 0..seg-1 within the block
    t = (pos_in + 1) / seg[owner]  # fraction along parent -> node
    a = pts[par[owner]]
    b = pts[owner]
    out = a + (b - a) * t[:, None]
    inter = pos_in < seg[owner] - 1
    out[inter] += rng.normal(scale=0.08 * step, size=(int(inter.sum()), 3))
    out_par = np.arange(total) - 1
    first = pos_in == 0
    out_par[first] = new_of[par[owner[first]]]
    out_par[0] = -1
    return out, out_par


def skeleton_swc(
    soma: np.ndarray,
    centres: np.ndarray,
    sigmas: np.ndarray,
    rng: np.random.Generator,
    *,
    arbor_points: int = 30,
    step: float = 2500.0,
    body_id: int | None = None,
) -> str:
    """SWC text (nm) of a plausible neuron: soma, trunks to each arbor zone, MST arbors.

    ``centres``/``sigmas`` are the neuron's arbor-zone centres and widths (nm);
    each arbor is a minimum spanning tree over points drawn from the zone's
    Gaussian cloud, so the neuron's synapses (drawn from overlapping clouds)
    lie within a few micrometres of the skeleton.
    """
    from scipy.spatial.distance import cdist

    pts: list[np.ndarray] = [np.asarray(soma, dtype=float)]
    parent: list[int] = [-1]
    order = np.argsort(np.linalg.norm(centres - soma, axis=1), kind="stable")
    for z in order:
        c, s = centres[z], float(sigmas[z])
        npts = int(np.clip(round(arbor_points * (s / 3000.0) ** 2), arbor_points, 6 * arbor_points))
        cloud = c + rng.normal(scale=s, size=(npts, 3))
        cloud[0] = c
        existing = np.asarray(pts)
        dd = cdist(cloud, existing)
        ci, ei = np.unravel_index(int(np.argmin(dd)), dd.shape)
        # MST over the cloud, rooted at the point closest to the existing tree
        bfs, pred = prim_tree(cloud, int(ci))
        base = len(pts)
        local = np.empty(len(cloud), dtype=np.int64)
        local[bfs] = base + np.arange(len(cloud))
        for node in bfs.tolist():
            pts.append(cloud[node])
            parent.append(int(ei) if node == int(ci) else int(local[pred[node]]))
    pts_r, par_r = _resample_edges(np.asarray(pts), np.asarray(parent), step, rng)
    n = len(pts_r)
    depth = np.zeros(n)
    for k in range(1, n):  # parents precede children
        depth[k] = depth[par_r[k]] + 1
    kind = np.full(n, 3)
    kind[0] = 1
    radius = np.maximum(100.0, 600.0 * np.exp(-depth / 60.0))
    radius[0] = 2000.0
    lines = [
        "# synthetic skeleton generated by connectome_dask.datasets.synthetic",
        "# units: nm",
    ]
    if body_id is not None:
        lines.append(f"# bodyId: {body_id}")
    lines.append("# rowId type x y z radius parent")
    parent_col = np.where(par_r >= 0, par_r + 1, -1)
    lines += [
        f"{k + 1} {t} {x:.1f} {y:.1f} {z:.1f} {r:.1f} {p}"
        for k, (t, x, y, z, r, p) in enumerate(
            zip(kind.tolist(), *pts_r.T.tolist(), radius.tolist(), parent_col.tolist(), strict=True)
        )
    ]
    return "\n".join(lines) + "\n"


def density_weights(names: list[str], counts: Mapping[str, float] | None, volumes: np.ndarray) -> np.ndarray:
    """Per-neuropil weights: real synapse counts where names match, else volume-proportional."""
    vol = np.asarray(volumes, dtype=float)
    vol = np.where(vol > 0, vol, np.median(vol[vol > 0]) if np.any(vol > 0) else 1.0)
    w = vol / vol.sum()
    if counts:
        matched = [n for n in names if n in counts]
        if len(matched) >= max(1, len(names) // 2):
            c = np.array([float(counts.get(n, np.nan)) for n in names])
            cm = np.nanmedian(c[~np.isnan(c)])
            c = np.where(np.isnan(c), cm, c)
            c = np.maximum(c, 1e-3 * c.max())
            w = c / c.sum()
    return w
