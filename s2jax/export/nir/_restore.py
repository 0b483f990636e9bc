"""NIR import from s2jax metadata: the exact ``qnet.Network`` or ``layers.SNN`` that
:func:`s2jax.export.nir.to_nir` wrote, rebuilt from the ``s2jax_*`` node metadata.

Every node of the graph is accounted for: a population node (``Input`` or a neuron node) must
carry the metadata kind of a population (``"population"`` in a qnet graph, ``"neuron"`` in a model
graph), a weight node that of a projection (``"projection"`` / ``"synapse"``), and shape and
``Output`` nodes none; anything else is a ``ValueError`` naming the node and the value it holds
(never a node skipped). Indices must be unique, ``pre`` / ``post`` must match the graph's edges,
sizes must match the node shapes, and every metadata value must have its written type (integers,
real arrays, texts, booleans) before it is used. When the graph carries a content digest
(``s2jax_digest``, written by :func:`to_nir`), the rebuilt graph must match it: an edited or
corrupted value that the checks above cannot see is refused too.
"""

from __future__ import annotations

import numpy as np

import nir
from s2jax import kinds, qnet
from s2jax.export.nir._codecs import codec_of, neuron_nodes
from s2jax.export.nir._common import (_P, DIGEST_KEY, WEIGHT_NODES, _check_dense,
                                      _check_text, _flag, _kind, _md, _need, _need_int, _need_real, _need_text, _pair,
                                      _one_of, _real, _show, graph_digest)
from s2jax.export.nir._read import _neuron_shape, _source_shape
from s2jax.spec import ChipSpec

_HINT = "pass use_metadata=False to convert the NIR parameters instead"
#: The metadata kind each node family must carry, per format.
_KINDS = {"qnet": ("population", "projection"), "model": ("neuron", "synapse")}


def _classify(graph, fmt: str) -> tuple[list, list]:
    """(population nodes, weight nodes) of an s2jax graph, as ``(name, node)`` pairs; every other
    node must be a shape or Output node without a kind."""
    pop_kind, proj_kind = _KINDS[fmt]
    sources = (nir.Input,) + neuron_nodes()
    pops, projs = [], []
    for name, node in graph.nodes.items():
        md = _md(node)
        kind = None if _P + "kind" not in md else md[_P + "kind"]
        where = f"{_kind(node)} node {name!r}"
        if fmt == "model" and isinstance(node, nir.Input):
            expect = None  # the model's input carries no metadata
        elif isinstance(node, sources):
            expect = pop_kind
        elif isinstance(node, WEIGHT_NODES):
            expect = proj_kind
        else:
            expect = None
        got = None if kind is None else _text_or_none(kind)
        if got != expect:
            said = "no s2jax_kind" if kind is None else f"s2jax_kind {_show(kind)}"
            want = "none" if expect is None else repr(expect)
            article = "an" if _kind(node)[0] in "AEIOU" else "a"
            raise ValueError(f"{where}: metadata has {said}, but in an s2jax {fmt} graph {article} {_kind(node)} node "
                             f"has kind {want}; the metadata was edited or belongs to another graph ({_HINT})")
        if expect == pop_kind:
            pops.append((name, node))
        elif expect == proj_kind:
            projs.append((name, node))
    return pops, projs


def _text_or_none(v):
    """A metadata kind as text; a value that is no text comes back as is (it matches no kind)."""
    try:
        return _check_text(v, "kind", "")
    except ValueError:
        return v


def _sorted_by(items, key: str, what: str) -> list:
    """``items`` in the order of their metadata ``key``: integers 0 .. n-1, each once."""
    index = {}
    for name, node in items:
        i = _need_int(_md(node), key, f"{_kind(node)} node {name!r}", 0, len(items) - 1)
        if i in index:
            raise ValueError(f"{_kind(node)} node {name!r}: {what} {_P + key} {i} repeats that of node "
                             f"{index[i][0]!r} ({_HINT})")
        index[i] = (name, node)
    return [index[i] for i in sorted(index)]


def _int_array(md: dict, key: str, where: str) -> np.ndarray:
    a = np.asarray(_need(md, key, where))
    if a.dtype.kind not in "iu":
        raise ValueError(f"{where}: metadata {_P + key} must hold integers, got {a.dtype} values ({_show(a)})")
    return a.astype(np.int64)


def _restore_qnet(graph: nir.NIRGraph, syns, spec: ChipSpec) -> qnet.Network:
    """The ``qnet.Network`` of a graph :func:`to_nir` wrote from one (``syns``: its traced paths)."""
    pop_nodes, proj_nodes = _classify(graph, "qnet")
    name = graph.metadata.get(_P + "network_name")
    net = qnet.Network(None if name is None else _need_text(graph.metadata, "network_name", "graph metadata"))
    pops = {}
    for node_name, node in _sorted_by(pop_nodes, "index", "population index"):
        pops[node_name] = pop = _restore_population(node_name, node)
        net.add(pop)
    via = {}
    for s in syns:
        via.setdefault(s.weight, []).append(s)
    for node_name, node in _sorted_by(proj_nodes, "index", "projection index"):
        net.add(_restore_projection(node_name, node, pops, via.get(node_name, []), spec))
    return net


def _restore_population(node_name: str, node) -> qnet.Population:
    md, where = _md(node), f"{_kind(node)} node {node_name!r}"
    model = _need_text(md, "neuron_model", where)
    try:
        kind = kinds.get(model)
    except ValueError as e:
        raise ValueError(f"{where}: metadata neuron_model: {e}") from None
    if kind.is_input != isinstance(node, nir.Input):
        raise ValueError(f"{where}: metadata neuron_model {model!r} does not fit a {_kind(node)} node ({_HINT})")
    if not kind.is_input:
        writes = codec_of(model, where).writes
        if _kind(node) not in writes:
            raise ValueError(f"{where}: metadata neuron_model {model!r} does not fit a {_kind(node)} node: the "
                             f"kind's NIR codec writes {_one_of(writes)} ({_HINT})")
    record = [r for r in _need_text(md, "record", where).split(",") if r]
    size = _need_int(md, "size", where, 1, qnet.MAX_POPULATION_SIZE)
    shape = _source_shape(node_name, node)
    if size != int(np.prod(shape)):
        raise ValueError(f"{where}: metadata size {size:,} but the node has shape {shape} ({int(np.prod(shape)):,} "
                         f"neurons) ({_HINT})")
    if kind.is_input:
        idx, ticks = _int_array(md, "spike_neuron", where).reshape(-1), _int_array(md, "spike_tick", where).reshape(-1)
        if idx.shape != ticks.shape:
            raise ValueError(f"{where}: {idx.size} spike neurons but {ticks.size} spike ticks")
        params: dict = {}
        for i, t in zip(idx.tolist(), ticks.tolist()):
            params.setdefault(i, []).append(t)
    else:
        params = {}
        for k in [key[len(_P + "param_"):] for key in md if isinstance(key, str) and key.startswith(_P + "param_")]:
            v = _need_real(md, "param_" + k, where)
            if v.ndim not in (0, 1) or (v.ndim == 1 and v.size != size):
                raise ValueError(f"{where}: metadata param_{k} has shape {v.shape}; expected a scalar or ({size},)")
            params[k] = float(v) if v.ndim == 0 else v
        for k in kind.params_of("reset"):
            params[k] = _need_text(md, k, where)
    pop = qnet.Population(size, model, params, name=node_name, record=record)
    if _P + "max_atoms_per_core" in md:
        atoms = _need_int(md, "max_atoms_per_core", where, 0, qnet.MAX_POPULATION_SIZE)
        if atoms:
            pop.set_max_atoms_per_core(atoms)
    return pop


def _restore_projection(node_name: str, node, pops: dict, paths: list, spec: ChipSpec):
    md, where = _md(node), f"{_kind(node)} node {node_name!r}"
    ends = []
    for key in ("pre", "post"):
        end = _need_text(md, key, where)
        if end not in pops:
            raise ValueError(f"{where}: metadata {key} {end!r} is not a population node of the graph ({_HINT})")
        ends.append(end)
    if len(paths) != 1 or (paths[0].source, paths[0].target) != tuple(ends):
        found = [(s.source, s.target) for s in paths]
        raise ValueError(f"{where}: metadata says {ends[0]!r} -> {ends[1]!r}, the graph's edges give {found} "
                         f"({_HINT})")
    pre, post = pops[ends[0]], pops[ends[1]]
    if isinstance(node, nir.Conv2d):
        w = np.swapaxes(_real(node.weight, "weight", where), 0, 1)
        cp = {k: _need_int(md, "conv_" + k, where, 0, 2**31) for k in qnet.CONV_KEYS}
        return qnet.Conv2DProjection(pre, post, w, cp, spec=spec)
    conn = _int_array(md, "connections", where)
    if conn.ndim != 2 or conn.shape[1] != 4:
        raise ValueError(f"{where}: metadata connections must be (n, 4) [pre, post, weight, delay] rows, got "
                         f"shape {conn.shape}")
    proj = qnet.Projection(pre, post, conn, spec=spec)
    weight = _real(node.weight, "weight", where)
    if weight.shape != (post.size, pre.size):
        raise ValueError(f"{where}: weight has shape {weight.shape}, expected ({post.size}, {pre.size}) ({_HINT})")
    _check_dense(post.size, pre.size, where)
    dense = np.zeros((post.size, pre.size))
    np.add.at(dense, (proj.post_idx, proj.pre_idx), proj.weights)
    if not np.array_equal(dense, weight):
        raise ValueError(f"{where}: its weights differ from the synapses in its s2jax metadata (was the graph "
                         f"edited?); {_HINT}")
    return proj


def _check_digest(graph: nir.NIRGraph) -> None:
    """A graph carrying ``s2jax_digest`` must hash to it (see :func:`graph_digest`)."""
    if DIGEST_KEY not in graph.metadata:
        return
    stored = _need_text(graph.metadata, "digest", "graph metadata")
    if stored != graph_digest(graph):
        raise ValueError(f"the graph differs from what s2jax wrote (its content digest {stored[:12]}... does not "
                         f"match): a value was edited or the file is corrupt; {_HINT}")


def _restore_model(graph: nir.NIRGraph):
    """The ``layers.SNN`` of a graph :func:`to_nir` wrote from one: layer ``k`` is the synapse node
    and the neuron node whose metadata ``layer`` is ``k`` (each ``k`` once, for both)."""
    from flax import nnx

    from s2jax import layers as L

    cells_in, syns_in = _classify(graph, "model")
    if len(syns_in) != len(cells_in):
        raise ValueError(f"s2jax metadata names {len(syns_in)} synapse and {len(cells_in)} neuron layers ({_HINT})")
    syns = _sorted_by(syns_in, "layer", "synapse layer")
    cells = _sorted_by(cells_in, "layer", "neuron layer")
    layers, rngs = [], nnx.Rngs(0)
    for (name, cell), (sname, snode) in zip(cells, syns):
        where = f"{_kind(snode)} node {sname!r}"
        if isinstance(snode, nir.Conv2d):
            w = _real(snode.weight, "weight", where).astype(np.float32)
            smd = _md(snode)
            padding, pool = _int_array(smd, "padding", where), _int_array(smd, "pool", where)
            if padding.shape != (2, 2) or pool.shape != (2,) or np.any(padding < 0) or np.any(pool < 1):
                raise ValueError(f"{where}: metadata padding {_show(padding)} / pool {_show(pool)} are not "
                                 f"((top, bottom), (left, right)) >= 0 and (y, x) >= 1")
            syn = L.Conv(w.shape[1], w.shape[0], w.shape[2:], stride=_pair(snode.stride, "stride", where, lo=1),
                         padding=tuple(map(tuple, padding.tolist())), pool=tuple(pool.tolist()), rngs=rngs)
            syn.kernel[...] = np.swapaxes(w, 0, 1)
        else:
            w = _real(snode.weight, "weight", where).astype(np.float32).T
            syn = L.Linear(w.shape[0], w.shape[1], rngs=rngs)
            syn.kernel[...] = w
        layers.append((syn, _restore_cell(_md(cell), f"{_kind(cell)} node {name!r}", _neuron_shape(name, cell))))
    md = graph.metadata
    remat = _need_int(md, "remat", "graph metadata", -1, 2**31) if _P + "remat" in md else 0
    kwargs = {} if remat == 0 else {"remat": True if remat == -1 else remat}
    latency = _flag(md[_P + "latency"], _P + "latency", "graph metadata") if _P + "latency" in md else True
    return L.SNN(layers, latency=latency, **kwargs)


def _restore_cell(md: dict, where: str, shape: tuple):
    """A LIF / CubaLIF / LI cell exactly as :func:`_neuron_metadata` recorded it."""
    from dataclasses import replace

    from s2jax import layers as L
    from s2jax.surrogates import REGISTRY

    def f32(key):
        v = _need_real(md, key, where).astype(np.float32)
        if v.ndim and v.shape != tuple(shape):
            raise ValueError(f"{where}: metadata {key} has shape {v.shape}, the node has shape {tuple(shape)}")
        return v

    def flag(key):
        return _flag(_need(md, key, where), _P + key, where)

    kind = _need_text(md, "cell", where)
    if kind not in ("LI", "LIF", "CubaLIF"):
        raise ValueError(f"{where}: metadata cell {kind!r} is not 'LIF', 'CubaLIF' or 'LI' ({_HINT})")
    alpha = f32("alpha")
    common = {"alpha": alpha, "bias": flag("has_bias"), "learn_alpha": flag("learn_alpha")}
    if kind == "LI":
        cell = L.LI(alpha.shape, **common)
    else:
        common.update(threshold=f32("threshold"), reset=_need_text(md, "reset", where),
                      learn_threshold=flag("learn_threshold"))
        if kind == "CubaLIF":
            cell = L.CubaLIF(alpha.shape, exc_decay=f32("exc_decay"), inh_decay=f32("inh_decay"),
                             t_refrac=_need_int(md, "t_refrac", where, 0, 2**31), **common)
        else:
            cell = L.LIF(alpha.shape, **common)
    surrogate = _need_text(md, "surrogate", where)
    if surrogate not in REGISTRY:
        raise ValueError(f"{where}: metadata surrogate {surrogate!r} is not one of {sorted(REGISTRY)}")
    param = _need_real(md, "surrogate_param", where)
    if param.ndim:
        raise ValueError(f"{where}: metadata surrogate_param must be one number, got shape {param.shape}")
    cell.surrogate = REGISTRY[surrogate](float(param))
    cell.numerics = replace(cell.numerics, surrogate=cell.surrogate, detach_reset=flag("detach_reset"))
    cell.v_reset[...] = f32("v_reset")
    if cell.bias is not None:
        cell.bias[...] = f32("bias")
    return cell
