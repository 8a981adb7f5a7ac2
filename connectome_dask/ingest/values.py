"""Value conversion and validation: body IDs, floats, positions, ROI names and codes."""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._fsutil import check_name
from ..errors import IngestError
from ..kernels import convert as _convert

__all__: list[str] = []  # internal helpers of the package only

_MAX_EXACT_FLOAT = 2.0**53


# body IDs given as text: plain decimal numbers only (no hex, exponent, inf, '_')
_DECIMAL = r"^[+-]?[0-9]+(\.[0-9]*)?$"


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_stringy(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_texty(t: pa.DataType) -> bool:
    """Text, or bytes (a CSV column that is not valid UTF-8 is read as binary)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return _is_stringy(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)


def _decode(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _as_text(arr: pa.Array, file: str, column: str, offset: int, *, stride: int = 1) -> pa.Array:
    """Bytes (a CSV column that is not valid UTF-8) -> text; the first undecodable row is named."""
    arr = _decode(arr)
    if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        return arr
    try:
        return pc.cast(arr, pa.large_string() if pa.types.is_large_binary(arr.type) else pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for i, v in enumerate(arr.to_pylist()):
        if v is None:
            continue
        try:
            v.decode("utf-8")
        except UnicodeDecodeError as e:
            raise IngestError.at(file, column, offset + i // stride,
                                 f"value {v!r} is not valid UTF-8 text ({e.reason})", v) from None
    raise IngestError(f"{file}: column {column!r} is not valid UTF-8 text", file=file, column=column)


def _looks_numeric(v: str) -> bool:
    """Whether Python would read ``v`` as a number in some notation (hex, exponent, '_', ...)."""
    for parse in (float, lambda x: int(x, 0)):
        try:
            parse(v.strip())
            return True
        except (TypeError, ValueError):
            continue
    return False


def _text_ids_to_int64(arr: pa.Array, file: str, column: str, offset: int) -> np.ndarray:
    """Body IDs given as text: plain decimal integers only (``12``, ``+12``, ``12.0``).

    ``0x1F``, ``1e3``, ``inf``, ``1_000`` or full-width digits are refused even
    though some parser would accept them: an ID is never a guess.
    """

    def fail(i: int | np.integer[Any], why: str, shown: Any = None) -> NoReturn:
        """``shown``: the parsed number (well-formed text); else the text itself is quoted."""
        v = arr[int(i)].as_py() if shown is None else shown
        raise IngestError.at(file, column, offset + int(i), f"body ID {v!r} {why}", v)

    s = pc.utf8_trim_whitespace(arr)
    missing = pc.fill_null(pc.equal(s, ""), True)
    if pc.any(missing).as_py():
        i = _first(missing)
        raise IngestError.at(file, column, offset + i, "body ID is missing (null)", None)
    ok = pc.match_substring_regex(s, _DECIMAL)
    if not pc.all(ok).as_py():
        i = _first(pc.invert(ok))
        v = arr[i].as_py()
        fail(i, "is not a decimal integer (only digits are read as body IDs)" if _looks_numeric(v)
             else "is not a number")
    try:  # the common case: plain digits (the regex above has ruled out 0x..., which Arrow reads)
        a = pc.cast(s, pa.int64()).to_numpy()
    except pa.ArrowInvalid:  # '+12', '12.0', '12.5', or beyond int64
        whole = pc.replace_substring_regex(pc.replace_substring_regex(s, r"^\+", ""), r"\.0*$", "")
        frac = pc.match_substring(whole, ".")
        if pc.any(frac).as_py():
            i = _first(frac)
            fail(i, "is not a whole number", shown=float(s[i].as_py()))
        try:
            a = pc.cast(whole, pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            vals = [int(v) for v in whole.to_pylist()]
            i = next(k for k, v in enumerate(vals) if not -(2**63) <= v < 2**63)
            fail(i, "is negative" if vals[i] < 0 else "does not fit a signed 64-bit integer",
                 shown=vals[i])
    if len(a) and a.min() < 0:
        i = int(np.argmax(a < 0))
        fail(i, "is negative", shown=int(a[i]))
    return a


def _first(mask: pa.Array) -> int:
    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def _ids_to_int64(arr: pa.Array, file: str, column: str, offset: int) -> np.ndarray:
    """Validate one batch of body IDs and return them as int64."""
    arr = _as_text(arr, file, column, offset)
    t = arr.type

    def fail(i: int | np.integer[Any], why: str) -> NoReturn:
        v = arr[int(i)].as_py()
        shown = "" if v is None else f" {v!r}"
        raise IngestError.at(file, column, offset + int(i), f"body ID{shown} {why}", v)

    if arr.null_count:
        fail(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0], "is missing (null)")
    if pa.types.is_integer(t):
        a = arr.to_numpy()
        if pa.types.is_unsigned_integer(t):
            if t.bit_width == 64 and len(a) and a.max() > np.iinfo(np.int64).max:
                fail(np.argmax(a > np.iinfo(np.int64).max), "does not fit a signed 64-bit integer")
            return a.astype(np.int64)
        a = a.astype(np.int64, copy=False)
        if len(a) and a.min() < 0:
            fail(np.argmax(a < 0), "is negative")
        return a
    if pa.types.is_floating(t):
        a = arr.to_numpy().astype(np.float64, copy=False)
        bad = np.isnan(a)
        if bad.any():
            fail(np.argmax(bad), "is missing (NaN)")
        if len(a) and a.min() < 0:
            fail(np.argmax(a < 0), "is negative")
        frac = a != np.floor(a)
        if frac.any():
            fail(np.argmax(frac), "is not a whole number")
        big = a >= _MAX_EXACT_FLOAT
        if big.any():
            fail(
                np.argmax(big),
                "is stored as floating point above 2**53 and may have lost digits; "
                "store body IDs as integers",
            )
        return a.astype(np.int64)
    if pa.types.is_null(t):
        fail(0, "is missing")
    if _is_stringy(t):  # text: every CSV ID column, or a string column of a table
        return _text_ids_to_int64(arr, file, column, offset)
    fail(0, f"is not an integer (column type {t})")


def _first_unparsable(values: list) -> int:
    """Index of the first non-null value that is not a number (-1 if none)."""
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            float(v)
        except (TypeError, ValueError):
            return i
    return -1


def _to_float64(
    arr: pa.Array, file: str, column: str, offset: int, what: str, *, stride: int = 1
) -> np.ndarray:
    """Numeric (or numeric-string) Arrow array -> float64 numpy; nulls become NaN.

    ``stride`` > 1 when ``arr`` is the flattened values of a list column (the
    reported row is then ``offset + i // stride``).
    """
    arr = _as_text(arr, file, column, offset, stride=stride)
    t = arr.type
    if _is_stringy(t):
        try:
            arr = pc.cast(arr, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            vals = arr.to_pylist()
            i = _first_unparsable(vals)
            if i < 0:  # Python parses what Arrow would not (e.g. "1_000")
                return np.array([np.nan if v is None else float(v) for v in vals])
            raise IngestError.at(file, column, offset + i // stride, f"{what} {vals[i]!r} is not a number",
                                 vals[i]) from None
        t = arr.type
    if not _is_numeric(t):
        raise IngestError(
            f"{file}: column {column!r} ({what}) must be numeric, but has type {t}",
            file=file,
            column=column,
        )
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    return arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


#: neo4j's own spelling of a point, ``{x:1, y:2, z:3}``: one regex pass (5x the general path)
_CANONICAL_POINT = r"^\{x:(?P<x>[^,{}:]*), y:(?P<y>[^,{}:]*), z:(?P<z>[^,{}:]*)\}$"


def _canonical_points(arr: pa.Array, file: str, column: str, offset: int) -> np.ndarray | None:
    """(n, 3) float64 when every value is a point spelled ``{x:1, y:2, z:3}``; else None (the general path)."""
    if arr.null_count or not len(arr):
        return None
    m = pc.extract_regex(arr, _CANONICAL_POINT)
    if m.null_count:
        return None
    out = np.empty((len(arr), 3), dtype=np.float64)
    for k in range(3):
        out[:, k] = _to_float64(m.field(k), file, column, offset, "coordinate")
    return out


def _list_to_xyz(arr: pa.Array, file: str, column: str, offset: int) -> np.ndarray:
    """A column of [x, y, z] -> (n, 3) float64.

    Lists, fixed-size lists, or text: ``"[x y z]"`` (numpy repr, runs of
    spaces), ``"[x, y, z]"``, ``"x, y, z"`` (BANC) or neo4j points
    ``"{x:1, y:2, z:3}"`` (the axis names must then be x, y, z in that order).
    """
    arr = _as_text(arr, file, column, offset)
    if _is_stringy(arr.type):
        fast = _canonical_points(arr, file, column, offset)
        if fast is not None:
            return fast
        if pc.any(pc.match_substring(arr, ":")).as_py():
            bad = pc.invert(pc.fill_null(pc.match_substring_regex(
                arr, r"^\s*\{\s*x\s*:[^,:]*,\s*y\s*:[^,:]*,\s*z\s*:[^,:}]*\}\s*$"), True))
            if pc.any(bad).as_py():
                i = int(np.argmax(bad.to_numpy(zero_copy_only=False)))
                v = arr[i].as_py()
                raise IngestError.at(file, column, offset + i, f"point {v!r} is not {{x:.., y:.., z:..}}", v)
            arr = pc.replace_substring_regex(arr, r"[xyz]\s*:", "")
        stripped = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"[\[\](){}]", ""))
        arr = pc.split_pattern_regex(stripped, r"[\s,]+")
    if arr.null_count:
        i = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise IngestError.at(file, column, offset + i, "position is missing")
    if not pa.types.is_fixed_size_list(arr.type) or arr.type.list_size != 3:
        lens = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        bad = lens != 3
        if bad.any():
            i = int(np.argmax(bad))
            v = arr[i].as_py()
            raise IngestError.at(file, column, offset + i, f"position {v!r} does not have 3 coordinates", v)
    values = pc.list_flatten(arr)
    return _to_float64(values, file, column, offset, "coordinate", stride=3).reshape(-1, 3)


def _numeric_values(arr: pa.Array) -> np.ndarray | None:
    """The numbers of a null-free integer or float Arrow array as numpy (no copy when possible); else None."""
    t = arr.type
    if arr.null_count or not (pa.types.is_integer(t) or pa.types.is_float32(t) or pa.types.is_float64(t)):
        return None
    return arr.to_numpy(zero_copy_only=False)


def _fast_float32(raw: pa.Array, shift: float, scale: float, finite: bool) -> np.ndarray | None:
    """``float32((raw + shift) * scale)`` of a plain numeric column in one kernel pass.

    ``None`` when the column is not plain numbers without nulls, or when a
    value would be refused (``finite``: NaN or infinite; any: beyond
    float32): the general path (:func:`_to_float64`, :func:`_to_float32`)
    then converts it and names the offending row. The result equals the
    general path's bit for bit.
    """
    vals = _numeric_values(_decode(raw))
    if vals is None:
        return None
    out, bad = _convert.scaled_float32(vals, 1, np.array([shift], np.float64), np.array([scale], np.float64),
                                       finite)
    return out[0] if bad < 0 else None


def _fast_list_float32(raw: pa.Array, shift: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """``(3, n)`` float32 of a list column of 3 finite numbers per row, ``(v + shift[k]) * scale[k]``.

    ``None`` unless every row is a list of exactly 3 non-null numbers, all
    finite and within float32 after the arithmetic: :func:`_list_to_xyz` and
    the general conversion then take the column and name the row at fault.
    """
    arr = _decode(raw)
    if not _is_list(arr.type) or arr.null_count or not len(arr):
        return None
    if not pa.types.is_fixed_size_list(arr.type) or arr.type.list_size != 3:
        lens = pc.list_value_length(arr)
        if pc.min_max(lens).as_py() != {"min": 3, "max": 3}:
            return None
    vals = _numeric_values(pc.list_flatten(arr))
    if vals is None or len(vals) != 3 * len(arr):
        return None
    out, bad = _convert.scaled_float32(vals, 3, np.asarray(shift, np.float64), np.asarray(scale, np.float64), True)
    return out if bad < 0 else None


def _check_finite(a: np.ndarray, orig: pa.Array, file: str, column: str, offset: int) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.argmax(bad))
        v = _decode(orig)[i].as_py()
        why = "is missing (null)" if v is None else f"{v!r} is missing (NaN) or not finite"
        raise IngestError.at(file, column, offset + i, f"coordinate {why}", v)


_F32_MAX = float(np.finfo(np.float32).max)


def _to_float32(v: np.ndarray, orig: pa.Array, file: str, column: str, offset: int, what: str,
                how: str = "") -> np.ndarray:
    """float64 -> float32, refusing finite values that would become inf (|x| > 3.4e38).

    ``orig`` is the source column (one value per row of ``v``, shown in the
    message); ``how`` describes a unit conversion applied to it.
    """
    with np.errstate(over="ignore"):
        out = v.astype(np.float32)
    bad = np.isinf(out) & np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        src = _decode(orig)[i].as_py()
        conv = f" ({how}: {v[i]:.6g})" if how else ""
        raise IngestError.at(
            file, column, offset + i,
            f"{what} {src!r}{conv} does not fit float32 (largest {_F32_MAX:.6g}); check the units",
            src)
    return out


def _roi_values(arr: pa.Array) -> set[str]:
    arr = _decode(arr)
    if pa.types.is_null(arr.type):
        return set()
    return {v for v in pc.unique(arr).to_pylist() if v}


def _check_roi_name(name: str, arr: pa.Array, file: str, column: str, offset: int) -> None:
    """ROI names follow the package's one name rule (:func:`~connectome_dask._fsutil.check_name`)."""
    try:
        check_name(name, "ROI name", error=IngestError)
    except IngestError as e:
        i = int(pc.index(_decode(arr), name).as_py())
        raise IngestError.at(file, column, offset + i, str(e), name) from None


def _roi_codes(arr: pa.Array, names: pa.Array) -> np.ndarray:
    arr = _decode(arr)
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        arr = pc.cast(arr, pa.string())  # valid UTF-8: checked in pass 1
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, dtype=np.int16)
    idx = pc.index_in(arr, value_set=names)
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int16)
