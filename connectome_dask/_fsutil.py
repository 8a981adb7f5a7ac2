"""File-system rules of the package: names, paths inside a store, atomic directories, writer locks.

Every rule here exists once and is used by every writer and reader:

* :func:`check_name` - the one name rule (columns, ROI names, neuron annotations
  that end up as keys): any printable string without ``/``, ``\\``, NUL or a
  line break, not ``.`` or ``..``, at most 255 characters.
* :func:`encode_name` - the file name derived from such a name (percent-encoding
  of everything outside ``[A-Za-z0-9_.-]``), so a name read from data never
  becomes a path component unencoded.
* :func:`inside` - resolve a path taken from a store's metadata and refuse it
  unless it stays inside the store (symlinks are resolved, then checked).
* :func:`writer_lock` - the exclusive writer lock of one target (``filelock``).
* :func:`atomic_dir` - write a directory under a fresh temporary name beside
  its target, then move it into place; a marker file names what the package
  created, so leftovers of killed writes are recognised and removed by the
  next write to the same target, and ``overwrite`` only ever replaces a
  directory of the expected kind.
* :func:`atomic_file` - the same for one file: write ``.<name>.tmp-<random>``
  beside it, flush it to disk, then ``os.replace`` it into place.
* :func:`scratch_dir` - a private temporary directory for intermediate files
  (an external join), removed at the end; a killed process's is removed by
  the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from .errors import PathError

__all__ = [
    "MARKER",
    "AtomicDir",
    "PathError",
    "atomic_dir",
    "atomic_file",
    "remove_stale_files",
    "check_component",
    "check_exists",
    "check_name",
    "encode_name",
    "inside",
    "is_empty_shell",
    "is_kind",
    "lock_path",
    "read_marker",
    "remove_leftovers",
    "no_symlinks",
    "replace_dir",
    "rmtree_real",
    "scratch_dir",
    "stale_leftovers",
    "write_marker",
    "writer_lock",
]

log = logging.getLogger("connectome_dask.store")

#: marker file written into every directory the package creates with :func:`atomic_dir`
MARKER = ".connectome-dask.json"
_MAX_NAME = 255
_FORBIDDEN = re.compile(r"[/\\\x00\r\n\x0b\x0c\x85\u2028\u2029]")
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# a directory name the package wrote itself (plain or percent-encoded)
_STORED_COMPONENT = re.compile(r"^[A-Za-z0-9_%(][A-Za-z0-9_.%\-()'+]{0,254}$")





def check_name(name: object, what: str = "name", error: type[Exception] = PathError) -> str:
    """Return ``name`` if it passes the package's one name rule, else raise ``error``.

    Every printable string is allowed except one holding ``/``, ``\\``, NUL or a
    line break, or equal to ``.`` or ``..``; empty strings, surrounding blanks
    and names over 255 characters are refused too. Real ROI names such as
    ``CRE(-ROB,-RUB)(R)`` and ``a'L(R)`` pass. Names are never used as paths
    directly: see :func:`encode_name`.

    Parameters
    ----------
    name
        The candidate name.
    what
        What the name is, for the message ("ROI name", "synapse column").
    error
        Exception class to raise (a subclass of ValueError).

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    error
        When the rule is broken; the message quotes the name.

    Examples
    --------
    >>> check_name("CRE(-ROB,-RUB)(R)", "ROI name")
    'CRE(-ROB,-RUB)(R)'
    >>> check_name("EB\\n", "ROI name")
    Traceback (most recent call last):
    ...
    connectome_dask.errors.PathError: ROI name 'EB\\n' is not allowed: ...
    """
    if not isinstance(name, str):
        raise error(f"{what} {name!r} is not allowed: it must be a string, not {type(name).__name__}")
    problem = None
    if not name or name != name.strip():
        problem = "must be non-empty without surrounding blanks"
    elif name in (".", ".."):
        problem = "'.' and '..' are not names"
    elif len(name) > _MAX_NAME:
        problem = f"is longer than {_MAX_NAME} characters"
    elif _FORBIDDEN.search(name) or not name.isprintable():
        problem = "contains '/', '\\', NUL, a line break or another non-printable character"
    if problem:
        raise error(f"{what} {name!r} is not allowed: it {problem}")
    return name


def encode_name(name: str) -> str:
    """The file-name component derived from a name (identity for plain names).

    Names made of ``[A-Za-z0-9_.-]`` (not starting with ``.`` or ``-``) are kept;
    anything else is percent-encoded (``%XX`` of the UTF-8 bytes), prefixed with
    ``%`` so the encoding is unambiguous. The result never contains a separator
    and never starts with a dot.

    Parameters
    ----------
    name
        A name that passed :func:`check_name`.

    Returns
    -------
    str

    Examples
    --------
    >>> encode_name("roi_pre"), encode_name("a'L(R)"), encode_name("..x")
    ('roi_pre', '%a%27L%28R%29', '%..x')
    """
    check_name(name)
    if _PLAIN.match(name):
        return name
    return "%" + quote(name, safe="-_.")


def check_component(rel: str, what: str, where: object, error: type[Exception] = PathError) -> str:
    """Validate one path component read from a store's metadata (as the package writes them)."""
    if not isinstance(rel, str) or not _STORED_COMPONENT.match(rel) or ".." in rel:
        raise error(f"{where}: {what} {rel!r} is not a name this package writes")
    return rel


def inside(root: Path, rel: str | os.PathLike, where: object = None,
           error: type[Exception] = PathError) -> Path:
    """Resolve ``rel`` under ``root``; refuse it unless the result stays inside ``root``.

    Symlinks are resolved before the check, so a link inside a store that
    points elsewhere is refused too.

    Parameters
    ----------
    root
        The store directory.
    rel
        A relative path read from the store (meta.json, rois.json, a folder listing).
    where
        What to name in the message (default ``root / 'meta.json'``).
    error
        Exception class to raise.

    Returns
    -------
    Path
        The resolved path.

    Raises
    ------
    error
        When the path is absolute, contains ``..`` that escapes, or resolves outside.

    Examples
    --------
    >>> (tmp_path / "s" / "a").mkdir(parents=True)
    >>> inside(tmp_path / "s", "a").name
    'a'
    >>> inside(tmp_path / "s", "../x")
    Traceback (most recent call last):
    ...
    connectome_dask.errors.PathError: .../s/meta.json: path '../x' points outside the store ...
    """
    where = where if where is not None else Path(root) / "meta.json"
    if not isinstance(rel, str | os.PathLike) or os.path.isabs(os.fspath(rel)):
        raise error(f"{where}: path {rel!r} points outside the store {root} (absolute or not a path)")
    r = Path(root).resolve()
    p = (r / rel).resolve()
    if p != r and r not in p.parents:
        raise error(f"{where}: path {os.fspath(rel)!r} points outside the store {r} (resolves to {p})")
    return p


def no_symlinks(root: Path, rel: str, where: object = None, error: type[Exception] = PathError) -> Path:
    """Like :func:`inside`, and refuse any symlink on the way from ``root`` to ``rel``.

    Without ``..`` in ``rel``, a path none of whose components below the
    resolved ``root`` is a symlink is inside ``root`` as written: one
    ``lstat`` per component replaces resolving it again (``Path.resolve``,
    ~0.15 ms a call, three per call before: 2-3 ms of every query on a
    freshly opened store). A symlink found takes the full check first, whose
    message says whether it leads out of the store.
    """
    plain = isinstance(rel, str | os.PathLike) and not os.path.isabs(os.fspath(rel)) and ".." not in Path(rel).parts
    p = None if plain else inside(root, rel, where, error)  # ``..`` (or not a relative path): the full check first
    cur = Path(root).resolve()
    for part in Path(rel).parts:
        cur = cur / part
        if cur.is_symlink():
            inside(root, rel, where, error)  # refuses it, naming where it leads, if it leaves the store
            raise error(f"{where or Path(root) / 'meta.json'}: {cur} is a symlink; "
                        "stores never hold symlinks (refusing to follow it)")
    return cur if p is None else p


# ----------------------------------------------------------------------------- markers


def read_marker(path: Path) -> dict | None:
    """The marker of a directory the package created (or None)."""
    m = Path(path) / MARKER
    if m.is_symlink() or not m.is_file():
        return None
    try:
        d = json.loads(m.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("created_by") == "connectome_dask" else None


def write_marker(path: Path, kind: str, **extra: object) -> None:
    """Write the marker that says the package created ``path`` as a ``kind``."""
    (Path(path) / MARKER).write_text(json.dumps({"created_by": "connectome_dask", "kind": kind, **extra}))


def is_kind(path: Path, kind: str) -> bool:
    """Whether ``path`` is a real directory (no symlink) the package wrote as ``kind``.

    Stores are recognised by their ``meta.json`` format marker as well (stores
    written before markers existed).
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    m = read_marker(path)
    if m is not None:
        return m.get("kind") == kind
    if kind == "store":
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and meta.get("format") == "connectome-dask"
    return False


# ----------------------------------------------------------------------------- locks


def lock_path(target: Path) -> Path:
    """The lock file of a target directory: ``.<name>.lock`` beside it."""
    target = Path(os.path.abspath(target))
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def writer_lock(target: Path, error: type[Exception] = PathError, timeout: float | None = None) -> Iterator[Path]:
    """Hold the exclusive writer lock of ``target`` (one writer per store or output).

    The lock is an OS file lock (``filelock``, ``flock``) on ``.<name>.lock``
    beside the target, so it is released when the process dies, however it
    dies. The wait is bounded by ``timeout`` seconds (default: the dask config
    key ``connectome_dask.lock_timeout``, 0 = fail at once).

    Parameters
    ----------
    target
        The directory to be written.
    error
        Exception class raised when the lock is held by another writer.
    timeout
        Seconds to wait.

    Raises
    ------
    error
        Another writer holds the lock; the message names the lock file.

    Examples
    --------
    >>> with writer_lock(tmp_path / "store"):
    ...     with writer_lock(tmp_path / "store"):  # a second writer (same process too)
    ...         pass
    Traceback (most recent call last):
    ...
    connectome_dask.errors.PathError: another writer holds .../.store.lock ...
    """
    import dask
    from filelock import FileLock, Timeout

    if timeout is None:
        timeout = float(dask.config.get("connectome_dask.lock_timeout", 0) or 0)
    lp = lock_path(target)
    lp.parent.mkdir(parents=True, exist_ok=True)
    # is_singleton=False and thread_local=False: a second acquisition, even from
    # this process, is a second writer and must wait or fail like any other
    lock = FileLock(str(lp), timeout=timeout, thread_local=False, is_singleton=False)
    try:
        lock.acquire(timeout=timeout, blocking=timeout != 0)
    except Timeout:
        raise error(
            f"another writer holds {lp} (a write to {target} is running in another process "
            f"or thread); waited {timeout:g} s. Retry when it is done, or raise the dask "
            "config key connectome_dask.lock_timeout to wait longer"
        ) from None
    try:
        yield lp
    finally:
        lock.release()


# ----------------------------------------------------------------------------- atomic directories


_RENAME_EXCHANGE = 2


def _exchange_dirs(a: Path, b: Path) -> bool:
    """Atomically swap two directories with ``renameat2(RENAME_EXCHANGE)`` (Linux).

    Python's ``os.rename`` has no flags argument, hence ctypes. Returns False
    where the call is unavailable so the caller falls back to two renames.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), _RENAME_EXCHANGE)
    return rc == 0


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def rmtree_real(path: Path) -> None:
    """Delete a directory tree without following a symlink at its root (never outside).

    The marker file goes last: a delete killed half-way leaves a directory that
    is still recognisably the package's (name pattern and marker), so the next
    write removes the rest; killed after the marker, it leaves an empty shell
    (see :func:`is_empty_shell`).
    """
    path = Path(path)
    if path.is_symlink():
        path.unlink()
        return
    if path.is_dir():
        try:
            entries = list(os.scandir(path))
        except OSError:
            entries = []
        for entry in entries:
            if entry.name == MARKER:
                continue
            p = path / entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    # shutil.rmtree never follows symlinks inside the tree (it unlinks them)
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
            except OSError:
                pass
        try:
            (path / MARKER).unlink(missing_ok=True)
            path.rmdir()
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink(missing_ok=True)


def is_empty_shell(path: Path) -> bool:
    """Whether ``path`` is a real directory holding nothing, or only an empty or valid marker.

    That is what a write killed between creating its directory and writing
    the marker leaves, or a delete killed after removing everything but the
    marker (or the marker too): nothing to lose, so such a directory with the
    package's name pattern is removed like a marked one.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    if not entries:
        return True
    if len(entries) != 1 or entries[0].name != MARKER or not entries[0].is_file(follow_symlinks=False):
        return False
    try:
        empty = (path / MARKER).stat().st_size == 0
    except OSError:
        return False
    return empty or read_marker(path) is not None


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a fully written directory ``tmp`` to ``target``, replacing any old one.

    With ``renameat2`` the swap is atomic: readers see either the old or the
    new directory, never neither. The old directory is then deleted (under
    the temporary name, so an interrupted delete is a recognisable leftover).
    """
    tmp, target = Path(tmp), Path(target)
    if not target.exists() and not target.is_symlink():
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        return
    if target.is_symlink():
        raise PathError(f"{target} is a symlink; refusing to replace what it points to")
    if _exchange_dirs(tmp, target):
        _fsync_dir(target.parent)
        rmtree_real(tmp)
        return
    trash = target.with_name(f"{tmp.name}.old")
    os.rename(target, trash)
    os.rename(tmp, target)
    _fsync_dir(target.parent)
    rmtree_real(trash)


def stale_leftovers(target: Path) -> list[Path]:
    """Temporary directories of earlier, killed writes to ``target`` (by name pattern AND marker).

    Empty shells with the pattern (:func:`is_empty_shell`) count too: a write
    killed before its marker was written, or a delete killed at its very end.
    """
    target = Path(os.path.abspath(target))
    parent = target.parent
    if not parent.is_dir():
        return []
    out = []
    for p in sorted(parent.glob(f".{glob_escape(target.name)}.tmp-*")):
        if p.is_symlink() or not p.is_dir():
            continue
        m = read_marker(p)
        if (m is not None and m.get("target") == target.name) or is_empty_shell(p):
            out.append(p)
    return out


def glob_escape(s: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", s)


def remove_leftovers(target: Path) -> list[Path]:
    """Remove :func:`stale_leftovers` of ``target``; call only while holding its writer lock."""
    gone = stale_leftovers(target)
    for p in gone:
        log.info("removing %s (left by an interrupted write)", p)
        rmtree_real(p)
    return gone


@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool = False,
    error: type[Exception] = PathError,
    lock: bool = True,
    recognise: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Write a directory atomically: yield a fresh temporary directory, then move it to ``target``.

    The temporary directory ``.<name>.tmp-<random>`` is created beside the
    target with a marker naming the target and ``kind``. On success the
    directory replaces ``target`` in one rename; on any error (or a kill) the
    target is untouched. The writer lock of the target is held throughout,
    and leftovers of earlier killed writes to the same target (pattern and
    marker) are removed first.

    Parameters
    ----------
    target
        Final directory.
    kind
        What is written ("store", "matrix", "dataarray", "meshes"); ``overwrite``
        replaces only a directory of this kind.
    overwrite
        Replace an existing target of the same kind.
    error
        Exception class of the refusals.
    lock
        Take the writer lock (False when the caller holds it already).
    recognise
        Predicate telling whether an existing target is of ``kind`` (default:
        :func:`is_kind`), for formats that carry their own marker.

    Raises
    ------
    error
        ``target`` exists and ``overwrite`` is False, or it exists and is not a
        directory of ``kind`` written by this package, or it is a symlink, or
        another writer holds its lock.

    Examples
    --------
    >>> with atomic_dir(tmp_path / "out", "matrix") as d:
    ...     _ = (d / "data.txt").write_text("1")
    >>> sorted(p.name for p in (tmp_path / "out").iterdir())
    ['.connectome-dask.json', 'data.txt']
    >>> with atomic_dir(tmp_path / "out", "store", overwrite=True) as d:
    ...     pass
    Traceback (most recent call last):
    ...
    connectome_dask.errors.PathError: .../out exists and is not a connectome_dask store ...
    """
    d = AtomicDir(target, kind, overwrite=overwrite, error=error, lock=lock, recognise=recognise)
    try:
        yield d.tmp
    except BaseException:
        d.abort()
        raise
    d.commit()


def _tmp_file_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}\.tmp-[0-9a-f]{{8}}$")


@contextlib.contextmanager
def atomic_file(
    target: str | os.PathLike,
    *,
    fsync: bool = True,
    before_replace: Callable[[], None] | None = None,
) -> Iterator[Path]:
    """Write one file atomically: yield a fresh temporary path beside ``target``, then rename it.

    The caller writes the temporary file ``.<name>.tmp-<8 hex>``; when the
    block ends without an error its bytes are flushed to disk (``fsync``),
    ``before_replace`` runs (a commit's last check), and the file replaces
    ``target`` in one ``os.replace``. On any error the temporary file is
    removed and ``target`` is untouched. A kill can leave the temporary file;
    :func:`remove_stale_files` removes such leftovers by their exact name
    pattern. The caller holds whatever lock the target needs.

    Parameters
    ----------
    target
        Final file; its parent directory must exist.
    fsync
        Flush the written bytes and the directory entry to disk.
    before_replace
        Called after the bytes are on disk and right before the rename; an
        exception from it aborts the write.

    Yields
    ------
    pathlib.Path
        The temporary path to write.

    Raises
    ------
    OSError
        The temporary file cannot be written or renamed (the target is unchanged).

    Examples
    --------
    >>> with atomic_file(tmp_path / "a.txt") as t:
    ...     _ = t.write_text("hello")
    >>> (tmp_path / "a.txt").read_text(), [p.name for p in tmp_path.iterdir()]
    ('hello', ['a.txt'])
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(target.parent)


def remove_stale_files(target: str | os.PathLike, accept: Callable[[Path], bool] | None = None) -> list[Path]:
    """Remove temporary files that killed :func:`atomic_file` writes of ``target`` left behind.

    Only regular files (never symlinks) named exactly ``.<name>.tmp-<8 hex>``
    beside ``target`` are removed, and only those ``accept`` (a content check,
    e.g. "starts with the Parquet magic bytes") approves. Call it while holding
    the target's writer lock.

    Parameters
    ----------
    target
        The file whose leftovers are looked for.
    accept
        Predicate on a candidate path; default: every name match.

    Returns
    -------
    list of pathlib.Path
        The files removed.

    Examples
    --------
    >>> _ = (tmp_path / ".a.txt.tmp-0123abcd").write_text("partial")
    >>> [p.name for p in remove_stale_files(tmp_path / "a.txt")]
    ['.a.txt.tmp-0123abcd']
    """
    target = Path(target)
    pat = _tmp_file_pattern(target.name)
    gone: list[Path] = []
    if not target.parent.is_dir():
        return gone
    for p in sorted(target.parent.iterdir()):
        if not pat.match(p.name) or p.is_symlink() or not p.is_file():
            continue
        if accept is not None and not accept(p):
            continue
        log.info("removing %s (left by an interrupted write)", p)
        p.unlink(missing_ok=True)
        gone.append(p)
    return gone


class AtomicDir:
    """The steps of :func:`atomic_dir` for a write that spans several calls (``StoreWriter``).

    Construction checks the target, takes its writer lock, removes leftovers of
    killed writes and creates the marked temporary directory :attr:`tmp`;
    :meth:`commit` moves it into place and :meth:`abort` deletes it, both
    releasing the lock.

    Examples
    --------
    >>> d = AtomicDir(tmp_path / "out", "matrix")
    >>> _ = (d.tmp / "data.txt").write_text("1")
    >>> d.commit()
    >>> (tmp_path / "out" / "data.txt").read_text()
    '1'
    """

    def __init__(self, target: str | os.PathLike, kind: str, *, overwrite: bool = False,
                 error: type[Exception] = PathError, lock: bool = True,
                 recognise: Callable[[Path], bool] | None = None) -> None:
        self.target = Path(os.path.abspath(target))
        self.kind, self.overwrite, self.error, self.recognise = kind, overwrite, error, recognise
        self._check()
        self._lock = contextlib.ExitStack()
        if lock:
            self._lock.enter_context(writer_lock(self.target, error))
        try:
            self._check()
            remove_leftovers(self.target)
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.target.with_name(f".{self.target.name}.tmp-{uuid.uuid4().hex[:8]}")
            self.tmp.mkdir()
        except BaseException:
            self._lock.close()
            raise
        try:
            write_marker(self.tmp, kind, target=self.target.name)
        except BaseException:
            self.abort()
            raise

    def _check(self) -> None:
        check_exists(self.target, self.kind, self.overwrite, self.error, self.recognise)

    def commit(self) -> None:
        """Move :attr:`tmp` to the target (replacing an old one of the same kind); release the lock."""
        try:
            self._check()
            replace_dir(self.tmp, self.target)
        except BaseException:
            rmtree_real(self.tmp)
            raise
        finally:
            self._lock.close()

    def abort(self) -> None:
        """Delete :attr:`tmp` and release the lock (the target stays as it was)."""
        try:
            rmtree_real(self.tmp)
        finally:
            self._lock.close()


def check_exists(target: Path, kind: str, overwrite: bool, error: type[Exception],
                 recognise: Callable[[Path], bool] | None = None) -> None:
    """Refuse to replace ``target`` unless ``overwrite`` and it is a ``kind`` the package wrote."""
    target = Path(target)
    if target.is_symlink():
        raise error(f"{target} is a symlink; refusing to write through it (give the real path)")
    if not target.exists():
        return
    if not overwrite:
        raise error(f"{target} already exists; pass overwrite=True to replace it")
    ok = recognise(target) if recognise is not None else is_kind(target, kind)
    if target.is_symlink() or not ok:
        what = "connectome_dask store" if kind == "store" else f"connectome_dask {kind}"
        raise error(
            f"{target} exists and is not a {what} (no {MARKER} marker"
            f"{' or meta.json format marker' if kind == 'store' else ''}); overwrite=True only "
            "replaces what connectome_dask wrote. Remove it yourself or choose another path"
        )


#: name prefix of the directories :func:`scratch_dir` creates in the temporary directory
SCRATCH_PREFIX = "connectome-dask-scratch-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or an odd pid): leave its directory alone
    return True


def _stale_scratch(base: Path) -> list[Path]:
    """Scratch directories in ``base`` whose writing process (this host) has died."""
    import socket

    out = []
    host = socket.gethostname()
    for p in sorted(base.glob(f"{SCRATCH_PREFIX}*")):
        if p.is_symlink() or not p.is_dir():
            continue
        m = read_marker(p)
        if m is None or m.get("kind") != "scratch" or m.get("host") != host:
            continue
        pid = m.get("pid")
        if isinstance(pid, int) and not _pid_alive(pid):
            out.append(p)
    return out


@contextlib.contextmanager
def scratch_dir(what: str, base: str | os.PathLike | None = None) -> Iterator[Path]:
    """A private temporary directory for intermediate files, deleted when the block ends.

    It is created in ``base``, else dask's ``temporary-directory`` setting
    (the one dask's own spilling and shuffles use), else the system
    temporary directory (``TMPDIR``). A marker records the host and process;
    directories of processes on this host that died (a killed job) are removed
    first, so a killed job's scratch files do not pile up. Only directories
    carrying that marker are ever removed.

    Parameters
    ----------
    what
        What the files are for (kept in the marker, shown in the log).
    base
        Parent directory (default: see above).

    Yields
    ------
    pathlib.Path
        The empty directory.

    Raises
    ------
    OSError
        The parent directory cannot be written.

    Examples
    --------
    >>> with scratch_dir("an example", base=tmp_path) as d:
    ...     _ = (d / "part-0.arrow").write_bytes(b"")
    ...     d.name.startswith("connectome-dask-scratch-")
    True
    >>> sorted(tmp_path.iterdir())  # deleted with its files
    []
    """
    import socket
    import tempfile

    if base is None:
        import dask

        base = dask.config.get("temporary-directory", None) or tempfile.gettempdir()
    parent = Path(os.path.abspath(base))
    parent.mkdir(parents=True, exist_ok=True)
    for p in _stale_scratch(parent):
        log.info("removing %s (scratch files of a killed process)", p)
        rmtree_real(p)
    path = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=parent))
    try:
        write_marker(path, "scratch", what=what, host=socket.gethostname(), pid=os.getpid())
        log.debug("scratch directory %s (%s)", path, what)
        yield path
    finally:
        rmtree_real(path)
