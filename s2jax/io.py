"""Files in and out, written once: atomic writes, size-limited loading, digests.

Every file s2jax writes (checkpoints, NIR files, summaries, bundles, board images, caches) goes
through :func:`atomic_write`: the content goes to a temporary file in the target folder, is flushed
and ``fsync``-ed, then renamed over the target, and the folder entry is synced; on any error the
temporary file is removed and an existing target is untouched, so an interrupted write never
leaves a half-written file.

Every file s2jax reads from a user (bundles, checkpoints, results, images) goes through
:func:`read_bytes`, :func:`load_json` or :func:`load_npz`, which check sizes *before* reading or
allocating (the file's length, each ``.npy`` header's shape and dtype inside an ``.npz``), refuse
pickled objects, and turn every malformed input into one :class:`FileFormatError` naming the
file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "FileFormatError",
    "MAX_FILE_BYTES",
    "special_file_kind",
    "atomic_write",
    "fsync_folder",
    "atomic_write_text",
    "atomic_write_bytes",
    "read_bytes",
    "load_json",
    "load_npz",
    "save_npz",
    "arrays_digest",
]

#: Largest file (and largest total of decompressed arrays in an ``.npz``) read by default: 2 GiB.
MAX_FILE_BYTES = 2 * 1024**3
#: Largest JSON document read by default: 64 MiB.
MAX_JSON_BYTES = 64 * 1024**2


class FileFormatError(ValueError):
    """A file that is missing, truncated, corrupt, too large or not of the expected format.
    The message starts with the file's path."""


def special_file_kind(path) -> str | None:
    """What ``path`` is when it exists but is neither a regular file nor a folder ("a named pipe
    (FIFO)", "a character device", "a block device", "a socket", ...), else None (symbolic links
    followed). Readers check it before opening a user's file, since reading a FIFO blocks forever,
    and :func:`atomic_write` before renaming over a target."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None  # missing or unreadable: the caller's own checks name that
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def _check_folder(path: Path):
    folder = path.parent
    if not folder.exists():
        raise FileNotFoundError(f"{path}: the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise NotADirectoryError(f"{path}: {folder} is not a folder")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, cannot write a file there")
    kind = special_file_kind(path)
    if kind:
        raise FileExistsError(f"{path}: exists and is {kind}, not a regular file; refusing to replace it")


def fsync_folder(folder) -> None:
    """Sync a folder's entries to disk (after a rename into it), where the platform allows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, sync it to disk, rename it to
    ``path``; returns ``path``. On any error (including in ``write``) the temporary file is removed
    and ``path`` is untouched. A missing target folder is an error that names it, and so is a target
    that exists but is not a regular file (a folder, a device, a FIFO, a socket), which is never
    replaced."""
    path = Path(path)
    _check_folder(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # 0o666 less the process umask (os.open applies it), the permissions a plain open() would give
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_npz(path, arrays: dict) -> Path:
    """Write ``{name: array}`` as an uncompressed ``.npz`` atomically (no pickled objects)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype.hasobject:
            raise ValueError(f"{path}: array {key!r} holds Python objects, which are not saved (no pickle)")

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def _size_of(path: Path, what: str) -> int:
    """The size of a regular file, refusing a missing path, a folder, and devices, FIFOs and sockets
    (never opened: reading a FIFO would block)."""
    if not path.exists():
        raise FileFormatError(f"{path}: no such {what}")
    if path.is_dir():
        raise FileFormatError(f"{path}: is a folder, expected a {what}")
    kind = special_file_kind(path)
    if kind:
        raise FileFormatError(f"{path}: is {kind}, not a regular file; expected a {what}")
    return path.stat().st_size


def read_bytes(path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path``, refusing a missing file, a folder, a device / FIFO / socket or a file
    larger than ``max_bytes``."""
    path = Path(path)
    size = _size_of(path, what)
    if size > max_bytes:
        raise FileFormatError(f"{path}: {what} of {size:,} bytes exceeds the limit of {max_bytes:,} bytes")
    return path.read_bytes()


def load_json(path, *, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES, expect: type | None = dict):
    """Parse ``path`` as UTF-8 JSON (strict: no NaN/Infinity constants), refusing files over
    ``max_bytes``; with ``expect`` (default ``dict``) the top-level value must be of that type."""
    path = Path(path)
    raw = read_bytes(path, what=what, max_bytes=max_bytes)
    if not raw.strip():
        raise FileFormatError(f"{path}: empty {what}")

    def no_constants(name):
        raise ValueError(f"{name} is not valid JSON")

    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FileFormatError(f"{path}: not a valid {what} ({err})") from None
    if expect is not None and not isinstance(value, expect):
        raise FileFormatError(f"{path}: {what} must hold a JSON {_json_name(expect)}, "
                              f"got {_json_name(type(value))}")
    return value


def _json_name(t: type) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number",
            bool: "boolean", type(None): "null"}.get(t, t.__name__)


def load_npz(path, *, what: str = "array file", max_bytes: int = MAX_FILE_BYTES,
             keys: set | None = None, check_header=None) -> dict[str, np.ndarray]:
    """``{name: array}`` of an ``.npz`` without pickle, checked before anything is allocated.

    Refuses: a missing, empty, truncated or corrupt file (CRC), a member that is not an ``.npy``
    array, object dtypes, and arrays whose header declares more than ``max_bytes`` in total (the
    header is read and checked first, so a file claiming 2^40 elements costs nothing). With
    ``keys``, names outside that set are refused. With ``check_header``, it is called as
    ``check_header(name, shape, dtype)`` for each array from its header, before the array is read
    (it raises :class:`FileFormatError` to refuse one, e.g. more rows than a format allows).
    """
    path = Path(path)
    size = _size_of(path, what)
    if size == 0:
        raise FileFormatError(f"{path}: empty {what}")
    if size > max_bytes:
        raise FileFormatError(f"{path}: {what} of {size:,} bytes exceeds the limit of {max_bytes:,} bytes")
    out: dict[str, np.ndarray] = {}
    budget = max_bytes
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename
                key = name[:-4] if name.endswith(".npy") else name
                if not name.endswith(".npy") or key in out:
                    raise FileFormatError(f"{path}: unexpected member {name!r} in {what}")
                if keys is not None and key not in keys:
                    raise FileFormatError(f"{path}: unexpected array {key!r} in {what}")
                if info.file_size > budget:
                    raise FileFormatError(f"{path}: array {key!r} declares {info.file_size:,} bytes, over the "
                                          f"limit of {max_bytes:,} bytes for this {what}")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(f)
                    if dtype.hasobject:
                        raise FileFormatError(f"{path}: array {key!r} holds Python objects (refused: no pickle)")
                    nbytes = math.prod(shape) * dtype.itemsize
                    if nbytes > budget or nbytes > info.file_size:
                        raise FileFormatError(
                            f"{path}: array {key!r} declares shape {shape} of {dtype} ({nbytes:,} bytes), more "
                            f"than the file holds or the limit of {max_bytes:,} bytes allows")
                    budget -= nbytes
                    if check_header is not None:
                        check_header(key, shape, dtype)
                with zf.open(info) as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
    except FileFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError, KeyError,
            NotImplementedError, RuntimeError, UnicodeDecodeError, zlib.error) as err:
        raise FileFormatError(f"{path}: corrupt or truncated {what} ({type(err).__name__}: {err})") from None
    return out


def arrays_digest(arrays: dict) -> str:
    """SHA-256 over ``{name: array}`` (sorted names, dtypes, shapes and bytes): equal digests mean
    equal arrays, bit for bit."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(np.asarray(arrays[key]))
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()
