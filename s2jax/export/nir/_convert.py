"""NIR import by py-spinnaker2's conversion: NIR neuron parameters and float weights to chip
populations and integer synapses (``qnet``), or to a float ``layers.SNN`` (formulas in
:mod:`s2jax.export.nir`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import nir
from s2jax import kinds, qnet
from s2jax.export.nir._codecs import reader_of
from s2jax.export.nir._common import RESETS, _check_dense, _kind, _pair
from s2jax.export.nir._read import _conv_padding, _neuron_shape, _order, _source_shape, _Synapse
from s2jax.fixedpoint import round_host
from s2jax.kinds.codecs import NIRImport
from s2jax.spec import ChipSpec, Rounding


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


def _reader(name: str, node) -> tuple:
    """(the codec converting a foreign neuron node, the node's ``where`` for messages)."""
    where = f"{_kind(node)} node {name!r}"
    return reader_of(node, where), where


def _neuron_params(name: str, node, bias, w_scale: float, cfg: _Settings) -> tuple[dict, np.ndarray]:
    """py-spinnaker2's parameters of one neuron node by its kind's NIR codec, one value per neuron
    (chip units for the population's ``w_scale``; float units for 1), and the voltage scale ``v_scale``."""
    codec, where = _reader(name, node)
    settings = NIRImport(cfg.dt, cfg.integrator, RESETS[cfg.reset], cfg.spec.readout_threshold)
    return codec.from_node(node, where, _neuron_shape(name, node), bias, w_scale, settings)


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
    if cfg.percentile is None or cfg.percentile == 100:  # max |W| without a copy of the weights
        arrays = [np.asarray(graph.nodes[w].weight) for w in weights]
        stat = max((max(abs(float(a.max())), abs(float(a.min()))) for a in arrays if a.size), default=0.0)
    else:
        a = np.concatenate([np.abs(np.asarray(graph.nodes[w].weight, np.float64)).reshape(-1) for w in weights])
        stat = np.percentile(a, cfg.percentile)
    return float(limit / stat) if stat > 0 else 1.0


@dataclass(frozen=True)
class WeightQuantization:
    """How :func:`~s2jax.export.nir.from_nir` turned the float weights of one NIR weight node into
    the chip's integers: ``integer = round(float * scale)`` (``rounding``), clipped to +-``limit``.

    Errors are in the file's float units: ``|integer / scale - float|`` over the node's weights
    (zeros included). ``clipped`` counts weights that saturated at +-``limit``, which only
    percentile scaling allows (otherwise an out-of-range weight is an error)."""

    weight_node: str
    pre: str
    post: str
    scale: float
    limit: int
    weights: int
    max_abs_error: float
    mean_abs_error: float
    clipped: int

    def __str__(self) -> str:
        return (f"{self.pre} -> {self.post} ({self.weight_node}): scale {self.scale:.6g}, max |error| "
                f"{self.max_abs_error:.3g}, mean |error| {self.mean_abs_error:.3g}, clipped {self.clipped} of "
                f"{self.weights:,} weights")


def format_weight_report(report) -> str:
    """The lines of a :class:`WeightQuantization` sequence as ``s2jax check`` / ``inspect`` print it."""
    if not report:
        return "weights: integers as stored (no float weights were quantized)"
    lines = ["weights quantized from float (NIR import; errors in the file's weight units):"]
    lines += [f"  {r}" for r in report]
    return "\n".join(lines)


#: Weights converted at a time by the NIR import's quantization (bounds its float64 temporaries).
_BLOCK = 2**16


def _quantization(name: str, s: _Synapse, w, q, w_scale: float, limit: int, clipped: int) -> WeightQuantization:
    """The report of one weight node; the errors are summed :data:`_BLOCK` weights at a time, so no
    float64 copy of the whole matrix is made."""
    qf, wf = np.asarray(q).reshape(-1), np.asarray(w).reshape(-1)
    worst, total = 0.0, 0.0
    for a in range(0, qf.size, _BLOCK):
        err = np.abs(qf[a:a + _BLOCK].astype(np.float64) / w_scale - wf[a:a + _BLOCK])
        worst, total = max(worst, float(err.max())), total + float(err.sum())
    return WeightQuantization(name, s.source, s.target, float(w_scale), int(limit), int(qf.size), worst,
                              total / qf.size if qf.size else 0.0, int(clipped))


def _integer_weights(w, w_scale: float, limit: int, cfg: _Settings, where: str) -> tuple[np.ndarray, int]:
    """``round(W w_scale)`` with ``cfg.rounding`` (float64, one array beside ``w``) and how many of
    them saturate at +-limit: percentile scaling clips them on purpose, otherwise one is an error."""
    w = np.asarray(w)
    q = np.empty(w.shape, np.float64)
    wf, qf = w.reshape(-1), q.reshape(-1)  # qf is a view of q
    for a in range(0, wf.size, _BLOCK):  # no float64 temporaries of the whole matrix
        qf[a:a + _BLOCK] = round_host(np.multiply(wf[a:a + _BLOCK], w_scale, dtype=np.float64), cfg.rounding)
    bad = q > limit
    bad |= q < -limit
    clipped = int(np.count_nonzero(bad))
    if cfg.scale_weights and cfg.percentile not in (None, 100):
        return np.clip(q, -limit, limit, out=q), clipped
    if clipped:
        w0 = float(np.asarray(w)[bad].flat[0])
        raise ValueError(f"{where}: weight {w0 * w_scale:g} (= {w0:g} x {w_scale:g}) "
                         f"outside [-{limit}, {limit}]" + ("" if cfg.scale_weights else "; pass scale_weights=True"))
    return q, 0


def _dense_matrix(graph, s: _Synapse) -> np.ndarray:
    """The float ``(n_source, n_target)`` matrix of a dense path, the pooling composed in."""
    m = np.asarray(graph.nodes[s.weight].weight, np.float64).T
    if s.pool == (1, 1):
        return m
    _check_dense(math.prod(s.src_shape), m.shape[1], f"{_kind(graph.nodes[s.weight])} node {s.weight!r}")
    (c, h, w), (py, px) = s.src_shape, s.pool
    hp, wp = h // py, w // px
    ci, hi, wi = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    inside = (hi < hp * py) & (wi < wp * px)
    pooled = (ci * hp + np.minimum(hi // py, hp - 1)) * wp + np.minimum(wi // px, wp - 1)
    return np.where(inside.reshape(-1, 1), m[pooled.reshape(-1)], 0.0)


def _conv_params(graph, s: _Synapse) -> dict:
    node = graph.nodes[s.weight]
    kh, kw = np.asarray(node.weight).shape[2:]
    (py, px), (sy, sx) = s.pool, _pair(node.stride, "stride", f"Conv2d node {s.weight!r}", lo=1)
    ph, pw = _conv_padding(s.weight, node, (kh, kw))
    c, h, w = s.src_shape if len(s.src_shape) == 3 else (s.in_shape[0], s.in_shape[1] * py, s.in_shape[2] * px)
    return {"in_height": h, "in_width": w, "stride_x": sx, "stride_y": sy, "pool_x": px, "pool_y": py,
            "pad_top": ph, "pad_bottom": ph, "pad_left": pw, "pad_right": pw}


def _chip_model(graph, name, syns_in) -> str:
    """The kind of a foreign neuron node, as its codec chooses (``conv``: a Conv2d feeds it)."""
    node = graph.nodes[name]
    conv = any(isinstance(graph.nodes[s.weight], nir.Conv2d) for s in syns_in)
    codec, where = _reader(name, node)
    return codec.model_of(type(node).__name__, conv, where)


def _input_model() -> str:
    """The kind of a foreign ``Input`` node: the first registered input kind (``spike_list``)."""
    names = kinds.input_names()
    if not names:
        raise ValueError("no input kind is registered; a NIR Input node has no population kind to become")
    return names[0]


def _convert_qnet(graph, syns, outputs, cfg: _Settings) -> qnet.Network:
    order = _order(graph, syns)
    into: dict = {}
    for s in syns:
        into.setdefault(s.target, []).append(s)
    pops, scales, net = {}, {}, qnet.Network()
    input_model = _input_model()
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            pops[name] = qnet.Population(math.prod(_source_shape(name, node)), input_model, name=name, record=[])
            continue
        syns_in = into.get(name, [])
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
    report = []
    rank = {n: i for i, n in enumerate(order)}
    for s in sorted(syns, key=lambda s: (rank[s.target], rank[s.source], s.weight)):
        pre, post = pops[s.source], pops[s.target]
        w_scale, limit = scales[s.target]
        node = graph.nodes[s.weight]
        where = f"{_kind(node)} node {s.weight!r} ({s.source!r} -> {s.target!r})"
        w = np.asarray(node.weight)  # as stored (float32 from a file): no float64 copy kept
        q, clipped = _integer_weights(w, w_scale, limit, cfg, where)  # the node's own weights, for the report
        report.append(_quantization(s.weight, s, w, q, w_scale, limit, clipped))
        if isinstance(node, nir.Conv2d):
            net.add(qnet.Conv2DProjection(pre, post, np.swapaxes(q, 0, 1), _conv_params(graph, s), spec=cfg.spec))
        else:
            m = q.T if s.pool == (1, 1) else _integer_weights(_dense_matrix(graph, s), w_scale, limit, cfg, where)[0]
            i, j = np.nonzero(m)
            net.add(qnet.Projection(pre, post, np.stack([i, j, m[i, j], np.zeros_like(i)], axis=1), spec=cfg.spec))
    net.nir_weight_report = tuple(report)
    return net


def _convert_model(graph, syns, cfg: _Settings):
    """A float ``layers.SNN`` (float units, ``w_scale = 1``) of a chain graph."""
    from flax import nnx

    from s2jax import layers as L

    order = _order(graph, syns)
    inputs = [n for n in order if isinstance(graph.nodes[n], nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"output='model' needs exactly one Input node, the graph has {inputs}")
    by_source: dict = {}
    by_target: dict = {}
    for s in syns:
        by_source.setdefault(s.source, []).append(s)
        by_target.setdefault(s.target, []).append(s)
    chain, prev, on_chain = [], inputs[0], set()
    while True:
        out = by_source.get(prev, [])
        if not out:
            break
        if len(out) > 1:
            raise ValueError(f"output='model' builds a layer stack, but node {prev!r} feeds "
                             f"{[s.target for s in out]}; use output='qnet' for general graphs")
        s = out[0]
        into = by_target.get(s.target, [])
        if len(into) > 1 or s.target in on_chain:
            raise ValueError(f"output='model': node {s.target!r} has {len(into)} inputs or closes a loop; "
                             f"a layers.SNN is a feed-forward chain (use output='qnet')")
        chain.append(s)
        on_chain.add(s.target)
        prev = s.target
    stray = [n for n in order if n not in inputs and n not in on_chain]
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
