"""Post-training quantization of a lowered MLP or CNN to ``mla_dense`` / ``mla_conv2d`` layers.

Power-of-two scales only (a value ``v`` is stored as the integer ``q`` with ``v ~ q * 2^-e``; ``e``
is the *exponent*, any integer in [-126, 126]):

- activations (the input and every layer's output) int8, exponent ``a`` from calibration: the
  largest ``a`` with ``p * 2^a <= 127``, ``p`` the ``percentile`` of ``|x|`` over the calibration
  batch (``percentile=100``: the maximum). Values beyond are saturated.
- weights int8, ONE exponent ``w`` per layer (the largest with ``max|W| * 2^w <= 127``): the chip's
  requantization shift is per layer, so per-channel weight exponents would need a per-channel
  shift, which the MAC array does not have.
- bias int32 at exponent ``a + w`` (the accumulator's).
- requantization ``shift = a + w - a'`` to the output exponent ``a'``; a negative shift is avoided
  by coarsening the output (``a' = a + w``, shift 0); a shift over 31 is an error.

Rounding onto a grid: half to even (``jnp.round``), then saturation (:func:`to_grid`), in float32,
so the QAT twin (:mod:`s2jax.dnn.qat`) computes the very same integers.

Output ranges: a layer with a fused ReLU gives signed int8 in [0, 127] (so every layer reads
signed int8 and the 128-based accumulator rule of ``mla_*`` applies unchanged; uint8 [0, 255]
would add one bit of resolution and is not done yet); the last layer keeps int8 [-128, 127], read
back with :func:`dequantize_outputs`.

Checks, each a ``ValueError`` naming the layer, the value and the limit: exponents outside
[-126, 126] (the scale overflows float32), a shift over 31, a bias beyond the accumulator, and the
accumulator bound (``s2jax.kinds.mla.accumulator_bound`` with inputs up to 128) beyond the signed
``spec.mla_accumulator_bits`` accumulator.

Not done yet: MSE calibration, cross-layer equalization, uint8 activations after ReLU,
per-channel scales, saturation counts.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from s2jax import qnet
from s2jax.dnn.lowering import Op, float_forward, lower, to_chip_layout
from s2jax.kinds.mla import accumulator_bound
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["LayerPlan", "Plan", "to_grid", "bias_range", "exponent_for", "params_of", "calibrate", "build_network", "quantize",
           "quantize_inputs", "dequantize_outputs", "MAX_EXPONENT"]

#: The largest ``|exponent|`` of a scale ``2^-e``: beyond it ``2^e`` leaves float32's normal range.
MAX_EXPONENT = 126


class LayerPlan(NamedTuple):
    """The fixed-point format of one layer (hashable: a static argument of ``jax.jit``).

    ``name``: the ``qnet.Layer`` name; ``kind``, ``stride``, ``padding``, ``in_shape``,
    ``out_shape``, ``relu``, ``source`` as in :class:`~s2jax.dnn.Op`; ``w_exp``: the weights'
    exponent; ``in_exp`` / ``out_exp``: the input's and output's; ``shift = in_exp + w_exp -
    out_exp``; ``out_range``: ``(lo, hi)`` of the int8 output.
    """

    name: str
    kind: str
    stride: tuple
    padding: tuple
    in_shape: tuple
    out_shape: tuple
    relu: bool
    w_exp: int
    in_exp: int
    out_exp: int
    shift: int
    out_range: tuple
    source: str
    window: tuple = (1, 1)


class Plan(NamedTuple):
    """The formats of a whole network: ``layers`` (:class:`LayerPlan`), ``input_exp`` and
    ``output_exp`` (the network's int8 input and output: ``x ~ q * 2^-input_exp``)."""

    layers: tuple
    input_exp: int
    output_exp: int


def to_grid(v, exp: int, lo: int, hi: int):
    """``clip(round_half_even(v * 2^exp), lo, hi)`` in float32 (integer values; exact: the scale is
    a power of two)."""
    v = jnp.asarray(v, jnp.float32) * jnp.float32(2.0**exp)
    return jnp.clip(jnp.round(v), jnp.float32(lo), jnp.float32(hi))


def bias_range(spec: ChipSpec = SPINNAKER2) -> tuple[int, int]:
    """The range int32 biases are saturated to: the signed accumulator's, ``+-(2^(bits-1) - 1)``."""
    limit = 2 ** (spec.mla_accumulator_bits - 1) - 1
    return -limit, limit


def exponent_for(m: float, hi: int = 127) -> int:
    """The largest ``e`` with ``m * 2^e <= hi`` (0 when ``m`` is 0)."""
    return math.floor(math.log2(hi / m)) if m > 0 else 0


def params_of(ops) -> list[dict]:
    """The float parameters of ``ops`` in the chip layout: ``[{"w": ..., "bias": ...}, ...]`` (what
    :func:`build_network` and the QAT twin take)."""
    return [{} if op.kind == "maxpool" else {"w": jnp.asarray(op.w), "bias": jnp.asarray(op.bias)} for op in ops]


def _check_exp(e, what, where):
    if abs(e) > MAX_EXPONENT:
        raise ValueError(f"{where}: the {what} scale 2^{-e} overflows float32 (|exponent| {abs(e)} > {MAX_EXPONENT})")
    return e


def calibrate(ops, calibration_inputs, *, input_exp: int | None = None, percentile: float = 100.0) -> Plan:
    """The :class:`Plan` of ``ops`` (:func:`~s2jax.dnn.lower`) from a calibration batch in the chip
    layout ``(N, *in_shape)``; ``input_exp`` fixes the input's exponent instead of calibrating it."""
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    x = np.asarray(calibration_inputs, np.float32)
    outs = [np.asarray(y) for y in float_forward(ops, x, every=True)]
    stat = lambda a: float(np.percentile(np.abs(a), percentile)) if a.size else 0.0  # noqa: E731
    a = _check_exp(exponent_for(stat(x)) if input_exp is None else int(input_exp), "input", "calibrate")
    first, layers = a, []
    in_range = (-128, 127)
    for i, (op, y) in enumerate(zip(ops, outs)):
        name = f"{op.kind}{i}"
        where = f"layer {name!r} ({op.source})"
        if op.kind == "maxpool":  # the maximum keeps the input's scale and range exactly
            layers.append(LayerPlan(name, op.kind, op.stride, op.padding, op.in_shape, op.out_shape, False, 0, a, a,
                                    0, in_range, op.source, op.window))
            continue
        w = _check_exp(exponent_for(float(np.abs(op.w).max(initial=0.0))), "weight", where)
        out = _check_exp(exponent_for(stat(y)), "output", where)
        out = min(out, a + w)  # a negative shift would scale up: coarsen the output instead
        shift = a + w - out
        if shift > 31:
            raise ValueError(f"{where}: requantization shift {shift} (input 2^{-a}, weights 2^{-w}, output "
                             f"2^{-out}) exceeds 31, the largest the MAC array's shift takes")
        layers.append(LayerPlan(name, op.kind, op.stride, op.padding, op.in_shape, op.out_shape, op.relu, w, a, out,
                                shift, (0, 127) if op.relu else (-128, 127), op.source))
        a, in_range = out, layers[-1].out_range
    return Plan(tuple(layers), first, a)


def build_network(params, plan: Plan, *, spec: ChipSpec = SPINNAKER2, name: str = "dnn") -> qnet.Network:
    """The ``qnet.Network`` of ``mla_dense`` / ``mla_conv2d`` layers of float ``params``
    (:func:`params_of`, or QAT-trained ones) in the formats of ``plan``, each layer reading the one
    before; checks the bias range and the accumulator bound (the module docstring)."""
    net, prev = qnet.Network(name), None
    limit = 2 ** (spec.mla_accumulator_bits - 1) - 1
    for p, lp in zip(params, plan.layers, strict=True):
        where = f"layer {lp.name!r} ({lp.source})"
        if lp.kind == "maxpool":
            prev = qnet.Layer("arm_maxpool", {}, settings={"in_shape": list(lp.in_shape), "window": list(lp.window),
                                                           "stride": list(lp.stride)}, pre=prev, name=lp.name)
            net.add(prev)
            continue
        w = np.asarray(to_grid(p["w"], lp.w_exp, -128, 127)).astype(np.int8)
        big = float(np.abs(np.asarray(p["bias"], np.float64)).max(initial=0.0)) * 2.0 ** (lp.in_exp + lp.w_exp)
        if big > limit:
            raise ValueError(f"{where}: bias at scale 2^{-(lp.in_exp + lp.w_exp)} reaches {big:.4g}, beyond the "
                             f"{spec.mla_accumulator_bits}-bit MAC accumulator ({limit:,})")
        b = np.asarray(to_grid(p["bias"], lp.in_exp + lp.w_exp, *bias_range(spec))).astype(np.int32)
        acc = accumulator_bound(w, 128, b)
        if acc > limit:
            raise ValueError(f"{where}: accumulator bound sum|w| * 128 + |bias| = {acc:,} exceeds the "
                             f"{spec.mla_accumulator_bits}-bit MAC accumulator ({limit:,}); use smaller weights or "
                             f"fewer inputs per output")
        settings = {"shift": lp.shift, "relu": lp.relu, "out_range": list(lp.out_range), "signed_input": True,
                    "in_shape": list(lp.in_shape)}
        if lp.kind == "conv2d":
            settings.update(stride=list(lp.stride), padding=[list(p_) for p_ in lp.padding])
        elif len(lp.in_shape) == 1:
            settings["in_shape"] = None
        prev = qnet.Layer(f"mla_{lp.kind}", {"w": w, "bias": b}, settings=settings, pre=prev, name=lp.name)
        net.add(prev)
    return net


def quantize(model, calibration_inputs, *, input_scale_exp: int | None = None, percentile: float = 100.0,
             spec: ChipSpec = SPINNAKER2, name: str = "dnn"):
    """PTQ of a Flax NNX ``model`` (:func:`~s2jax.dnn.lower`'s sources) from ``calibration_inputs``
    in the model's own layout (``(N, H, W, C)`` for a CNN, ``(N, K)`` for an MLP).

    Returns ``(network, plan)``: the ``qnet.Network`` that ``hwmodel.run(network, x)`` runs on
    ``x = quantize_inputs(inputs, plan)[:, None]`` (one tick), and the :class:`Plan` that
    :func:`quantize_inputs`, :func:`dequantize_outputs` and the QAT twin read (a network does not
    store its scales).
    """
    x = to_chip_layout(calibration_inputs)
    ops: list[Op] = lower(model, x.shape[1:])
    plan = calibrate(ops, x, input_exp=input_scale_exp, percentile=percentile)
    return build_network(params_of(ops), plan, spec=spec, name=name), plan


def quantize_inputs(x, plan: Plan):
    """Float inputs in the model's layout -> the chip's int8 inputs ``(N, *in_shape)`` (NCHW):
    ``clip(round_half_even(x * 2^input_exp), -128, 127)``."""
    return np.asarray(to_grid(to_chip_layout(x), plan.input_exp, -128, 127)).astype(np.int8)


def dequantize_outputs(y, plan: Plan):
    """The network's integer outputs as float32: ``y * 2^-output_exp``."""
    return np.asarray(y, np.float32) * np.float32(2.0 ** -plan.output_exp)
