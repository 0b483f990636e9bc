"""NIR import and export: :func:`to_nir` and :func:`from_nir`.

**Export** (:func:`to_nir`) writes a ``qnet.Network`` (chip units: integer weights) or a float
``layers.SNN`` (float units) as a NIR graph. A population of ``alpha_decay = a``, threshold
``theta``, ``i_offset = c`` becomes, with the stored tick ``dt`` and forward Euler::

    LIF      tau = dt / (1 - a)   r = tau / dt   v_leak = c r   v_threshold = theta   v_reset
    LI       the same without threshold (a readout: threshold = ChipSpec.readout_threshold)
    CubaLIF  tau_mem, r as LIF;  tau_syn = dt / (1 - exc_decay),  w_in = tau_syn / dt

so that ``dt / tau * r = 1`` and ``dt / tau_syn * w_in = 1``: py-spinnaker2's forward-Euler import
(below, without weight scaling) gives back ``a``, ``theta`` and ``c`` up to float64 rounding.
``a = 1`` (no leak) is written as ``tau = 2^26 dt``, whose forward-Euler decay ``1 - 2^-26`` rounds
to exactly 1.0 in float32. When a LIF / LI population has one dense input and a non-zero
``i_offset``, the constant travels as the bias of an ``Affine`` node (``v_leak = 0``); otherwise
weights are ``Linear`` nodes. Convolutions are ``Conv2d`` (NIR layout ``(C_out, C_in, kH, kW)``,
symmetric padding only), preceded by a ``SumPool2d`` (kernel = stride) for the chip's fused
pooling; a ``Flatten`` precedes a dense layer fed by a ``(C, H, W)`` population. Every population
with no synapses into another population feeds an ``Output`` node.

Everything the NIR primitives cannot say travels in node ``metadata`` under ``s2jax_*`` keys
(flat; values are strings, numbers and NumPy arrays, all of which survive ``nir.write`` /
``nir.read``): the chip neuron model, reset mode, every parameter as the population holds it
(float64; the chip stores its float32 rounding: ``alpha_decay``, ``threshold``, ``i_offset``,
``v_init``, ``v_reset``, ``exc_decay``, ``inh_decay``, ``t_refrac``), the integer synapse rows
with their delays (NIR has no per-synapse delay) and the weight range of each projection, the
conv parameters, spike-source times, population names, order and recording, atoms per core;
and in the graph metadata the format, ``dt``, the integrator of the convention above, the
one-tick-per-layer latency and the integer formats. :func:`from_nir` uses that metadata, when the
graph carries it, to rebuild the network exactly (``use_metadata=False`` converts the NIR
parameters instead, like any foreign graph).

**Import** (:func:`from_nir`) reproduces py-spinnaker2's NIR conversion (``ConversionConfig``
settings under their own names). Per neuron node, with the one-tick decay and gain of a time
constant ``tau``::

    forward:      decay = 1 - dt/tau        gain = dt/tau
    exponential:  decay = exp(-dt/tau)      gain = 1 - exp(-dt/tau)

    w_scale = 127 / max|W_in|  (or / percentile(|W_in|, p)), over every weight node into the
              population (1 without scale_weights)
    LIF:     alpha_decay = decay;  scale = (1 / (gain r)) w_scale
             threshold = v_threshold scale;  i_offset = gain v_leak scale + bias w_scale
    IF:      alpha_decay = 1;  threshold = v_threshold ((1 / r) w_scale);  i_offset = bias w_scale
    CubaLIF: lif_curr_exp_no_delay;  exc_decay = inh_decay = decay(tau_syn);  alpha_decay = decay(tau_mem)
             scale = (1 / (gain_mem r)) (1 / (gain_syn w_in)) w_scale   (the input gains folded into
             the threshold);  threshold = v_threshold scale
             i_offset = gain_mem v_leak scale + bias w_in (1 / (gain_syn w_in)) w_scale;  t_refrac = 0
    LI (ours, a readout): as LIF with threshold = ChipSpec.readout_threshold, voltage recorded
    weights: W^T w_scale rounded to integers (``rounding``, default toward zero)

``bias`` sums the biases of the ``Affine`` / ``Conv2d`` nodes into the population (a conv bias is
per output channel). LIF and IF populations fed by a ``Conv2d`` become ``lif_conv2d``, the others
``lif_no_delay``. Reset "subtract" is ``reset_by_subtraction``, "zero" is ``reset_to_v_reset`` with
``v_reset = 0`` (NIR's ``v_reset`` is not used, as in py-spinnaker2).

Provenance. The formulas above, the choice of population model, the weight-scale rules, the
conv layout (``weight.swapaxes(0, 1)``, ``pad_top = pad_bottom = padding[0]``, pooling fused into
``Conv2DProjection`` only for kernel = stride and no padding), the rejection of two consecutive
weight nodes, of weightless edges into neurons and of CubaLIF after Conv2d, and the option names
were read in py-spinnaker2's NIR converter ``s2_nir`` (the package ``spinnaker2`` of
gitlab.com/spinnaker2/py-spinnaker2, whose NIR support NIR's SpiNNaker2 example places on the
branch ``py-spinnaker2_nir``), as stored in the public code index, which names no repository for
it: ``ConversionConfig``, ``IntegratorMethod``, ``ResetMethod``, ``convert_LIF``,
``convert_CubaLIF``, ``convert_IF``, ``create_populations``, ``get_conv2d_params``,
``create_sumpool2d_conv2d_projection``; and in a University of Manchester port of the same file
(package ``spinnirker``) that adds ``weight_scale_percentile`` (``get_percentile_abs_weight``:
``np.percentile`` of all incoming ``|W|``, used unless the percentile is 100). Our own choices,
where py-spinnaker2 differs or is silent: integer weights by a *named* rounding (py-spinnaker2
truncates conv kernels with ``astype(int8)`` and hands dense weights to ``Projection`` as floats);
percentile scaling saturates the outliers at +-127 on purpose (``astype(int8)`` would wrap them);
an all-zero input gets ``w_scale = 1`` (py-spinnaker2 divides by zero); zero weights make no
synapse (they only count as events); stride and pooling index 0 are the height (NIR / PyTorch
order; py-spinnaker2 names index 0 ``x``, the same for square windows); connection delay 0 (our
``*_no_delay`` models take none); ``LI`` readouts; and the defaults ``dt = 1e-3``,
``integrator = "forward"`` and ``scale_weights = True`` (py-spinnaker2: 1.0, exponential, False).
Not taken: ``conn_delay`` (from_nir emits only ``*_no_delay`` models, whose spikes arrive after one
tick; the keyword is rejected), and the ``AvgPool2d`` / ``Conv1d`` nodes of some py-spinnaker2
versions (a ``ValueError`` naming the node); a ``SumPool2d`` straight into a neuron node (which
py-spinnaker2 turns into weight-1 synapses) is rejected as a weightless edge.

Example::

    >>> import nir, numpy as np
    >>> g = nir.NIRGraph.from_list(nir.Linear(np.array([[0.5, -0.25]])),
    ...                            nir.LIF(tau=np.array([0.01]), r=np.array([1.0]),
    ...                                    v_leak=np.array([0.0]), v_threshold=np.array([1.0])))
    >>> net = from_nir(g)                      # w_scale = 127 / 0.5 = 254
    >>> net.population("lif").params["threshold"].tolist(), net.projections[0].weights.tolist()
    ([2540.0], [127, -63])
"""

from __future__ import annotations

import math
import numbers
import os
import pathlib
from dataclasses import dataclass

import numpy as np

import nir
from s2jax import qnet
from s2jax.fixedpoint import round_host
from s2jax.spec import CUBA_MODELS, SPINNAKER2, ChipSpec, Rounding

__all__ = ["to_nir", "from_nir", "NIRFileError", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_P = "s2jax_"
NO_LEAK_TAU_TICKS = 2.0**26  # tau / dt written for alpha_decay == 1: float32(1 - 2^-26) == 1.0

NEURON_NODES = (nir.LIF, nir.IF, nir.CubaLIF, nir.LI)
WEIGHT_NODES = (nir.Affine, nir.Linear, nir.Conv2d)
SHAPE_NODES = (nir.SumPool2d, nir.Flatten)
SUPPORTED_NODES = (nir.Input, nir.Output) + WEIGHT_NODES + SHAPE_NODES + NEURON_NODES
INTEGRATORS = ("forward", "exponential")
RESETS = {"subtract": "reset_by_subtraction", "zero": "reset_to_v_reset"}
QNET_PARAMS = ("threshold", "alpha_decay", "i_offset", "v_init", "v_reset", "exc_decay", "inh_decay", "t_refrac")


class NIRFileError(ValueError):
    """A path that is not a readable NIR file (missing, not HDF5, or HDF5 without a NIR graph)."""


# ================================================================================================
# small shared helpers
# ================================================================================================


def _kind(node) -> str:
    return type(node).__name__


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


def _pair(v, name: str, where: str) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2 or not np.all(np.mod(a, 1) == 0):
        raise ValueError(f"{where}: {name} must be an integer or a pair of integers, got {v!r}")
    return int(a[0]), int(a[1])


def _tau(alpha, dt: float) -> np.ndarray:
    """``dt / (1 - alpha)``, and ``2^26 dt`` where ``alpha == 1`` (a decay that rounds to 1.0)."""
    a = np.asarray(alpha, np.float64)
    one = a == 1.0
    return np.where(one, dt * NO_LEAK_TAU_TICKS, dt / np.where(one, 0.5, 1.0 - a))


def _decay_gain(tau, dt: float, integrator: str):
    """One tick of ``tau dv/dt = -v + ...``: ``(decay, gain)``, forward or exponential Euler."""
    tau = np.asarray(tau, np.float64)
    if integrator == "forward":
        return 1 - dt / tau, dt / tau
    e = np.exp(-dt / tau)
    return e, 1 - e


# ================================================================================================
# export
# ================================================================================================


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


def _neuron_node(kind: str, shape, alpha, threshold, i_offset, v_reset, exc_decay, dt, metadata):
    """A NIR neuron node (export convention of the module docstring), parameters of ``shape``."""

    def arr(x):  # a scalar, or one value per neuron in C, H, W order
        x = np.asarray(x, np.float64)
        return x.reshape(shape).copy() if x.size == math.prod(shape) else np.broadcast_to(x, shape).copy()

    tau = arr(_tau(alpha, dt))
    r = tau / dt
    v_leak = arr(i_offset) * r
    if kind == "li":
        return nir.LI(tau=tau, r=r, v_leak=v_leak, metadata=metadata)
    if kind == "lif":
        return nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=arr(threshold), v_reset=arr(v_reset),
                       metadata=metadata)
    tau_syn = arr(_tau(exc_decay, dt))
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=v_leak, v_threshold=arr(threshold),
                       v_reset=arr(v_reset), w_in=tau_syn / dt, metadata=metadata)


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
    md = {"kind": "population", "index": index, "neuron_model": pop.neuron_model, "size": pop.size,
          "record": ",".join(pop.record), "max_atoms_per_core": int(pop.max_atoms_per_core or 0)}
    if pop.neuron_model == "spike_list":
        pairs = [(i, t) for i, ticks in pop.params.items() for t in ticks]
        md["spike_neuron"] = np.array([i for i, _ in pairs], np.int64)
        md["spike_tick"] = np.array([t for _, t in pairs], np.int64)
    else:
        md["reset"] = pop.params["reset"]
        for key in QNET_PARAMS:
            if key in pop.params:
                md["param_" + key] = np.asarray(pop.params[key], np.float64)
    return _meta(**md)


def _is_readout(pop: qnet.Population, spec: ChipSpec) -> bool:
    return pop.neuron_model not in CUBA_MODELS and bool(np.all(pop.param_array("threshold", np.float64)
                                                                >= spec.readout_threshold))


def _qnet_to_nir(net: qnet.Network, dt: float, spec: ChipSpec) -> nir.NIRGraph:
    net.validate()
    for pop in net.populations:
        _check_node_name(pop.name, f"population {pop.name!r}")
    shapes = _population_shapes(net)
    b = _Builder(shapes)
    incoming = {p.name: [j for j in net.projections if j.post is p] for p in net.populations}
    affine_bias = {}  # population -> its one dense projection, which carries i_offset as bias
    for index, pop in enumerate(net.populations):
        if pop.neuron_model == "spike_list":
            b.add(pop.name, nir.Input(input_type={"input": np.array(shapes[pop.name])},
                                      metadata=_pop_metadata(pop, index)))
            continue
        if not incoming[pop.name]:
            raise ValueError(f"population {pop.name!r} receives no projection; a NIR neuron node needs an "
                             f"incoming edge (NIR would invent an Input node for it)")
        p = {k: pop.param_array(k, np.float64) for k in ("alpha_decay", "threshold", "i_offset", "v_reset")}
        cuba = pop.neuron_model in CUBA_MODELS
        kind = "cuba" if cuba else ("li" if _is_readout(pop, spec) else "lif")
        single = incoming[pop.name][0]
        if (not cuba and len(incoming[pop.name]) == 1 and not isinstance(single, qnet.Conv2DProjection)
                and np.any(p["i_offset"] != 0)):
            affine_bias[pop.name] = single
        i_offset = 0.0 if pop.name in affine_bias else p["i_offset"]
        exc = pop.param_array("exc_decay", np.float64) if cuba else None
        b.add(pop.name, _neuron_node(kind, shapes[pop.name], p["alpha_decay"], p["threshold"], i_offset,
                                     p["v_reset"], exc, dt, _pop_metadata(pop, index)))
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
        w = np.zeros((proj.post.size, proj.pre.size), np.float64)
        np.add.at(w, (proj.post_idx, proj.pre_idx), proj.weights)
        name = b.fresh(f"{pre}_to_{post}")
        if affine_bias.get(post) is proj:
            node = nir.Affine(weight=w.astype(np.float32), bias=proj.post.param_array("i_offset", np.float64),
                              metadata=md)
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
    for k, (syn, neuron) in enumerate(zip(syns, neurons)):
        if getattr(syn, "quantizer", None) is not None or getattr(neuron, "quant_scale", None) is not None:
            raise ValueError(f"layer {k} is quantized (after quant.qat); export the float model, or "
                             f"quant.quantize(model) as a qnet.Network")
        if not isinstance(syn, (L.Linear, L.Conv)) or not isinstance(neuron, L.LIF):
            raise ValueError(f"layer {k}: ({type(syn).__name__}, {type(neuron).__name__}) has no NIR form; "
                             f"supported: Linear or Conv synapses with LIF, CubaLIF or LI neurons")
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
        kind = "li" if neuron.readout else "cuba" if cuba else "lif"
        exc = np.clip(np.asarray(neuron.exc_decay[...], np.float64), 0, 1) if cuba else None
        try:
            chip_model = config.chip_model(syn, neuron)
        except ValueError:  # Conv + CubaLIF: a float model, with no chip population to name
            chip_model = None
        name = b.add(f"layer{k}", _neuron_node(kind, out, alpha, thr, 0.0 if in_affine else bias, v_reset, exc,
                                               dt, _neuron_metadata(neuron, k, chip_model)))
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
    see the module docstring). ``input_shape``: ``(C, H, W)`` of a float model whose first layer
    is a ``Conv`` (a ``Linear`` first layer gives it). The graph carries ``s2jax_*`` metadata from
    which :func:`from_nir` rebuilds the object exactly; write it with ``nir.write(path, graph)``.

    A qnet population becomes ``LIF`` (``lif*`` models), ``CubaLIF`` (``lif_curr_exp*``) or ``LI``
    (a ``lif*`` population whose threshold is ``spec.readout_threshold``); a spike_list becomes
    ``Input``. Limits: each neuron population needs an incoming projection; conv padding must be
    symmetric; synaptic delays, ``t_refrac``, ``inh_decay != exc_decay``, ``v_init`` and the reset
    mode live in the metadata only (NIR primitives cannot state them).
    """
    from s2jax import layers as L

    dt = _check_dt(dt)
    if isinstance(obj, qnet.Network):
        if input_shape is not None:
            raise ValueError("input_shape is for float models; a qnet.Network knows its shapes")
        return _qnet_to_nir(obj, dt, spec)
    if isinstance(obj, L.SNN):
        return _model_to_nir(obj, dt, input_shape, spec)
    raise TypeError(f"to_nir takes a qnet.Network or a layers.SNN, got {type(obj).__name__}")


# ================================================================================================
# import: reading and validating the graph
# ================================================================================================


def _read(path) -> nir.NIRGraph:
    import h5py

    p = pathlib.Path(path)
    if not p.exists():
        raise NIRFileError(f"NIR file {str(p)!r} does not exist")
    if not p.is_file():
        raise NIRFileError(f"{str(p)!r} is not a file")
    if not h5py.is_hdf5(p):
        raise NIRFileError(f"{str(p)!r} is not an HDF5 file, so not a NIR file (nir.write writes HDF5)")
    try:
        with h5py.File(p, "r") as f:
            node, keys = f.get("node"), sorted(f.keys())
            is_nir = isinstance(node, h5py.Group) and "type" in node
    except OSError as e:
        raise NIRFileError(f"{str(p)!r}: unreadable HDF5 file ({e})") from e
    if not is_nir:
        raise NIRFileError(f"{str(p)!r} is HDF5 but holds no NIR graph (no 'node' group with a 'type'); "
                           f"top-level keys: {keys}")
    try:
        graph = nir.read(p, type_check=False)
    except Exception as e:  # noqa: BLE001 - any failure of the reader means a malformed file
        raise NIRFileError(f"{str(p)!r}: malformed NIR file ({type(e).__name__}: {e})") from e
    if not isinstance(graph, nir.NIRGraph):
        raise NIRFileError(f"{str(p)!r}: the top node is a {_kind(graph)}, not a NIRGraph")
    return graph


def _load(graph_or_path) -> nir.NIRGraph:
    if isinstance(graph_or_path, nir.NIRGraph):
        return graph_or_path
    if isinstance(graph_or_path, (str, os.PathLike)):
        return _read(graph_or_path)
    raise TypeError(f"from_nir takes a nir.NIRGraph or a file path, got {type(graph_or_path).__name__}")


def _check_structure(graph: nir.NIRGraph):
    supported = ", ".join(c.__name__ for c in SUPPORTED_NODES)
    for name, node in graph.nodes.items():
        if not isinstance(node, SUPPORTED_NODES):
            raise ValueError(f"node {name!r} is a NIR {_kind(node)}, which s2jax cannot map onto SpiNNaker2; "
                             f"supported node types: {supported}")
    for a, b in graph.edges:
        for end in (a, b):
            if end not in graph.nodes:
                raise ValueError(f"edge ({a!r}, {b!r}) names node {end!r}, which the graph does not have")
        if isinstance(graph.nodes[b], nir.Input):
            raise ValueError(f"edge ({a!r}, {b!r}) enters Input node {b!r}; an Input has no incoming edges")
        if isinstance(graph.nodes[a], nir.Output):
            raise ValueError(f"edge ({a!r}, {b!r}) leaves Output node {a!r}; an Output has no outgoing edges")


def _neuron_shape(name: str, node) -> tuple:
    fields = {nir.LIF: ("tau", "r", "v_leak", "v_threshold"), nir.IF: ("r", "v_threshold"),
              nir.CubaLIF: ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "w_in"),
              nir.LI: ("tau", "r", "v_leak")}[type(node)]
    try:
        shape = np.broadcast_shapes(*(np.shape(getattr(node, f)) for f in fields))
    except ValueError:
        shapes = {f: np.shape(getattr(node, f)) for f in fields}
        raise ValueError(f"{_kind(node)} node {name!r}: parameter shapes {shapes} do not broadcast") from None
    if shape == ():
        typed = (node.input_type or {}).get("input")
        if typed is None or np.size(typed) == 0:
            raise ValueError(f"{_kind(node)} node {name!r} has scalar parameters and no input type: its number "
                             f"of neurons is unknown")
        shape = tuple(int(s) for s in np.asarray(typed).reshape(-1))
    return tuple(int(s) for s in shape)


def _source_shape(name: str, node) -> tuple:
    if isinstance(node, nir.Input):
        return tuple(int(s) for s in np.asarray(node.input_type["input"]).reshape(-1))
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
    if int(np.asarray(node.groups)) != 1 or _pair(node.dilation, "dilation", name) != (1, 1):
        raise ValueError(f"Conv2d node {name!r}: groups={node.groups}, dilation={node.dilation}; the chip's "
                         f"Conv2DProjection supports groups=1 and dilation=1 only")
    c_out, c_in, kh, kw = w.shape
    if len(shape) != 3 and getattr(node, "input_shape", None) is not None:
        hw = _pair(node.input_shape, "input_shape", name)
        if math.prod(shape) == c_in * hw[0] * hw[1]:
            shape = (c_in, *hw)
    if len(shape) != 3 or shape[0] != c_in:
        raise ValueError(f"Conv2d node {name!r}: expects a ({c_in}, H, W) input, gets shape {shape}")
    pad = _conv_padding(name, node, (kh, kw))
    sy, sx = _pair(node.stride, "stride", name)
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
    return _pair(pad, "padding", name)


def _trace(graph: nir.NIRGraph) -> tuple[list[_Synapse], set]:
    """Every synapse path of the graph, checked (one weight node per path, shapes consistent), and
    the sources that reach an ``Output`` (directly or through shape nodes)."""
    succ: dict = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
    nodes = graph.nodes
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
                to_output.update(seen[1:])
                outputs.add(src)
                continue
            if isinstance(node, NEURON_NODES):
                if weight is None:
                    raise ValueError(f"{edge}: {_kind(nodes[src])} node {src!r} reaches {_kind(node)} node {nxt!r} "
                                     f"without a weight node (Affine, Linear or Conv2d); the chip connects "
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
        if isinstance(node, (nir.Input,) + NEURON_NODES):
            walk(name, name, _source_shape(name, node), None, None, None, (name,))
    _check_synapses(graph, found, to_output)
    return found, outputs


def _pool(name, node, shape, pool, weight):
    k = _pair(node.kernel_size, "kernel_size", name)
    if weight is not None:
        raise ValueError(f"SumPool2d node {name!r} follows weight node {weight!r}; the chip pools only "
                         f"before the synapses (SumPool2d -> Conv2d, or SumPool2d -> Flatten -> Affine)")
    if pool is not None:
        raise ValueError(f"SumPool2d node {name!r} follows another SumPool2d; merge the windows")
    if _pair(node.stride, "stride", name) != k or _pair(node.padding, "padding", name) != (0, 0):
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
    the order does not depend on the node order of the dict (``nir.read`` returns it sorted)."""
    names = sorted(n for n, v in graph.nodes.items() if isinstance(v, (nir.Input,) + NEURON_NODES))
    preds = {n: {s.source for s in syns if s.target == n and s.source != n} for n in names}
    out: list[str] = []
    while len(out) < len(names):
        ready = [n for n in names if n not in out and preds[n] <= set(out)]
        out.append(ready[0] if ready else next(n for n in names if n not in out))
    inputs = [n for n in out if isinstance(graph.nodes[n], nir.Input)]
    return inputs + [n for n in out if n not in inputs]


# ================================================================================================
# import: py-spinnaker2's conversion
# ================================================================================================


@dataclass(frozen=True)
class _Settings:
    dt: float
    integrator: str
    reset: str
    scale_weights: bool
    percentile: float | None
    rounding: Rounding
    output_record: tuple
    spec: ChipSpec


def _positive(name, node, field, shape):
    v = np.broadcast_to(np.asarray(getattr(node, field), np.float64), shape).reshape(-1)
    bad = ~((v > 0) & np.isfinite(v))
    if np.any(bad):
        raise ValueError(f"{_kind(node)} node {name!r}: {field} must be positive and finite, got {v[bad][0]}")
    return v


def _nonzero(name, node, field, shape):
    v = np.broadcast_to(np.asarray(getattr(node, field), np.float64), shape).reshape(-1)
    bad = (v == 0) | ~np.isfinite(v)
    if np.any(bad):
        raise ValueError(f"{_kind(node)} node {name!r}: {field} must be finite and non-zero, got {v[bad][0]}")
    return v


def _neuron_params(name: str, node, bias, w_scale: float, cfg: _Settings) -> tuple[dict, np.ndarray]:
    """py-spinnaker2's parameters of one neuron node, one value per neuron (chip units for the
    population's ``w_scale``; float units for 1), and the voltage scale ``v_scale``."""
    shape = _neuron_shape(name, node)

    def flat(x):
        return np.broadcast_to(np.asarray(x, np.float64), shape).reshape(-1)

    reset = {"reset": RESETS[cfg.reset]}
    if isinstance(node, nir.IF):
        v_scale = 1.0 / _nonzero(name, node, "r", shape) * w_scale
        return {"threshold": flat(node.v_threshold) * v_scale, "alpha_decay": 1.0, "i_offset": bias * w_scale,
                **reset}, v_scale
    if isinstance(node, nir.CubaLIF):
        alpha, g_mem = _decay_gain(_positive(name, node, "tau_mem", shape), cfg.dt, cfg.integrator)
        syn_decay, g_syn = _decay_gain(_positive(name, node, "tau_syn", shape), cfg.dt, cfg.integrator)
        r, w_in = _nonzero(name, node, "r", shape), _nonzero(name, node, "w_in", shape)
        v_scale, i_scale = 1.0 / (g_mem * r), 1.0 / (g_syn * w_in)
        scale = v_scale * i_scale * w_scale
        return {"threshold": flat(node.v_threshold) * scale, "alpha_decay": alpha, "exc_decay": syn_decay,
                "inh_decay": syn_decay, "i_offset": g_mem * flat(node.v_leak) * scale + bias * w_in * i_scale * w_scale,
                "t_refrac": 0, "v_reset": 0.0, **reset}, scale
    alpha, gain = _decay_gain(_positive(name, node, "tau", shape), cfg.dt, cfg.integrator)
    scale = 1.0 / (gain * _nonzero(name, node, "r", shape)) * w_scale
    i_offset = gain * flat(node.v_leak) * scale + bias * w_scale
    threshold = (np.full(math.prod(shape), cfg.spec.readout_threshold) if isinstance(node, nir.LI)
                 else flat(node.v_threshold) * scale)
    return {"threshold": threshold, "alpha_decay": alpha, "i_offset": i_offset, **reset}, scale


def _bias(graph, syns_in, size: int) -> np.ndarray:
    """Sum of the biases of the Affine / Conv2d nodes into a population, one value per neuron."""
    total = np.zeros(size, np.float64)
    for wname in dict.fromkeys(s.weight for s in syns_in):
        node, s = graph.nodes[wname], next(s for s in syns_in if s.weight == wname)
        if isinstance(node, nir.Affine):
            total += np.broadcast_to(np.asarray(node.bias, np.float64).reshape(-1), (size,))
        elif isinstance(node, nir.Conv2d) and node.bias is not None and np.size(node.bias):
            b = np.asarray(node.bias, np.float64).reshape(-1, 1, 1)
            total += np.broadcast_to(b, s.out_shape).reshape(-1)
    return total


def _weight_scale(graph, weights, limit: int, cfg: _Settings) -> float:
    """``limit / max|W|`` (or ``/ percentile(|W|, p)``) over the weight nodes; 1 when all are zero."""
    if not cfg.scale_weights or not weights:
        return 1.0
    a = np.concatenate([np.abs(np.asarray(graph.nodes[w].weight, np.float64)).reshape(-1) for w in weights])
    stat = a.max() if cfg.percentile is None or cfg.percentile == 100 else np.percentile(a, cfg.percentile)
    return float(limit / stat) if stat > 0 else 1.0


def _integer_weights(w, w_scale: float, limit: int, cfg: _Settings, where: str) -> np.ndarray:
    """``round(W w_scale)`` with ``cfg.rounding``; percentile scaling saturates at +-limit on purpose."""
    x = np.asarray(w, np.float64) * w_scale
    q = round_host(x, cfg.rounding)
    if cfg.scale_weights and cfg.percentile not in (None, 100):
        return np.clip(q, -limit, limit)
    bad = np.abs(q) > limit
    if np.any(bad):
        raise ValueError(f"{where}: weight {x[bad].flat[0]:g} (= {np.asarray(w)[bad].flat[0]:g} x {w_scale:g}) "
                         f"outside [-{limit}, {limit}]" + ("" if cfg.scale_weights else "; pass scale_weights=True"))
    return q


def _dense_matrix(graph, s: _Synapse) -> np.ndarray:
    """The float ``(n_source, n_target)`` matrix of a dense path, the pooling composed in."""
    m = np.asarray(graph.nodes[s.weight].weight, np.float64).T
    if s.pool == (1, 1):
        return m
    (c, h, w), (py, px) = s.src_shape, s.pool
    hp, wp = h // py, w // px
    ci, hi, wi = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    inside = (hi < hp * py) & (wi < wp * px)
    pooled = (ci * hp + np.minimum(hi // py, hp - 1)) * wp + np.minimum(wi // px, wp - 1)
    return np.where(inside.reshape(-1, 1), m[pooled.reshape(-1)], 0.0)


def _conv_params(graph, s: _Synapse) -> dict:
    node = graph.nodes[s.weight]
    kh, kw = np.asarray(node.weight).shape[2:]
    (py, px), (sy, sx) = s.pool, _pair(node.stride, "stride", s.weight)
    ph, pw = _conv_padding(s.weight, node, (kh, kw))
    c, h, w = s.src_shape if len(s.src_shape) == 3 else (s.in_shape[0], s.in_shape[1] * py, s.in_shape[2] * px)
    return {"in_height": h, "in_width": w, "stride_x": sx, "stride_y": sy, "pool_x": px, "pool_y": py,
            "pad_top": ph, "pad_bottom": ph, "pad_left": pw, "pad_right": pw}


def _chip_model(graph, name, syns_in) -> str:
    node = graph.nodes[name]
    conv = any(isinstance(graph.nodes[s.weight], nir.Conv2d) for s in syns_in)
    if isinstance(node, nir.CubaLIF):
        if conv:
            raise ValueError(f"CubaLIF node {name!r} is fed by a Conv2d; lif_conv2d has no current-based "
                             f"variant (py-spinnaker2 rejects it too)")
        return "lif_curr_exp_no_delay"
    return "lif_conv2d" if conv else "lif_no_delay"


def _convert_qnet(graph, syns, outputs, cfg: _Settings) -> qnet.Network:
    order = _order(graph, syns)
    pops, scales, net = {}, {}, qnet.Network()
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            pops[name] = qnet.Population(math.prod(_source_shape(name, node)), "spike_list", name=name, record=[])
            continue
        syns_in = [s for s in syns if s.target == name]
        model = _chip_model(graph, name, syns_in)
        lo, hi = cfg.spec.weight_range(model)
        limit = min(-lo, hi)
        w_scale = _weight_scale(graph, list(dict.fromkeys(s.weight for s in syns_in)), limit, cfg)
        size = math.prod(_neuron_shape(name, node))
        params, v_scale = _neuron_params(name, node, _bias(graph, syns_in, size), w_scale, cfg)
        record = list(cfg.output_record) if name in outputs else []
        if isinstance(node, nir.LI) and "v" not in record:
            record.append("v")
        pop = qnet.Population(size, model, params, name=name, record=record)
        pop.nir_w_scale, pop.nir_v_scale = w_scale, v_scale  # py-spinnaker2's attributes, to rescale voltages
        pops[name], scales[name] = pop, (w_scale, limit)
    net.add(*(pops[n] for n in order))
    for s in sorted(syns, key=lambda s: (order.index(s.target), order.index(s.source), s.weight)):
        pre, post = pops[s.source], pops[s.target]
        w_scale, limit = scales[s.target]
        where = f"{_kind(graph.nodes[s.weight])} node {s.weight!r} ({s.source!r} -> {s.target!r})"
        if isinstance(graph.nodes[s.weight], nir.Conv2d):
            oihw = np.asarray(graph.nodes[s.weight].weight)
            k = _integer_weights(np.swapaxes(oihw, 0, 1), w_scale, limit, cfg, where)
            net.add(qnet.Conv2DProjection(pre, post, k, _conv_params(graph, s), spec=cfg.spec))
        else:
            m = _integer_weights(_dense_matrix(graph, s), w_scale, limit, cfg, where)
            i, j = np.nonzero(m)
            net.add(qnet.Projection(pre, post, np.stack([i, j, m[i, j], np.zeros_like(i)], axis=1), spec=cfg.spec))
    return net


def _convert_model(graph, syns, cfg: _Settings):
    """A float ``layers.SNN`` (float units, ``w_scale = 1``) of a chain graph."""
    from flax import nnx

    from s2jax import layers as L

    order = _order(graph, syns)
    inputs = [n for n in order if isinstance(graph.nodes[n], nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"output='model' needs exactly one Input node, the graph has {inputs}")
    chain, prev = [], inputs[0]
    while True:
        out = [s for s in syns if s.source == prev]
        if not out:
            break
        if len(out) > 1:
            raise ValueError(f"output='model' builds a layer stack, but node {prev!r} feeds "
                             f"{[s.target for s in out]}; use output='qnet' for general graphs")
        s = out[0]
        into = [x for x in syns if x.target == s.target]
        if len(into) > 1 or any(c.target == s.target for c in chain):
            raise ValueError(f"output='model': node {s.target!r} has {len(into)} inputs or closes a loop; "
                             f"a layers.SNN is a feed-forward chain (use output='qnet')")
        chain.append(s)
        prev = s.target
    stray = [n for n in order if n not in inputs and n not in {c.target for c in chain}]
    if stray:
        raise ValueError(f"output='model': neuron nodes {stray} are not on the chain from {inputs[0]!r}")
    layers, rngs = [], nnx.Rngs(0)
    for k, s in enumerate(chain):
        node = graph.nodes[s.target]
        if isinstance(node, nir.LI) and k != len(chain) - 1:
            raise ValueError(f"LI node {s.target!r} is not the last layer")
        size = math.prod(s.out_shape)
        p, _ = _neuron_params(s.target, node, _bias(graph, [s], size), 1.0, cfg)
        if isinstance(graph.nodes[s.weight], nir.Conv2d):
            cp, w = _conv_params(graph, s), np.asarray(graph.nodes[s.weight].weight, np.float32)
            syn = L.Conv(w.shape[1], w.shape[0], w.shape[2:], stride=(cp["stride_y"], cp["stride_x"]),
                         padding=((cp["pad_top"],) * 2, (cp["pad_left"],) * 2), pool=s.pool, rngs=rngs)
            syn.kernel[...] = np.swapaxes(w, 0, 1)
            shape = s.out_shape
        else:
            m = _dense_matrix(graph, s).astype(np.float32)
            syn = L.Linear(m.shape[0], m.shape[1], rngs=rngs)
            syn.kernel[...] = m
            shape = (size,)
        layers.append((syn, _float_neuron(node, p, shape, cfg)))
    return L.SNN(layers, latency=True)


def _float_neuron(node, p: dict, shape, cfg: _Settings):
    from s2jax import layers as L

    def arr(key):
        return np.broadcast_to(np.asarray(p[key], np.float64), (math.prod(shape),)).reshape(shape).astype(np.float32)

    i_off = arr("i_offset")
    common = {"alpha": arr("alpha_decay"), "bias": bool(np.any(i_off != 0))}
    if isinstance(node, nir.LI):
        cell = L.LI(shape, **common)
    else:
        common.update(threshold=arr("threshold"), reset="subtract" if cfg.reset == "subtract" else "to_v_reset")
        if isinstance(node, nir.CubaLIF):
            cell = L.CubaLIF(shape, exc_decay=arr("exc_decay"), inh_decay=arr("inh_decay"), t_refrac=0, **common)
        else:
            cell = L.LIF(shape, **common)
    if cell.bias is not None:
        cell.bias[...] = i_off
    return cell


# ================================================================================================
# import: exact restore from s2jax metadata
# ================================================================================================


def _by_kind(graph, kind: str, order_key: str) -> list:
    items = [(n, v) for n, v in graph.nodes.items() if _text(_md(v).get(_P + "kind", "")) == kind]
    return sorted(items, key=lambda nv: int(_need(_md(nv[1]), order_key, f"node {nv[0]!r}")))


def _restore_qnet(graph: nir.NIRGraph, spec: ChipSpec) -> qnet.Network:
    name = graph.metadata.get(_P + "network_name")
    net = qnet.Network(None if name is None else _text(name))
    pops = {}
    for node_name, node in _by_kind(graph, "population", "index"):
        md, where = _md(node), f"node {node_name!r}"
        model = _text(_need(md, "neuron_model", where))
        record = [r for r in _text(_need(md, "record", where)).split(",") if r]
        size = int(_need(md, "size", where))
        if model == "spike_list":
            idx, ticks = (np.asarray(_need(md, k, where), np.int64).reshape(-1) for k in ("spike_neuron", "spike_tick"))
            params: dict = {}
            for i, t in zip(idx.tolist(), ticks.tolist()):
                params.setdefault(i, []).append(t)
        else:
            params = {k: np.asarray(md[_P + "param_" + k], np.float64) for k in QNET_PARAMS if _P + "param_" + k in md}
            params = {k: (float(v) if v.ndim == 0 else v) for k, v in params.items()}
            params["reset"] = _text(_need(md, "reset", where))
        pop = qnet.Population(size, model, params, name=node_name, record=record)
        if int(md.get(_P + "max_atoms_per_core", 0)):
            pop.set_max_atoms_per_core(int(md[_P + "max_atoms_per_core"]))
        pops[node_name] = pop
        net.add(pop)
    for node_name, node in _by_kind(graph, "projection", "index"):
        md, where = _md(node), f"{_kind(node)} node {node_name!r}"
        pre, post = (pops[_text(_need(md, k, where))] for k in ("pre", "post"))
        if isinstance(node, nir.Conv2d):
            w = np.swapaxes(np.asarray(node.weight, np.float64), 0, 1)
            cp = {k: int(_need(md, "conv_" + k, where)) for k in qnet.CONV_KEYS}
            net.add(qnet.Conv2DProjection(pre, post, w, cp, spec=spec))
            continue
        conn = np.asarray(_need(md, "connections", where), np.int64).reshape(-1, 4)
        proj = qnet.Projection(pre, post, conn, spec=spec)
        dense = np.zeros((post.size, pre.size))
        np.add.at(dense, (proj.post_idx, proj.pre_idx), proj.weights)
        if not np.array_equal(dense, np.asarray(node.weight, np.float64)):
            raise ValueError(f"{where}: its weights differ from the synapses in its s2jax metadata (was the graph "
                             f"edited?); pass use_metadata=False to convert the NIR weights instead")
        net.add(proj)
    return net


def _restore_model(graph: nir.NIRGraph):
    from flax import nnx

    from s2jax import layers as L

    syns = dict(_by_kind(graph, "synapse", "layer"))
    cells = _by_kind(graph, "neuron", "layer")
    if len(syns) != len(cells):
        raise ValueError(f"s2jax metadata names {len(syns)} synapse and {len(cells)} neuron layers")
    syn_by_layer = {int(_md(v)[_P + "layer"]): (n, v) for n, v in syns.items()}
    layers, rngs = [], nnx.Rngs(0)
    for name, cell in cells:
        md = _md(cell)
        k = int(md[_P + "layer"])
        sname, snode = syn_by_layer[k]
        if isinstance(snode, nir.Conv2d):
            w = np.asarray(snode.weight, np.float32)
            syn = L.Conv(w.shape[1], w.shape[0], w.shape[2:], stride=_pair(snode.stride, "stride", sname),
                         padding=tuple(map(tuple, np.asarray(_need(_md(snode), "padding", sname)).tolist())),
                         pool=tuple(np.asarray(_need(_md(snode), "pool", sname)).tolist()), rngs=rngs)
            syn.kernel[...] = np.swapaxes(w, 0, 1)
        else:
            w = np.asarray(snode.weight, np.float32).T
            syn = L.Linear(w.shape[0], w.shape[1], rngs=rngs)
            syn.kernel[...] = w
        layers.append((syn, _restore_cell(md, f"node {name!r}")))
    remat = int(graph.metadata.get(_P + "remat", 0))
    kwargs = {} if remat == 0 else {"remat": True if remat == -1 else remat}
    return L.SNN(layers, latency=bool(graph.metadata.get(_P + "latency", True)), **kwargs)


def _restore_cell(md: dict, where: str):
    """A LIF / CubaLIF / LI cell exactly as :func:`_neuron_metadata` recorded it."""
    from dataclasses import replace

    from s2jax import layers as L
    from s2jax.surrogates import REGISTRY

    def f32(key):
        return np.asarray(_need(md, key, where), np.float32)

    kind = _text(_need(md, "cell", where))
    alpha = f32("alpha")
    common = {"alpha": alpha, "bias": bool(_need(md, "has_bias", where)),
              "learn_alpha": bool(_need(md, "learn_alpha", where))}
    if kind == "LI":
        cell = L.LI(alpha.shape, **common)
    else:
        common.update(threshold=f32("threshold"), reset=_text(_need(md, "reset", where)),
                      learn_threshold=bool(_need(md, "learn_threshold", where)))
        if kind == "CubaLIF":
            cell = L.CubaLIF(alpha.shape, exc_decay=f32("exc_decay"), inh_decay=f32("inh_decay"),
                             t_refrac=int(_need(md, "t_refrac", where)), **common)
        else:
            cell = L.LIF(alpha.shape, **common)
    cell.surrogate = REGISTRY[_text(_need(md, "surrogate", where))](float(_need(md, "surrogate_param", where)))
    cell.numerics = replace(cell.numerics, surrogate=cell.surrogate,
                            detach_reset=bool(_need(md, "detach_reset", where)))
    cell.v_reset[...] = f32("v_reset")
    if cell.bias is not None:
        cell.bias[...] = f32("bias")
    return cell


# ================================================================================================
# from_nir
# ================================================================================================


def from_nir(graph_or_path, *, dt: float = 1e-3, integrator: str = "forward", reset: str = "subtract",
             scale_weights: bool = True, weight_scale_percentile: float | None = None, output: str = "qnet",
             output_record=("spikes",), rounding: Rounding = Rounding.TO_ZERO, use_metadata: bool = True,
             spec: ChipSpec = SPINNAKER2):
    """A ``qnet.Network`` (``output="qnet"``) or a float ``layers.SNN`` (``output="model"``) of a NIR graph.

    ``graph_or_path``: a ``nir.NIRGraph`` or the path of a file written by ``nir.write`` (read
    without pickling; a missing, non-HDF5 or non-NIR file raises :class:`NIRFileError`).

    py-spinnaker2's settings, under their names: ``dt`` (seconds per tick), ``integrator``
    ("forward": ``alpha_decay = 1 - dt/tau``; "exponential": ``exp(-dt/tau)``), ``reset``
    ("subtract" or "zero"), ``scale_weights`` (``w_scale = 127 / max|W_in|`` per target population,
    thresholds and ``i_offset`` scaled alike), ``weight_scale_percentile`` (``p`` in (0, 100]:
    ``127 / percentile(|W_in|, p)``, the outliers saturating at +-127; ``None`` or 100 is the max)
    and ``output_record`` (what populations feeding an ``Output`` record; ``LI`` readouts always
    record ``"v"``). Our own: ``rounding`` of the scaled weights (default toward zero, as
    py-spinnaker2's ``astype(int8)``), ``spec``. The formulas are in the module docstring.

    ``output="qnet"``: one ``spike_list`` population per ``Input``, then one population per neuron
    node, named after the nodes, in topological order; each carries py-spinnaker2's
    ``nir_w_scale`` / ``nir_v_scale`` (divide a recorded voltage by ``nir_v_scale`` for NIR units).
    ``output="model"``: a feed-forward ``layers.SNN(latency=True)`` in float units (the same
    formulas with ``w_scale = 1``; quantize it later with ``s2jax.quant``), for chain graphs only;
    ``weight_scale_percentile`` belongs to ``quant.QuantConfig`` there.

    ``use_metadata``: a graph written by :func:`to_nir` is rebuilt exactly from its metadata when
    it holds the requested kind (a qnet graph for "qnet", a model graph for "model"); the
    conversion settings then play no part. Otherwise the NIR parameters are converted.

    Raises ``ValueError`` naming the node and value for: unsupported node types, two consecutive
    weight nodes, a weightless edge into a neuron node, loops without a neuron, shape mismatches,
    weights out of range, and bad settings.
    """
    dt = _check_dt(dt)
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {tuple(RESETS)}, got {reset!r}")
    if output not in ("qnet", "model"):
        raise ValueError(f"output must be 'qnet' or 'model', got {output!r}")
    if weight_scale_percentile is not None:
        if not (isinstance(weight_scale_percentile, (int, float)) and 0 < weight_scale_percentile <= 100):
            raise ValueError(f"weight_scale_percentile must be in (0, 100], got {weight_scale_percentile!r}")
        if output == "model":
            raise ValueError("weight_scale_percentile scales integer weights; output='model' keeps float weights "
                             "(use quant.QuantConfig(calibration='percentile', percentile=p) when quantizing)")
        if not scale_weights:
            raise ValueError("weight_scale_percentile needs scale_weights=True")
    if not isinstance(rounding, Rounding):
        raise ValueError(f"rounding must be an s2jax.Rounding, got {rounding!r}")
    record = (output_record,) if isinstance(output_record, str) else tuple(output_record)
    for r in record:
        if r not in qnet.RECORDABLE:
            raise ValueError(f"output_record entry {r!r} is not recordable; choose from {list(qnet.RECORDABLE)}")
    graph = _load(graph_or_path)
    _check_structure(graph)
    syns, outputs = _trace(graph)
    fmt = _text(graph.metadata.get(_P + "format", "")) if isinstance(graph.metadata, dict) else ""
    if use_metadata and fmt == output:
        version = int(graph.metadata.get(_P + "format_version", -1))
        if version != FORMAT_VERSION:
            raise ValueError(f"s2jax metadata format version {version}; this s2jax reads version {FORMAT_VERSION} "
                             f"(pass use_metadata=False to convert the NIR parameters)")
        return _restore_qnet(graph, spec) if output == "qnet" else _restore_model(graph)
    if output == "model" and fmt == "qnet":
        delayed = [n for n, v in graph.nodes.items()
                   if _P + "connections" in _md(v) and np.any(np.asarray(_md(v)[_P + "connections"])[..., 3] != 0)]
        if delayed:
            raise ValueError(f"weight nodes {delayed} carry synaptic delays, which a layers.SNN cannot express")
    cfg = _Settings(dt, integrator, reset, bool(scale_weights), weight_scale_percentile, rounding, record, spec)
    return _convert_qnet(graph, syns, outputs, cfg) if output == "qnet" else _convert_model(graph, syns, cfg)
