"""Shared pieces of NIR export and import: the format version, node families, the error type,
small helpers for ``s2jax_*`` metadata, ``dt`` and integer pairs, the checked readers of values a
file gives (shapes, integers, real arrays, texts) and the content digest of a graph."""

from __future__ import annotations

import hashlib
import math
import numbers

import numpy as np

import nir
from s2jax.io import FileFormatError
from s2jax.export.nir._codecs import neuron_nodes
from s2jax.qnet import MAX_POPULATION_SIZE
from s2jax.qnet.checks import MAX_SYNAPSES

FORMAT_VERSION = 1
_P = "s2jax_"

# The node types s2jax maps onto the chip: the one definition that from_nir checks graphs against
# and that the error messages of import and export name. The neuron node types are those the NIR
# codecs of the registered kinds write or read (s2jax.kinds.codecs): neuron_nodes() and
# supported_nodes() follow the registry; NEURON_NODES and SUPPORTED_NODES are those of the stock kinds.
WEIGHT_NODES = (nir.Affine, nir.Linear, nir.Conv2d)
SHAPE_NODES = (nir.SumPool2d, nir.Flatten)


def supported_nodes() -> tuple:
    """Input, Output, the weight and shape nodes, and the registered kinds' neuron nodes."""
    return (nir.Input, nir.Output) + WEIGHT_NODES + SHAPE_NODES + neuron_nodes()


NEURON_NODES = neuron_nodes()
SUPPORTED_NODES = supported_nodes()
# The float layers to_nir writes: these ``s2jax.layers`` synapse classes (a Linear becomes a Linear
# or Affine node, a Conv a Conv2d), and the neuron classes named as their NIR nodes, each written by
# the NIR codec of its chip kind (LAYER_KINDS; no layer is an IF: a LIF without leak is a LIF).
LAYER_SYNAPSES = ("Linear", "Conv")
LAYER_NEURONS = (nir.LIF, nir.CubaLIF, nir.LI)
LAYER_KINDS = {"LIF": "lif_no_delay", "LI": "lif_no_delay", "CubaLIF": "lif_curr_exp_no_delay"}
INTEGRATORS = ("forward", "exponential")
RESETS = {"subtract": "reset_by_subtraction", "zero": "reset_to_v_reset"}
# the numeric parameters of the stock kinds (each kind's metadata holds those of its param_classes)
QNET_PARAMS = ("threshold", "alpha_decay", "i_offset", "v_init", "v_reset", "exc_decay", "inh_decay", "t_refrac")


class NIRFileError(FileFormatError):
    """A path that is not a readable NIR file (missing, not HDF5, corrupt or truncated HDF5, HDF5
    without a NIR graph, or arrays larger than the read limit); the message starts with the path."""


def _kind(node) -> str:
    return type(node).__name__


def _one_of(names) -> str:
    """``"A, B or C"``: names (strings, or classes by their names) for an error message."""
    names = [n if isinstance(n, str) else n.__name__ for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
    return float(dt)


def _md(node) -> dict:
    return node.metadata if isinstance(getattr(node, "metadata", None), dict) else {}


def _text(v) -> str:
    """A metadata string as written (str) or as read back from HDF5 (bytes)."""
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return _text(v.item())
    return str(v)


def _meta(**items) -> dict:
    """``s2jax_``-prefixed metadata that nir.write stores: 0-d arrays become NumPy scalars (its
    HDF5 writer compresses arrays, which scalar datasets refuse)."""
    return {_P + k: (v[()] if isinstance(v, np.ndarray) and v.ndim == 0 else v) for k, v in items.items()}


def _need(md: dict, key: str, where: str):
    if _P + key not in md:
        raise ValueError(f"{where}: the graph was written by s2jax but metadata {_P + key!r} is missing; "
                         f"pass use_metadata=False to convert the NIR parameters instead")
    return md[_P + key]


def _pair(v, name: str, where: str, lo: int = 0) -> tuple[int, int]:
    """An integer or a pair of integers, each at least ``lo``."""
    a = np.asarray(v)
    if not _is_real(a) or a.ndim > 1 or a.size not in (1, 2) or not np.all(np.isfinite(a)) \
            or not np.all(np.mod(a, 1) == 0):
        raise ValueError(f"{where}: {name} must be an integer or a pair of integers, got {_show(v)}")
    a = np.repeat(a.reshape(-1), 2) if a.size == 1 else a.reshape(-1)
    if np.any(a < lo) or np.any(a > 2**31):
        raise ValueError(f"{where}: {name} {_show(v)} out of range: each must be in [{lo}, 2^31]")
    return int(a[0]), int(a[1])


# --- values read from a file, checked before use ------------------------------------------------


def _show(v, limit: int = 60) -> str:
    """A short repr of a value for an error message."""
    text = repr(v.tolist() if isinstance(v, np.ndarray) and v.size <= 8 else v)
    if isinstance(v, np.ndarray) and v.size > 8:
        text = f"array of shape {v.shape} ({v.dtype})"
    return text if len(text) <= limit else text[:limit] + "..."


def _is_real(a: np.ndarray) -> bool:
    """Signed, unsigned or floating point numbers (not bool, complex, text or objects)."""
    return a.dtype.kind in "iuf"


def _real(v, name: str, where: str) -> np.ndarray:
    """``v`` as a float64 array, refusing bool, complex, text and object values and NaN / infinity."""
    a = np.asarray(v)
    if not _is_real(a):
        raise ValueError(f"{where}: {name} must hold real numbers, got {a.dtype} values ({_show(v)})")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: {name} must be finite, got {a[~np.isfinite(a)].flat[0]}")
    return a


def _integer(v, name: str, where: str, lo: int, hi: int) -> int:
    """One integer in ``[lo, hi]`` (a Python or NumPy integer, or an integral float)."""
    a = np.asarray(v)
    if a.ndim != 0 or not _is_real(a) or not np.isfinite(a) or a != np.floor(a):
        raise ValueError(f"{where}: {name} must be an integer, got {_show(v)}")
    if not lo <= a <= hi:
        raise ValueError(f"{where}: {name} {_show(v)} out of range [{lo:,}, {hi:,}]")
    return int(a)


def _flag(v, name: str, where: str) -> bool:
    """A boolean as written (``True`` / ``False``, NumPy's included), nothing else."""
    a = np.asarray(v)
    if a.ndim != 0 or a.dtype.kind != "b":
        raise ValueError(f"{where}: {name} must be a boolean, got {_show(v)}")
    return bool(a)


def _check_text(v, name: str, where: str) -> str:
    """A text value (str, or bytes as HDF5 gives it back)."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if not isinstance(v, (str, bytes, np.str_, np.bytes_)):
        raise ValueError(f"{where}: {name} must be a text, got {_show(v)}")
    try:
        return _text(v)
    except UnicodeDecodeError:
        raise ValueError(f"{where}: {name} is not UTF-8 text: {_show(v)}") from None


def _shape(v, what: str, where: str, max_dims: int = 3) -> tuple:
    """A population shape from a file: 1 to ``max_dims`` positive integers whose product is at most
    :data:`s2jax.qnet.MAX_POPULATION_SIZE`, checked before anything of that size is allocated."""
    a = np.asarray(v)
    if not _is_real(a) or a.ndim != 1 or not 1 <= a.size <= max_dims or not np.all(np.isfinite(a)) \
            or not np.all(np.mod(a, 1) == 0):
        raise ValueError(f"{where}: {what} must be 1 to {max_dims} positive integers, got {_show(v)}")
    if np.any(a < 1):
        raise ValueError(f"{where}: {what} {_show(v)} has a dimension below 1")
    dims = tuple(int(x) for x in a)
    if math.prod(dims) > MAX_POPULATION_SIZE:
        raise ValueError(f"{where}: {what} {dims} holds {math.prod(dims):,} neurons, over the limit of "
                         f"{MAX_POPULATION_SIZE:,} (s2jax.qnet.MAX_POPULATION_SIZE)")
    return dims


#: Most entries of one weight array of a NIR graph (a Linear / Affine matrix, a Conv2d kernel, the
#: rows of s2jax ``connections`` metadata) and of a dense ``(n_post, n_pre)`` matrix that NIR import
#: or export builds: :data:`s2jax.qnet.checks.MAX_SYNAPSES` (2^24), the synapse limit of one
#: projection (128 MiB as float64). Checked from the HDF5 headers before a file's arrays are read,
#: and before any conversion allocates. Tests lower it with ``monkeypatch``.
MAX_DENSE_WEIGHTS = MAX_SYNAPSES


def _check_dense(rows: int, cols: int, where: str) -> None:
    """Refuse a ``rows x cols`` weight matrix over :data:`MAX_DENSE_WEIGHTS` (before allocating it)."""
    if rows * cols > MAX_DENSE_WEIGHTS:
        raise ValueError(f"{where}: a dense weight matrix of {rows:,} x {cols:,} = {rows * cols:,} entries "
                         f"exceeds the limit of {MAX_DENSE_WEIGHTS:,} (s2jax.export.nir.MAX_DENSE_WEIGHTS)")


def _check_weight_count(v, where: str) -> None:
    """Refuse a weight array (of any shape) of more than :data:`MAX_DENSE_WEIGHTS` entries."""
    shape = np.shape(v)
    if math.prod(shape) > MAX_DENSE_WEIGHTS:
        raise ValueError(f"{where}: weight of shape {shape} holds {math.prod(shape):,} entries, over the limit of "
                         f"{MAX_DENSE_WEIGHTS:,} per weight node (s2jax.export.nir.MAX_DENSE_WEIGHTS)")


def _check_real(v, name: str, where: str) -> None:
    """What :func:`_real` checks (real, finite numbers), without a float64 copy of ``v``."""
    a = np.asarray(v)
    if not _is_real(a):
        raise ValueError(f"{where}: {name} must hold real numbers, got {a.dtype} values ({_show(v)})")
    if a.dtype.kind == "f" and a.dtype.itemsize > 8:
        _real(a, name, where)  # long double: finite values may still overflow float64
    elif a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            raise ValueError(f"{where}: {name} must be finite, got {a[~finite].flat[0]}")


def _need_int(md: dict, key: str, where: str, lo: int, hi: int) -> int:
    return _integer(_need(md, key, where), _P + key, where, lo, hi)


def _need_text(md: dict, key: str, where: str) -> str:
    return _check_text(_need(md, key, where), _P + key, where)


def _need_real(md: dict, key: str, where: str) -> np.ndarray:
    return _real(_need(md, key, where), _P + key, where)


# --- content digest -----------------------------------------------------------------------------

DIGEST_KEY = _P + "digest"


def _encode(v, h) -> None:
    """Feed a canonical encoding of a ``to_dict()`` value to ``h``: the same for a graph in memory
    and the graph ``nir.read`` gives back (str / bytes, int / int64, tuple / array all agree)."""
    if isinstance(v, dict):
        h.update(b"{%d" % len(v))
        for k in sorted(v, key=str):
            _encode(str(k), h)
            _encode(v[k], h)
        h.update(b"}")
    elif v is None:
        h.update(b"N")
    elif isinstance(v, (str, bytes, np.str_, np.bytes_)):
        t = (v.decode("utf8", "backslashreplace") if isinstance(v, (bytes, np.bytes_)) else str(v)).encode("utf8")
        h.update(b"s%d:" % len(t) + t)
    elif isinstance(v, (list, tuple)) and any(isinstance(x, (str, bytes, tuple, list, dict)) for x in v):
        h.update(b"[%d" % len(v))
        for x in v:
            _encode(x, h)
        h.update(b"]")
    else:
        a = np.asarray(v)
        if a.dtype.kind in "SUO":
            _encode([x for x in a.reshape(-1).tolist()], h)
            h.update(repr(a.shape).encode())
            return
        a = a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)
        h.update(b"a" + a.dtype.str.encode() + repr(a.shape).encode() + np.ascontiguousarray(a).tobytes())


def graph_digest(graph: nir.NIRGraph) -> str:
    """SHA-256 of everything in ``graph`` (node types, parameters, metadata, sorted edges, graph
    metadata) except the digest itself; unchanged by ``nir.write`` / ``nir.read``."""
    d = graph.to_dict()
    d["metadata"] = {k: v for k, v in (d.get("metadata") or {}).items() if k != DIGEST_KEY}
    d["edges"] = sorted((_text(a), _text(b)) for a, b in d.get("edges", []))
    h = hashlib.sha256()
    _encode(d, h)
    return h.hexdigest()
