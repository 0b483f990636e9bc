"""NIR export: :func:`to_nir` of a ``qnet.Network`` or a float ``layers.SNN``, with the
``s2jax_*`` metadata that ``_restore`` reads back (convention in :mod:`s2jax.export.nir`)."""

from __future__ import annotations

import math

import numpy as np

import nir
from s2jax import qnet
from s2jax import kinds
from s2jax.export.nir._codecs import codec_of
from s2jax.export.nir._common import (DIGEST_KEY, FORMAT_VERSION, LAYER_KINDS, LAYER_NEURONS, LAYER_SYNAPSES,
                                      _check_dense, _check_dt, _meta, _one_of, graph_digest)
from s2jax.kinds.codecs import NO_LEAK_TAU_TICKS, refuse_layers
from s2jax.qnet.checks import check_name as _check_name
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["to_nir", "NO_LEAK_TAU_TICKS"]


class _Builder:
    """Nodes and edges of a graph under construction, with unique helper-node names."""

    def __init__(self, reserved):
        self.nodes: dict = {}
        self.edges: list = []
        self.taken = set(reserved)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def add(self, name: str, node) -> str:
        self.nodes[name] = node
        self.taken.add(name)
        return name

    def edge(self, a: str, b: str):
        if (a, b) not in self.edges:
            self.edges.append((a, b))


def _check_node_name(name, where: str):
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{where}: name {name!r} cannot be a NIR node name (HDF5 group names must be "
                         f"non-empty and contain no '/')")


def _neuron_node(codec, values: dict, shape, dt: float, readout: bool, metadata: dict, where: str):
    """The NIR neuron node the kind's codec writes, with ``metadata``; the codec must return one
    of the node types it declares."""
    node = codec.to_node(values, tuple(shape), dt, readout)
    if type(node).__name__ not in codec.writes:
        raise ValueError(f"{where}: the kind's NIR codec returned a {type(node).__name__} node; it declares "
                         f"writes={list(codec.writes)}")
    node.metadata = metadata
    return node


def _conv_nodes(b: _Builder, base: str, weight_oihw, stride, padding, pool, in_chw, md):
    """SumPool2d (when ``pool != (1, 1)``) and Conv2d nodes; returns (first, last) node names."""
    (pt, pb), (pl, pr) = padding
    if pt != pb or pl != pr:
        raise ValueError(f"{base}: padding {padding} is asymmetric; NIR Conv2d has symmetric padding only")
    _, h, w = in_chw
    first = None
    if tuple(pool) != (1, 1):
        first = b.add(b.fresh(f"{base}_pool"), nir.SumPool2d(kernel_size=np.array(pool), stride=np.array(pool),
                                                            padding=np.array([0, 0])))
        h, w = h // pool[0], w // pool[1]
    conv = b.add(b.fresh(base), nir.Conv2d(input_shape=(h, w), weight=np.asarray(weight_oihw, np.float32),
                                           stride=tuple(int(s) for s in stride), padding=(int(pt), int(pl)),
                                           dilation=(1, 1), groups=1, bias=np.zeros(weight_oihw.shape[0]),
                                           metadata=md))
    if first is not None:
        b.edge(first, conv)
    return first or conv, conv


def _flatten_from(b: _Builder, src: str, shape, cache: dict) -> str:
    """``src`` itself for a flat population, else one shared Flatten node after it."""
    if len(shape) <= 1:
        return src
    if src not in cache:
        cache[src] = b.add(b.fresh(f"{src}_flatten"), nir.Flatten(input_type={"input": np.array(shape)},
                                                                   start_dim=0))
        b.edge(src, cache[src])
    return cache[src]


def _add_outputs(b: _Builder, names, has_out, shapes):
    sinks = [n for n in names if n not in has_out]
    for n in sinks:
        out = b.fresh("output" if len(sinks) == 1 else f"output_{n}")
        b.add(out, nir.Output(output_type={"output": np.array(shapes[n])}))
        b.edge(n, out)


def _graph_md(fmt: str, dt: float, spec: ChipSpec, **extra) -> dict:
    md = {"format": fmt, "format_version": FORMAT_VERSION, "dt": float(dt), "integrator": "forward",
          "layer_latency_ticks": int(spec.layer_latency_ticks),
          "fixed_v_format": f"s{31 - spec.fixed_v_frac_bits}.{spec.fixed_v_frac_bits}",
          "fixed_decay_format": f"u0.{spec.fixed_decay_frac_bits}", **extra}
    return _meta(**md)


# --- qnet.Network -------------------------------------------------------------------------------


def _population_shapes(net: qnet.Network) -> dict:
    """NIR shape of each population: ``(C, H, W)`` at either end of a conv, else ``(size,)``."""
    shapes = {}

    def claim(pop, shape, why):
        old = shapes.setdefault(pop.name, shape)
        if old != shape:
            raise ValueError(f"population {pop.name!r}: {why} needs shape {shape}, another projection needs "
                             f"{old}; NIR cannot reshape between them")

    for proj in net.projections:
        if isinstance(proj, qnet.Conv2DProjection):
            cp = proj.conv_params
            claim(proj.pre, (proj.weights.shape[0], cp["in_height"], cp["in_width"]), f"the input of {proj!r}")
            claim(proj.post, (proj.weights.shape[1], proj.out_height, proj.out_width), f"the output of {proj!r}")
    return {p.name: shapes.get(p.name, (p.size,)) for p in net.populations}


def _pop_metadata(pop: qnet.Population, index: int) -> dict:
    """What restores ``pop`` exactly, for every kind alike: an input kind's spikes
    (``{neuron: [tick, ...]}``), a neuron kind's parameters by their class (a reset mode as
    ``s2jax_<name>``, a number as ``s2jax_param_<name>``, float64)."""
    kind = kinds.get(pop.neuron_model)
    md = {"kind": "population", "index": index, "neuron_model": pop.neuron_model, "size": pop.size,
          "record": ",".join(pop.record), "max_atoms_per_core": int(pop.max_atoms_per_core or 0)}
    if kind.is_input:
        pairs = [(i, t) for i, ticks in pop.params.items() for t in ticks]
        md["spike_neuron"] = np.array([i for i, _ in pairs], np.int64)
        md["spike_tick"] = np.array([t for _, t in pairs], np.int64)
    else:
        for key in kind.params_of("reset"):
            md[key] = pop.params[key]
        for key, cls in kind.param_classes.items():
            if cls != "reset" and key in pop.params:
                md["param_" + key] = np.asarray(pop.params[key], np.float64)
    return _meta(**md)


def _values(pop: qnet.Population) -> dict:
    """A codec's ``values``: every numeric parameter one float64 per neuron, every reset mode as named."""
    kind = kinds.get(pop.neuron_model)
    return {k: pop.params[k] if c == "reset" else pop.param_array(k, np.float64) for k, c in kind.param_classes.items()}


def _qnet_to_nir(net: qnet.Network, dt: float, spec: ChipSpec) -> nir.NIRGraph:
    net.validate()
    for pop in net.populations:
        _check_node_name(pop.name, f"population {pop.name!r}")
    shapes = _population_shapes(net)
    b = _Builder(shapes)
    incoming = {p.name: [j for j in net.projections if j.post is p] for p in net.populations}
    affine_bias = {}  # population -> its one dense projection, which carries i_offset as bias
    for index, pop in enumerate(net.populations):
        if kinds.get(pop.neuron_model).is_input:
            b.add(pop.name, nir.Input(input_type={"input": np.array(shapes[pop.name])},
                                      metadata=_pop_metadata(pop, index)))
            continue
        where = f"population {pop.name!r} (kind {pop.neuron_model!r})"
        codec = codec_of(pop.neuron_model, where)
        if not incoming[pop.name]:
            raise ValueError(f"population {pop.name!r} receives no projection; a NIR neuron node needs an "
                             f"incoming edge (NIR would invent an Input node for it)")
        values = _values(pop)
        readout = codec.readout(values, spec)
        single = incoming[pop.name][0]
        if (codec.bias is not None and len(incoming[pop.name]) == 1 and not isinstance(single, qnet.Conv2DProjection)
                and np.any(values[codec.bias] != 0)):
            affine_bias[pop.name] = (single, values[codec.bias])
            values[codec.bias] = 0.0
        b.add(pop.name, _neuron_node(codec, values, shapes[pop.name], dt, readout, _pop_metadata(pop, index), where))
    flat: dict = {}
    for j, proj in enumerate(net.projections):
        pre, post = proj.pre.name, proj.post.name
        conv = isinstance(proj, qnet.Conv2DProjection)
        md = _meta(kind="projection", index=j, pre=pre, post=post, weight_range=np.array(
            spec.conv_weight_range if conv else spec.weight_range(proj.post.neuron_model), np.int64))
        if conv:
            cp = proj.conv_params
            md.update(_meta(**{"conv_" + k: int(v) for k, v in cp.items()}))
            first, last = _conv_nodes(
                b, f"{pre}_to_{post}", np.swapaxes(proj.weights, 0, 1), (cp["stride_y"], cp["stride_x"]),
                ((cp["pad_top"], cp["pad_bottom"]), (cp["pad_left"], cp["pad_right"])),
                (cp["pool_y"], cp["pool_x"]), shapes[pre], md)
            b.edge(pre, first)
            b.edge(last, post)
            continue
        md.update(_meta(connections=proj.connections.astype(np.int64)))
        _check_dense(proj.post.size, proj.pre.size, f"{proj!r} (NIR has dense weights only)")
        w = np.zeros((proj.post.size, proj.pre.size), np.float64)
        np.add.at(w, (proj.post_idx, proj.pre_idx), proj.weights)
        name = b.fresh(f"{pre}_to_{post}")
        if post in affine_bias and affine_bias[post][0] is proj:
            node = nir.Affine(weight=w.astype(np.float32), bias=affine_bias[post][1], metadata=md)
        else:
            node = nir.Linear(weight=w.astype(np.float32), metadata=md)
        b.add(name, node)
        b.edge(_flatten_from(b, pre, shapes[pre], flat), name)
        if len(shapes[post]) > 1:
            raise ValueError(f"{proj!r}: a dense projection into {post!r}, which a conv shapes as "
                             f"{shapes[post]}; NIR cannot express it")
        b.edge(name, post)
    # an Output after every population that feeds no other one (NIR needs a leaf after every loop)
    _add_outputs(b, [p.name for p in net.populations], {j.pre.name for j in net.projections if j.pre is not j.post},
                 shapes)
    extra = {} if net.name is None else {"network_name": str(net.name)}
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=_graph_md("qnet", dt, spec, **extra))


# --- layers.SNN ---------------------------------------------------------------------------------


def _surrogate_md(neuron, where: str) -> dict:
    from s2jax.surrogates import REGISTRY

    s = neuron.surrogate
    for name, cls in REGISTRY.items():
        if type(s) is cls:
            (value,) = [getattr(s, f) for f in s.__dataclass_fields__]
            return {"surrogate": name, "surrogate_param": float(value)}
    raise ValueError(f"{where}: surrogate {s!r} is not one of {sorted(REGISTRY)}; NIR metadata cannot hold a "
                     f"Python function (and s2jax never pickles)")


def _neuron_metadata(neuron, k: int, chip_model: str) -> dict:
    from flax import nnx

    from s2jax import layers as L

    cell = "LI" if isinstance(neuron, L.LI) else "CubaLIF" if isinstance(neuron, L.CubaLIF) else "LIF"
    chip_model = chip_model or "none"
    f32 = lambda v: np.asarray(v[...], np.float32)  # noqa: E731
    md = {"kind": "neuron", "layer": k, "cell": cell, "chip_model": chip_model, "reset": neuron.reset,
          "alpha": f32(neuron.alpha), "threshold": f32(neuron.threshold), "v_reset": f32(neuron.v_reset),
          "learn_alpha": isinstance(neuron.alpha, nnx.Param),
          "learn_threshold": isinstance(neuron.threshold, nnx.Param),
          "detach_reset": bool(neuron.numerics.detach_reset), "has_bias": neuron.bias is not None,
          **_surrogate_md(neuron, f"layer {k}")}
    if neuron.bias is not None:
        md["bias"] = f32(neuron.bias)
    if cell == "CubaLIF":
        md.update(exc_decay=f32(neuron.exc_decay), inh_decay=f32(neuron.inh_decay), t_refrac=int(neuron.t_refrac))
    return _meta(**md)


def _model_to_nir(model, dt: float, input_shape, spec: ChipSpec) -> nir.NIRGraph:
    from s2jax import layers as L
    from s2jax.quant import QuantConfig

    syns, neurons = list(model.synapses), list(model.neurons)
    synapse_layers = tuple(getattr(L, name) for name in LAYER_SYNAPSES)
    neuron_layers = tuple(getattr(L, node.__name__) for node in LAYER_NEURONS)
    for k, (syn, neuron) in enumerate(zip(syns, neurons)):
        if getattr(syn, "quantizer", None) is not None or getattr(neuron, "quant_scale", None) is not None:
            raise ValueError(f"layer {k} is quantized (after quant.qat); export the float model, or "
                             f"quant.quantize(model) as a qnet.Network")
        if not isinstance(syn, synapse_layers) or not isinstance(neuron, neuron_layers):
            raise ValueError(f"layer {k}: ({type(syn).__name__}, {type(neuron).__name__}) has no NIR form; "
                             f"supported: {_one_of(LAYER_SYNAPSES)} synapses with {_one_of(LAYER_NEURONS)} neurons")
        if neuron.readout and k != len(neurons) - 1:
            raise ValueError(f"layer {k}: an LI readout drives layer {k + 1}; a readout emits no spikes")
    if input_shape is None:
        if not isinstance(syns[0], L.Linear):
            raise ValueError("a model starting with a Conv layer needs to_nir(model, input_shape=(C, H, W))")
        input_shape = (syns[0].in_features,)
    shape = in_shape = tuple(int(s) for s in input_shape)
    b = _Builder(["input"] + [f"layer{k}" for k in range(len(neurons))])
    b.add("input", nir.Input(input_type={"input": np.array(shape)}))
    prev, flat, config = "input", {}, QuantConfig(spec=spec)
    for k, (syn, neuron) in enumerate(zip(syns, neurons)):
        where = f"layer {k}"
        md = _meta(kind="synapse", layer=k)
        cell_shape = tuple(neuron.shape)
        if isinstance(syn, L.Conv):
            if len(shape) != 3 or shape[0] != syn.in_channels:
                raise ValueError(f"{where}: Conv expects a ({syn.in_channels}, H, W) input, got shape {shape}")
            out = syn.output_shape(shape[1], shape[2])
            md.update(_meta(pool=np.array(syn.pool, np.int64), padding=np.array(syn.padding, np.int64)))
            first, last = _conv_nodes(b, f"conv{k}", np.swapaxes(np.asarray(syn.kernel[...]), 0, 1), syn.stride,
                                      syn.padding, syn.pool, shape, md)
            b.edge(prev, first)
        else:
            out = (syn.out_features,)
            if math.prod(shape) != syn.in_features:
                raise ValueError(f"{where}: Linear expects {syn.in_features} inputs, the previous layer has "
                                 f"{math.prod(shape)} (shape {shape})")
            w = np.asarray(syn.kernel[...], np.float32).T
            bias_here = neuron.bias is not None and not isinstance(neuron, L.CubaLIF)
            node = (nir.Affine(weight=w, bias=np.asarray(neuron.bias[...], np.float64).reshape(-1), metadata=md)
                    if bias_here else nir.Linear(weight=w, metadata=md))
            last = b.add(b.fresh(f"linear{k}"), node)
            b.edge(_flatten_from(b, prev, shape, flat), last)
        if cell_shape != tuple(out):
            raise ValueError(f"{where}: neuron shape {cell_shape} differs from its synapse's output {tuple(out)}")
        alpha, thr, bias, v_reset = (np.asarray(a, np.float64) for a in neuron.chip_values())
        cuba = isinstance(neuron, L.CubaLIF)
        in_affine = isinstance(syn, L.Linear) and neuron.bias is not None and not cuba
        values = {"alpha_decay": alpha, "threshold": thr, "i_offset": 0.0 if in_affine else bias, "v_reset": v_reset}
        if cuba:
            values["exc_decay"] = np.clip(np.asarray(neuron.exc_decay[...], np.float64), 0, 1)
        try:
            chip_model = config.chip_model(syn, neuron)
        except ValueError:  # Conv + CubaLIF: a float model, with no chip population to name
            chip_model = None
        codec = codec_of(LAYER_KINDS["LI" if neuron.readout else "CubaLIF" if cuba else "LIF"], where)
        name = b.add(f"layer{k}", _neuron_node(codec, values, out, dt, bool(neuron.readout),
                                               _neuron_metadata(neuron, k, chip_model), where))
        b.edge(last, name)
        prev, shape = name, tuple(out)
    _add_outputs(b, [prev], set(), {prev: shape})
    remat = getattr(model, "remat", False)
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=_graph_md(
        "model", dt, spec, latency=bool(model.latency), input_shape=np.array(in_shape, np.int64),
        remat=-1 if remat is True else int(remat)))


def to_nir(obj, *, dt: float = 1e-3, input_shape=None, spec: ChipSpec = SPINNAKER2) -> nir.NIRGraph:
    """A NIR graph of a ``qnet.Network`` (integer weights, chip units) or a float ``layers.SNN``.

    ``dt``: the tick in seconds that turns decays into time constants (``tau = dt / (1 - alpha)``,
    see :mod:`s2jax.export.nir`). ``input_shape``: ``(C, H, W)`` of a float model whose first layer
    is a ``Conv`` (a ``Linear`` first layer gives it). The graph carries ``s2jax_*`` metadata from
    which :func:`from_nir` rebuilds the object exactly, and a content digest (``s2jax_digest``,
    SHA-256 of everything else in the graph) by which it refuses a graph edited or corrupted since;
    write it with ``nir.write(path, graph)``.

    A qnet population becomes the node its kind's NIR codec writes (``kinds.get(model).codecs["nir"]``;
    stock: ``LIF`` for ``lif*`` models, ``CubaLIF`` for ``lif_curr_exp*``, ``LI`` for a ``lif*``
    population whose threshold is ``spec.readout_threshold``); an input kind (spike_list) becomes
    ``Input``; a kind without a NIR codec raises a ``ValueError`` naming the population and kind. Limits: each neuron population needs an incoming projection; conv padding must be
    symmetric; synaptic delays, ``t_refrac``, ``inh_decay != exc_decay``, ``v_init`` and the reset
    mode live in the metadata only (NIR primitives cannot state them).
    """
    refuse_layers(obj, "a NIR graph")
    from s2jax import layers as L

    dt = _check_dt(dt)
    if isinstance(obj, qnet.Network):
        if input_shape is not None:
            raise ValueError("input_shape is for float models; a qnet.Network knows its shapes")
        _check_name(obj.name, "network")  # names edited after construction are checked again
        for item in (*obj.populations, *obj.projections):
            _check_name(getattr(item, "name", None), type(item).__name__.lower())
        graph = _qnet_to_nir(obj, dt, spec)
    elif isinstance(obj, L.SNN):
        graph = _model_to_nir(obj, dt, input_shape, spec)
    else:
        raise TypeError(f"to_nir takes a qnet.Network or a layers.SNN, got {type(obj).__name__}")
    graph.metadata[DIGEST_KEY] = graph_digest(graph)  # from_nir refuses a graph edited or corrupted since
    return graph
