"""Calibration, ``qat`` (inject chip numerics) and ``quantize`` (emit a ``qnet.Network``).

One source of truth: the integer weights and the chip-unit parameters that ``quantize`` writes
into the network are computed by the very functions the QAT forward pass uses
(``WeightQuantizer.quantize`` and ``LIF.chip_values``), so the chip model run on the result
equals the QAT forward pass bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from flax import nnx

from s2jax import qnet
from s2jax.numerics import numerics_for
from s2jax.layers.egru import egru_cells
from s2jax.layers.synapses import Conv, Linear
from s2jax.quant.egru import egru_layers, qat_egru_cells, quantize_inputs
from s2jax.quant.quantizers import QuantConfig, WeightQuantizer

__all__ = ["calibrate", "search_scales", "ScaleSearch", "qat", "quantize", "is_quantized"]


def _kernel_stat(w: np.ndarray, config: QuantConfig, channel_axis: int) -> np.ndarray:
    a = np.abs(w)
    axes = tuple(i for i in range(a.ndim) if i != channel_axis) if config.per_channel else None
    if config.calibration == "absmax":
        stat = a.max(axis=axes)
    else:
        stat = np.percentile(a, config.percentile, axis=axes)
    return np.asarray(stat, np.float64)


def calibrate(model, config: QuantConfig | None = None, percentile: float | None = None) -> list[np.ndarray]:
    """Weight scales per layer: ``w_max / stat(|W|)`` (per layer, or per output channel).

    ``stat`` is the maximum ("absmax") or the ``percentile`` of ``|W|`` ("percentile"). A layer (or
    channel) whose weights are all zero gets scale 1. With ``power_of_two`` scales are rounded
    down to a power of two. Returns float32 arrays (scalars, or one value per output channel).
    """
    config = config or QuantConfig()
    if percentile is not None:
        config = dataclasses.replace(config, calibration="percentile", percentile=percentile)
    if config.calibration == "search":
        raise ValueError("calibration='search' needs data: call search_scales(model, calibration_inputs, config), "
                         "or pass calibration_inputs to qat / quantize")
    scales = []
    for syn, neuron in zip(model.synapses, model.neurons):
        limit = config.weight_limit(config.chip_model(syn, neuron))
        w = np.asarray(syn.kernel[...], np.float64)
        stat = _kernel_stat(w, config, channel_axis=1 if isinstance(syn, Conv) else w.ndim - 1)
        s = np.where(stat > 0, limit / np.where(stat > 0, stat, 1.0), 1.0)
        if config.power_of_two:
            s = 2.0 ** np.floor(np.log2(s))
        scales.append(np.asarray(s, np.float32))
    return scales


class ScaleSearch(NamedTuple):
    """Result of :func:`search_scales`: ``scales`` (as :func:`calibrate` returns them), the
    ``percentiles`` picked per layer, and ``errors[layer][i]``: the mismatch with the float model
    of ``config.search_percentiles[i]`` at that layer (earlier layers at their picks, later ones
    at absmax)."""

    scales: list
    percentiles: list
    errors: np.ndarray


def _mismatch(neuron, f_spikes, f_v, q_spikes, q_v, scale) -> float:
    """Spiking layer: mean squared difference of per-neuron spike rates over the ticks.
    Readout: mean squared difference of the membranes, the quantized one in float units."""
    if neuron.readout:
        d = np.asarray(q_v, np.float64) / np.asarray(scale, np.float64) - np.asarray(f_v, np.float64)
        return float(np.mean(d**2))
    d = np.asarray(q_spikes, np.float64).mean(axis=1) - np.asarray(f_spikes, np.float64).mean(axis=1)
    return float(np.mean(d**2))


def search_scales(model, calibration_inputs, config: QuantConfig | None = None) -> ScaleSearch:
    """Post-training threshold scaling searched on data, layer by layer (greedy).

    For layer k (in order) every percentile p of ``config.search_percentiles`` gives a weight
    scale ``w_max / percentile_p(|W_k|)``; the threshold, bias and reset value scale with it, so
    only the rounding and the clipped outliers differ from the float model. The quantized model
    (float32 chip numerics) runs on ``calibration_inputs`` (``(B, T, ...)``) and the p whose
    layer-k activity is closest to the float model's (:func:`_mismatch`) is kept; ties go to the
    larger percentile (less clipping). Costs ``layers x len(search_percentiles)`` forward passes.
    """
    config = config or QuantConfig()
    if not model.latency:
        raise ValueError("search_scales needs SNN(latency=True): the chip adds one tick of latency per layer")
    if calibration_inputs is None:
        raise ValueError("search_scales needs calibration_inputs of shape (B, T, ...)")
    x = jnp.asarray(calibration_inputs, jnp.float32)
    search_config = dataclasses.replace(config, calibration="absmax", profile="float32")
    forward = nnx.jit(lambda m, x: m(x))
    reference = forward(model, x)
    percentiles = sorted(config.search_percentiles, reverse=True)
    per_p = {p: calibrate(model, search_config, percentile=p) for p in percentiles}
    scales = calibrate(model, search_config)
    picked, errors = [], np.zeros((len(scales), len(config.search_percentiles)))
    for k, neuron in enumerate(model.neurons):
        best = None
        for p in percentiles:
            trial = scales[:k] + [per_p[p][k]] + scales[k + 1:]
            out = forward(qat(model, search_config, scales=trial), x)
            scale = per_p[p][k]
            if scale.ndim:  # per channel: channels lead the neuron shape (Conv: C, H, W)
                scale = scale.reshape((-1,) + (1,) * (len(neuron.shape) - 1))
            err = _mismatch(neuron, reference.spikes[k], reference.voltages[k], out.spikes[k], out.voltages[k],
                            scale)
            errors[k, config.search_percentiles.index(p)] = err
            if best is None or err < best[0]:
                best = (err, p)
        scales[k] = per_p[best[1]][k]
        picked.append(best[1])
    return ScaleSearch(scales, picked, errors)


def is_quantized(model) -> bool:
    """Whether ``qat`` was applied: every synapse has a quantizer (EGRU models: every cell has chip numerics)."""
    cells = egru_cells(model)
    if cells:
        return all(cell.numerics.name != "float" for cell in cells)
    return all(syn.quantizer is not None for syn in model.synapses)


def _numerics(config: QuantConfig, surrogate):
    return numerics_for(config.profile, config.spec, surrogate)


def qat(model, config: QuantConfig | None = None, scales=None, calibration_inputs=None):
    """A copy of ``model`` whose forward pass is the chip's arithmetic (parameters unchanged).

    A model of EGRU cells (``layers.EGRU``, ``EGRUStack``) gets the chip's EGRU numerics of
    ``config.profile`` under ``config.spec`` (integer: a float shadow carries the gradient;
    :func:`s2jax.quant.egru.qat_egru_cells`); the weight-scale options do not apply to it.

    Weights pass through straight-through integer quantizers with the ``scales`` of
    :func:`calibrate` (computed here when not given; with ``config.calibration == "search"``
    from ``calibration_inputs`` by :func:`search_scales`); neurons switch to the chip numerics of
    ``config.profile`` in chip units. Train the result with any optax optimizer to fine-tune
    against the chip; :func:`quantize` turns it into the network the chip runs.
    """
    config = config or QuantConfig()
    if egru_cells(model):
        return qat_egru_cells(model, config.profile, config.spec)
    if not model.latency:
        raise ValueError("qat needs SNN(latency=True): the chip adds one tick of latency per layer")
    if scales is None and config.calibration == "search":
        scales = search_scales(model, calibration_inputs, config).scales
    scales = calibrate(model, config) if scales is None else [np.asarray(s, np.float32) for s in scales]
    if len(scales) != len(model.synapses):
        raise ValueError(f"got {len(scales)} scales for {len(model.synapses)} layers")
    q = nnx.clone(model)
    for syn, neuron, s in zip(q.synapses, q.neurons, scales):
        limit = config.weight_limit(config.chip_model(syn, neuron))
        per_channel = s.ndim == 1
        if isinstance(syn, Conv):
            syn_shape, neuron_shape = ((1, -1, 1, 1), (-1, 1, 1)) if per_channel else ((), ())
        else:
            syn_shape, neuron_shape = ((-1,), (-1,)) if per_channel else ((), ())
        syn.quantizer = WeightQuantizer(-limit, limit, config.spec.fixed_param_rounding)
        syn.quant_scale = nnx.Variable(jnp.asarray(s, jnp.float32).reshape(syn_shape))
        neuron.quant_scale = nnx.Variable(jnp.asarray(s, jnp.float32).reshape(neuron_shape))
        neuron.numerics = _numerics(config, neuron.surrogate)
        neuron.readout_threshold = config.spec.readout_threshold
        if hasattr(neuron, "current_order"):
            neuron.current_order = config.spec.cuba_current_order
        if config.adaptive_threshold and not neuron.readout:
            shape = neuron_shape if per_channel else ()
            neuron.threshold_scale = nnx.Param(jnp.ones(np.shape(s), jnp.float32).reshape(shape))
    q.config = config
    return q


def _egru_network(model, config, calibration_inputs, name) -> qnet.Network:
    config = config or QuantConfig()
    bound = 32767
    if calibration_inputs is not None:
        bound = int(np.abs(np.asarray(quantize_inputs(calibration_inputs, config.spec), np.int64)).max(initial=0))
    layers = egru_layers(model, config.profile, spec=config.spec, input_bound=bound)
    return qnet.egru_network(layers, name, input_bound=bound)


def _input_shape(model, calibration_inputs, input_shape):
    if input_shape is not None:
        return tuple(input_shape)
    if calibration_inputs is not None:
        return tuple(np.shape(calibration_inputs)[2:])
    first = model.synapses[0]
    if isinstance(first, Linear):
        return (first.in_features,)
    raise ValueError("a model starting with a Conv layer needs input_shape=(C, H, W) or calibration_inputs")


def quantize(model, config: QuantConfig | None = None, calibration_inputs=None, *, input_shape=None,
             name: str = "s2jax") -> qnet.Network:
    """The ``qnet.Network`` the chip runs for ``model`` (QAT'ed, or float: then PTQ with ``config``).

    Populations: ``input`` (spike_list, the flattened C, H, W input) and ``layer0``, ``layer1``, ...
    recording spikes and voltages. Run it with ``hwmodel.run(net, {"input": spikes})``.
    ``calibration_inputs`` (``(B, T, ...)``) give the input shape and, with
    ``config.calibration == "search"``, the data of the threshold-scaling search
    (:func:`search_scales`); otherwise the weight scales come from the weights (:func:`calibrate`).

    A model of EGRU cells becomes a network of ``egru`` layers (``qnet.Layer``: ``egru0``,
    ``egru1``, ...; run it with ``hwmodel.run(net, inputs)``), stored for the cells' QAT profile, or
    ``config.profile`` for a float model; ``calibration_inputs`` (float, ``(B, T, I)``) then bound
    the first layer's inputs for its accumulator check (default: any int16 input).
    """
    if egru_cells(model):
        return _egru_network(model, config, calibration_inputs, name)
    if not is_quantized(model):
        model = qat(model, config, calibration_inputs=calibration_inputs)
    config = getattr(model, "config", None) or config or QuantConfig()
    if not model.latency:
        raise ValueError("quantize needs SNN(latency=True): the chip adds one tick of latency per layer")
    shape = _input_shape(model, calibration_inputs, input_shape)
    net = qnet.Network(name)
    prev = qnet.Population(int(np.prod(shape)), "spike_list", name="input", record=["spikes"])
    net.add(prev)
    for k, (syn, neuron) in enumerate(zip(model.synapses, model.neurons)):
        chip_model = config.chip_model(syn, neuron)
        params = neuron.population_params()
        size = int(np.prod(neuron.shape))
        pop = qnet.Population(size, chip_model, params, name=f"layer{k}", record=["spikes", "v"])
        w = np.asarray(syn.integer_kernel())
        if isinstance(syn, Conv):
            if len(shape) != 3:
                raise ValueError(f"layer {k}: Conv needs a (C, H, W) input, got shape {shape}")
            out_shape = syn.output_shape(shape[1], shape[2])
            if tuple(neuron.shape) != out_shape:
                raise ValueError(f"layer {k}: neuron shape {neuron.shape} != conv output {out_shape}")
            (pt, pb), (pl, pr) = syn.padding
            cp = {"in_height": shape[1], "in_width": shape[2], "stride_y": syn.stride[0], "stride_x": syn.stride[1],
                  "pool_y": syn.pool[0], "pool_x": syn.pool[1], "pad_top": pt, "pad_bottom": pb,
                  "pad_left": pl, "pad_right": pr}
            proj = qnet.Conv2DProjection(prev, pop, w, cp, spec=config.spec)
        else:
            if w.shape[0] != prev.size:
                raise ValueError(f"layer {k}: kernel expects {w.shape[0]} inputs, previous layer has {prev.size}")
            i, j = np.nonzero(w)
            rows = np.stack([i, j, w[i, j], np.zeros_like(i)], axis=1)
            proj = qnet.Projection(prev, pop, rows, spec=config.spec)
        net.add(pop, proj)
        prev, shape = pop, tuple(neuron.shape)
    return net
