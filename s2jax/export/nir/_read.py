"""NIR import, first steps: reading a NIR file without pickling, checking the graph's node types
and edges, and tracing every synapse path (source -> [SumPool2d] -> [Flatten] -> weight -> neuron)."""

from __future__ import annotations

import dataclasses
import heapq
import math
import os
import pathlib
from dataclasses import dataclass

import numpy as np

import nir
from s2jax.export.nir import _common
from s2jax.export.nir._codecs import fields_of, neuron_nodes
from s2jax.export.nir._common import (SHAPE_NODES, WEIGHT_NODES, NIRFileError, _check_real, _check_weight_count,
                                      _integer, _kind, _one_of, _pair, _shape, _show, _text, supported_nodes)
from s2jax.io import special_file_kind


#: Most bytes of arrays a NIR file may declare, summed over its datasets (checked before reading).
MAX_NIR_ARRAY_BYTES = 2 * 1024**3
#: Most HDF5 objects (groups and datasets) a NIR file may hold.
MAX_NIR_OBJECTS = 1_000_000


def _scan(f, p) -> None:
    """Refuse a file whose datasets declare more than :data:`MAX_NIR_ARRAY_BYTES` in total (shape
    times item size from each header; nothing is read), which holds too many objects, or one of whose
    ``weight`` datasets (or ``s2jax_connections`` rows) declares more than
    :data:`~s2jax.export.nir.MAX_DENSE_WEIGHTS` entries: a compressed file of zeros cannot make
    the import allocate beyond that limit."""
    import h5py

    seen = {"bytes": 0, "objects": 0}

    def visit(name, obj):
        seen["objects"] += 1
        if seen["objects"] > MAX_NIR_OBJECTS:
            raise NIRFileError(f"{p}: more than {MAX_NIR_OBJECTS:,} HDF5 objects, over the limit for a NIR file")
        if isinstance(obj, h5py.Dataset):
            shape = obj.shape or ()
            nbytes = math.prod(shape) * max(obj.dtype.itemsize, 1)
            seen["bytes"] += nbytes
            leaf = name.rsplit("/", 1)[-1]
            counted = {"weight": ("weights", math.prod(shape)),
                       "s2jax_connections": ("synapse rows", shape[0] if shape else 0)}.get(leaf, ("", 0))
            if counted[1] > _common.MAX_DENSE_WEIGHTS:
                raise NIRFileError(f"{p}: dataset {name!r} declares shape {shape}: {counted[1]:,} "
                                   f"{counted[0]}, over the limit of "
                                   f"{_common.MAX_DENSE_WEIGHTS:,} per weight node (s2jax.export.nir.MAX_DENSE_WEIGHTS)")
            if seen["bytes"] > MAX_NIR_ARRAY_BYTES:
                raise NIRFileError(f"{p}: dataset {name!r} declares shape {shape} of {obj.dtype} ({nbytes:,} "
                                   f"bytes); the file's arrays exceed the limit of {MAX_NIR_ARRAY_BYTES:,} bytes")

    f.visititems(visit)


def _read(path) -> nir.NIRGraph:
    """The graph of a NIR file, read without pickling. Every failure is a :class:`NIRFileError`
    naming the file: missing, a folder, a device / FIFO / socket (never opened), not HDF5, corrupt or truncated HDF5, no NIR graph inside,
    arrays declaring more than :data:`MAX_NIR_ARRAY_BYTES` (checked from the headers first)."""
    import h5py

    p = pathlib.Path(path)
    if not p.exists():
        raise NIRFileError(f"{p}: NIR file does not exist")
    kind = special_file_kind(p)
    if kind:
        raise NIRFileError(f"{p}: is {kind}, not a regular file (a NIR file was expected)")
    if not p.is_file():
        raise NIRFileError(f"{p}: is not a file (a NIR file was expected)")
    try:
        if not h5py.is_hdf5(p):
            raise NIRFileError(f"{p}: is not an HDF5 file, so not a NIR file (nir.write writes HDF5)")
        with h5py.File(p, "r") as f:
            node, keys = f.get("node"), sorted(f.keys())
            is_nir = isinstance(node, h5py.Group) and "type" in node
            if is_nir:
                _scan(f, p)
    except NIRFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, RecursionError, MemoryError) as e:
        raise NIRFileError(f"{p}: corrupt or truncated HDF5 file ({type(e).__name__}: {_first_line(e)})") from None
    if not is_nir:
        raise NIRFileError(f"{p}: is HDF5 but holds no NIR graph (no 'node' group with a 'type'); "
                           f"top-level keys: {keys[:20]}")
    try:
        graph = nir.read(p, type_check=False)
    except Exception as e:  # noqa: BLE001 - any failure of the reader means a malformed file
        raise NIRFileError(f"{p}: malformed NIR file ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise NIRFileError(f"{p}: the top node is a {_kind(graph)}, not a NIRGraph")
    return graph


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = (str(e).splitlines() or [""])[0]
    return text if len(text) <= limit else text[:limit] + "..."


def _load(graph_or_path) -> nir.NIRGraph:
    if isinstance(graph_or_path, nir.NIRGraph):
        return graph_or_path
    if isinstance(graph_or_path, (str, os.PathLike)):
        return _read(graph_or_path)
    raise TypeError(f"from_nir takes a nir.NIRGraph or a file path, got {type(graph_or_path).__name__}")


#: The numeric fields of each weight and shape node type, checked for real, finite values (those of
#: a neuron node type are its kinds' NIR codec's ``fields`` and ``optional`` ones).
_NUMERIC_FIELDS = {
    nir.Affine: ("weight", "bias"), nir.Linear: ("weight",),
    nir.Conv2d: ("weight", "bias", "stride", "padding", "dilation", "groups", "input_shape"),
    nir.SumPool2d: ("kernel_size", "stride", "padding"), nir.Flatten: ("start_dim", "end_dim"),
}
_OPTIONAL_FIELDS = {(nir.Conv2d, "input_shape"), (nir.Conv2d, "bias")}


def _numeric_fields(node) -> tuple[tuple[str, ...], set]:
    """(the numeric fields of ``node``, those of them that may be None)."""
    if type(node) in _NUMERIC_FIELDS:
        return _NUMERIC_FIELDS[type(node)], {f for t, f in _OPTIONAL_FIELDS if t is type(node)}
    fields, optional = fields_of(node)
    wanted = set(fields + optional)
    return tuple(f.name for f in dataclasses.fields(node) if f.name in wanted), set(optional)


def _check_values(name: str, node) -> None:
    """Every numeric field of ``node`` holds real, finite numbers (no bool, complex, text or
    objects; a Conv2d's padding may be 'valid' / 'same'); Input and Output shapes are valid
    population shapes (see ``_common._shape``)."""
    where = f"{_kind(node)} node {name!r}"
    if isinstance(node, nir.Input):
        _shape((node.input_type or {}).get("input"), "input shape", where)
        return
    if isinstance(node, nir.Output):
        _shape((node.output_type or {}).get("output"), "output shape", where)
        return
    if isinstance(node, WEIGHT_NODES):
        _check_weight_count(getattr(node, "weight", None), where)
    fields, optional = _numeric_fields(node)
    for field in fields:
        v = getattr(node, field, None)
        if v is None and field in optional:
            continue
        if field == "padding" and isinstance(node, nir.Conv2d) and (
                isinstance(v, (str, bytes, np.str_, np.bytes_))
                or (isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "SU")):
            continue
        _check_real(v, field, where)
    if isinstance(node, nir.Flatten):
        typed = (node.input_type or {}).get("input")
        if typed is not None and np.size(typed):
            _shape(typed, "input_type", where)


def _check_structure(graph: nir.NIRGraph):
    """Node types are supported, every node's values are real numbers and its shapes valid, and
    every edge joins two nodes of the graph (none into an Input, none out of an Output)."""
    supported_types = supported_nodes()
    supported = ", ".join(c.__name__ for c in supported_types)
    if not isinstance(graph.nodes, dict) or not isinstance(graph.edges, (list, tuple)):
        raise ValueError(f"a NIR graph has a dict of nodes and a list of edges, got {type(graph.nodes).__name__} "
                         f"and {type(graph.edges).__name__}")
    for name, node in graph.nodes.items():
        if not isinstance(name, str):
            raise ValueError(f"node name {_show(name)} is not a text")
        if not isinstance(node, supported_types):
            raise ValueError(f"node {name!r} is a NIR {_kind(node)}, which s2jax cannot map onto SpiNNaker2; "
                             f"supported node types: {supported}")
        _check_values(name, node)
    for edge in graph.edges:
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2 and all(isinstance(e, str) for e in edge)):
            raise ValueError(f"edge {_show(edge)} is not a pair of node names")
    for a, b in graph.edges:
        for end in (a, b):
            if end not in graph.nodes:
                raise ValueError(f"edge ({a!r}, {b!r}) names node {end!r}, which the graph does not have")
        if isinstance(graph.nodes[b], nir.Input):
            raise ValueError(f"edge ({a!r}, {b!r}) enters Input node {b!r}; an Input has no incoming edges")
        if isinstance(graph.nodes[a], nir.Output):
            raise ValueError(f"edge ({a!r}, {b!r}) leaves Output node {a!r}; an Output has no outgoing edges")


def _neuron_shape(name: str, node) -> tuple:
    fields = fields_of(node)[0]
    try:
        shape = np.broadcast_shapes(*(np.shape(getattr(node, f)) for f in fields))
    except ValueError:
        shapes = {f: np.shape(getattr(node, f)) for f in fields}
        raise ValueError(f"{_kind(node)} node {name!r}: parameter shapes {shapes} do not broadcast") from None
    where = f"{_kind(node)} node {name!r}"
    if shape == ():
        typed = (node.input_type or {}).get("input")
        if typed is None or np.size(typed) == 0:
            raise ValueError(f"{where} has scalar parameters and no input type: its number of neurons is unknown")
        return _shape(typed, "input type", where)
    return _shape(np.array(shape), "shape", where)


def _source_shape(name: str, node) -> tuple:
    if isinstance(node, nir.Input):
        return _shape((node.input_type or {}).get("input"), "input shape", f"Input node {name!r}")
    return _neuron_shape(name, node)


@dataclass(frozen=True)
class _Synapse:
    """One path source -> [SumPool2d] -> [Flatten] -> weight node -> [Flatten] -> neuron."""

    source: str
    target: str
    weight: str
    pool: tuple  # (pool_y, pool_x); (1, 1) without a SumPool2d
    src_shape: tuple  # the source's shape (before pooling)
    in_shape: tuple  # what enters the weight node
    out_shape: tuple  # what the weight node produces
    via: tuple  # the SumPool2d / Flatten / weight nodes on the path


def _conv_geometry(name: str, node, shape) -> tuple[tuple, tuple]:
    """(input (C, H, W), output (C_out, H_out, W_out)) of a Conv2d fed ``shape``."""
    w = np.asarray(node.weight)
    if w.ndim != 4:
        raise ValueError(f"Conv2d node {name!r}: weight must be (C_out, C_in, kH, kW), got shape {w.shape}")
    where = f"Conv2d node {name!r}"
    if _integer(node.groups, "groups", where, 1, 2**31) != 1 or _pair(node.dilation, "dilation", where) != (1, 1):
        raise ValueError(f"Conv2d node {name!r}: groups={node.groups}, dilation={node.dilation}; the chip's "
                         f"Conv2DProjection supports groups=1 and dilation=1 only")
    c_out, c_in, kh, kw = w.shape
    if len(shape) != 3 and getattr(node, "input_shape", None) is not None:
        hw = _pair(node.input_shape, "input_shape", where, lo=1)
        if math.prod(shape) == c_in * hw[0] * hw[1]:
            shape = (c_in, *hw)
    if len(shape) != 3 or shape[0] != c_in:
        raise ValueError(f"Conv2d node {name!r}: expects a ({c_in}, H, W) input, gets shape {shape}")
    pad = _conv_padding(name, node, (kh, kw))
    sy, sx = _pair(node.stride, "stride", where, lo=1)
    ho, wo = (shape[1] + 2 * pad[0] - kh) // sy + 1, (shape[2] + 2 * pad[1] - kw) // sx + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"Conv2d node {name!r}: kernel {kh}x{kw} does not fit the padded input {shape}")
    return tuple(shape), (c_out, ho, wo)


def _conv_padding(name: str, node, kernel) -> tuple[int, int]:
    pad = node.padding
    if isinstance(pad, (str, bytes, np.bytes_)) or (isinstance(pad, np.ndarray) and pad.dtype.kind in "SOU"):
        mode = _text(pad)
        if mode == "valid":
            return 0, 0
        if mode == "same" and all(k % 2 == 1 for k in kernel):
            return (kernel[0] - 1) // 2, (kernel[1] - 1) // 2
        raise ValueError(f"Conv2d node {name!r}: padding {mode!r} with kernel {kernel} is not supported "
                         f"(integers, 'valid', or 'same' with odd kernels)")
    return _pair(pad, "padding", f"Conv2d node {name!r}")


def _trace(graph: nir.NIRGraph) -> tuple[list[_Synapse], set]:
    """Every synapse path of the graph, checked (one weight node per path, shapes consistent), and
    the sources that reach an ``Output`` (directly or through shape nodes)."""
    succ: dict = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
    nodes, neurons = graph.nodes, neuron_nodes()
    found: list[_Synapse] = []
    to_output: set = set()  # shape nodes on weightless paths into an Output (harmless)
    outputs: set = set()

    def walk(src, node_name, shape, pool, weight, w_shapes, seen):
        for nxt in succ[node_name]:
            node = nodes[nxt]
            edge = f"edge ({node_name!r}, {nxt!r})"
            if isinstance(node, nir.Output):
                if weight is not None:
                    raise ValueError(f"{edge}: weight node {weight!r} reaches Output {nxt!r} without a neuron "
                                     f"node; the chip applies weights only into a neuron population")
                out = _shape((node.output_type or {}).get("output"), "output shape", f"Output node {nxt!r}")
                if math.prod(out) != math.prod(shape):
                    raise ValueError(f"Output node {nxt!r}: output shape {out} ({math.prod(out):,} values) but "
                                     f"{node_name!r} gives shape {tuple(shape)} ({math.prod(shape):,} values)")
                to_output.update(seen[1:])
                outputs.add(src)
                continue
            if isinstance(node, neurons):
                if weight is None:
                    raise ValueError(f"{edge}: {_kind(nodes[src])} node {src!r} reaches {_kind(node)} node {nxt!r} "
                                     f"without a weight node ({_one_of(WEIGHT_NODES)}); the chip connects "
                                     f"populations only through synapses")
                found.append(_Synapse(src, nxt, weight, pool or (1, 1), _source_shape(src, nodes[src]),
                                      *w_shapes, seen[1:]))
                continue
            if nxt in seen:
                raise ValueError(f"{edge} closes the cycle {' -> '.join(seen[seen.index(nxt):] + (nxt,))} without "
                                 f"a neuron node; the chip can only map loops through a population")
            if not succ[nxt]:
                raise ValueError(f"{_kind(node)} node {nxt!r} leads nowhere: every path must end in a neuron "
                                 f"node or an Output")
            if isinstance(node, WEIGHT_NODES):
                if weight is not None:
                    raise ValueError(f"{edge}: two consecutive weight nodes {weight!r} ({_kind(nodes[weight])}) "
                                     f"and {nxt!r} ({_kind(node)}); the chip has one synapse matrix between "
                                     f"populations, so merge them (W2 @ W1) first")
                if isinstance(node, nir.Conv2d):
                    in_shape, out_shape = _conv_geometry(nxt, node, shape)
                else:
                    w = np.asarray(node.weight)
                    if w.ndim != 2:
                        raise ValueError(f"{_kind(node)} node {nxt!r}: weight must be (out, in), got {w.shape}")
                    if w.shape[1] != math.prod(shape):
                        raise ValueError(f"{_kind(node)} node {nxt!r}: weight {w.shape} takes {w.shape[1]} inputs, "
                                         f"gets {math.prod(shape)} (shape {shape} from {node_name!r})")
                    in_shape, out_shape = shape, (w.shape[0],)
                walk(src, nxt, out_shape, pool, nxt, (in_shape, out_shape), seen + (nxt,))
            elif isinstance(node, nir.SumPool2d):
                shape2, pool2 = _pool(nxt, node, shape, pool, weight)
                walk(src, nxt, shape2, pool2, weight, w_shapes, seen + (nxt,))
            else:  # Flatten
                walk(src, nxt, (math.prod(shape),), pool, weight, w_shapes, seen + (nxt,))

    for name, node in nodes.items():
        if isinstance(node, (nir.Input,) + neurons):
            walk(name, name, _source_shape(name, node), None, None, None, (name,))
    _check_synapses(graph, found, to_output)
    return found, outputs


def _pool(name, node, shape, pool, weight):
    where = f"SumPool2d node {name!r}"
    k = _pair(node.kernel_size, "kernel_size", where, lo=1)
    if weight is not None:
        raise ValueError(f"SumPool2d node {name!r} follows weight node {weight!r}; the chip pools only "
                         f"before the synapses (SumPool2d -> Conv2d, or SumPool2d -> Flatten -> Affine)")
    if pool is not None:
        raise ValueError(f"SumPool2d node {name!r} follows another SumPool2d; merge the windows")
    if _pair(node.stride, "stride", where, lo=1) != k or _pair(node.padding, "padding", where) != (0, 0):
        raise ValueError(f"SumPool2d node {name!r}: kernel {k}, stride {node.stride}, padding {node.padding}; "
                         f"the chip's fused pooling needs stride = kernel and no padding")
    if len(shape) != 3 or shape[1] < k[0] or shape[2] < k[1]:
        raise ValueError(f"SumPool2d node {name!r}: needs a (C, H, W) input of at least {k}, gets {shape}")
    if k[0] * k[1] > 127:
        raise ValueError(f"SumPool2d node {name!r}: window {k[0]}x{k[1]} exceeds the chip's 127 inputs")
    return (shape[0], shape[1] // k[0], shape[2] // k[1]), k


def _check_synapses(graph, syns, to_output):
    nodes = graph.nodes
    on_path = {n for s in syns for n in s.via} | to_output
    for name, node in nodes.items():
        if isinstance(node, WEIGHT_NODES + SHAPE_NODES) and name not in on_path:
            raise ValueError(f"{_kind(node)} node {name!r} is on no path from an Input or neuron node to a "
                             f"neuron node")
    for s in syns:
        if isinstance(nodes[s.source], nir.LI):
            raise ValueError(f"LI node {s.source!r} drives {s.target!r} through {s.weight!r}; an LI is a "
                             f"non-spiking readout and cannot drive synapses")
        size = math.prod(_neuron_shape(s.target, nodes[s.target]))
        if math.prod(s.out_shape) != size:
            raise ValueError(f"{_kind(nodes[s.weight])} node {s.weight!r} gives {math.prod(s.out_shape)} outputs "
                             f"(shape {s.out_shape}) but {_kind(nodes[s.target])} node {s.target!r} has {size} "
                             f"neurons")


def _order(graph: nir.NIRGraph, syns) -> list[str]:
    """Population nodes: Inputs, then neurons in topological order; names break ties and cycles, so
    the order does not depend on the node order of the dict (``nir.read`` returns it sorted).

    Kahn's algorithm with a heap of ready names: at each step the smallest name whose sources
    (self-loops aside) are all placed; when none is ready (a cycle), the smallest name not yet
    placed. ``O((nodes + synapses) log nodes)``."""
    sources = (nir.Input,) + neuron_nodes()
    names = sorted(n for n, v in graph.nodes.items() if isinstance(v, sources))
    preds: dict = {n: set() for n in names}
    for s in syns:
        if s.source != s.target:
            preds[s.target].add(s.source)
    succ: dict = {n: [] for n in names}
    for n, sources in preds.items():
        for m in sources:
            succ[m].append(n)
    waiting = {n: len(preds[n]) for n in names}
    ready = [n for n in names if not waiting[n]]  # sorted, so already a heap
    placed: set = set()
    out: list[str] = []
    rest = 0  # names[:rest] are all placed: where the smallest unplaced name is looked for
    while len(out) < len(names):
        while ready and ready[0] in placed:
            heapq.heappop(ready)
        if ready:
            n = heapq.heappop(ready)
        else:  # a cycle: the smallest name not yet placed
            while names[rest] in placed:
                rest += 1
            n = names[rest]
        placed.add(n)
        out.append(n)
        for m in succ[n]:
            waiting[m] -= 1
            if not waiting[m] and m not in placed:
                heapq.heappush(ready, m)
    inputs = [n for n in out if isinstance(graph.nodes[n], nir.Input)]
    return inputs + [n for n in out if not isinstance(graph.nodes[n], nir.Input)]
