"""The MAC-array layer kinds ``mla_dense`` and ``mla_conv2d``: int8 layers with power-of-two
requantization (:mod:`s2jax.hwmodel.mla` has the arithmetic), nodes of the hand-off format.

``qnet.Layer("mla_dense", {"w": (O, K) int8, "bias": (O,) int32}, settings={"shift": 7, "relu": True})``
(setting ``in_shape``: the shape of its input when that is not ``(K,)``, e.g. a conv's ``[C, H, W]``,
read flattened in C, H, W order);
``mla_conv2d`` takes ``w`` ``(O, C, kH, kW)`` int8 and the settings ``in_shape`` ``[C, H, W]``,
``stride`` ``[sy, sx]``, ``padding`` ``[[top, bottom], [left, right]]``. Settings of both: ``shift``
(requantization, in [0, 31]), ``relu``, ``out_range`` ``[lo, hi]`` (int8 by default) and
``signed_input`` (int8 inputs, else uint8). Stateless: every tick maps that tick's input.

Design rule ``mac_accumulator``: the largest ``|accumulator|`` of any output, ``sum_k |w[o, k]| *
x_max + |bias[o]|`` (``x_max`` 128 for int8 inputs, 255 for uint8), must fit the signed
``ChipSpec.mla_accumulator_bits`` accumulator; :func:`conv_accumulator_bound` is the same bound for
the spiking conv projections (pooled spike counts as inputs). Cost: ``O * K`` MACs per tick
(dense), ``O * H_out * W_out * C * kH * kW`` (conv). SRAM (an estimate): per dense output unit its
weight row, bias and output byte; a conv's whole kernel and bias on every PE it uses, plus one
byte per output value.
"""

from __future__ import annotations

import numpy as np
from jax import numpy as jnp

from s2jax.kinds.base import LayerKind, register

__all__ = ["DENSE", "CONV2D", "accumulator_bound", "conv_accumulator_bound", "output_dtype"]

_COMMON = {"shift": 0, "relu": False, "out_range": [-128, 127], "signed_input": True}


def output_dtype(lo: int, hi: int):
    """The narrowest integer dtype that holds [lo, hi]: what a layer of that output range gives."""
    for dt in (np.int8, np.uint8, np.int16, np.uint16):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int32)


def accumulator_bound(w, x_max: int, bias=None) -> int:
    """The largest ``|accumulator|`` of any output of an int8 layer: ``max_o sum_k |w[o, k]| * x_max +
    |bias[o]|`` (``w`` ``(O, ...)``)."""
    w = np.abs(np.asarray(w, np.int64)).reshape(len(w), -1) if np.size(w) else np.zeros((0, 1), np.int64)
    total = w.sum(axis=1) * int(x_max)
    if bias is not None:
        total = total + np.abs(np.asarray(bias, np.int64))
    return int(total.max(initial=0))


def conv_accumulator_bound(proj) -> int:
    """``C_in * kH * kW * pool_y * pool_x * max|w|``: the largest ``|accumulator|`` of a spiking conv
    projection (``qnet.Conv2DProjection``; its inputs are pooled spike counts)."""
    c_in, _, kh, kw = proj.weights.shape
    cp = proj.conv_params
    w_max = int(np.abs(np.asarray(proj.weights, np.int64)).max(initial=0))
    return c_in * kh * kw * cp["pool_x"] * cp["pool_y"] * w_max


def _int(settings, key, lo, hi):
    v = settings[key]
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"MAC-array setting {key!r} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _pair(settings, key, lo):
    v = settings[key]
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(a, int) and not isinstance(a, bool)
                                                               and a >= lo for a in v)):
        raise ValueError(f"MAC-array setting {key!r} must be two integers >= {lo}, got {v!r}")
    return tuple(v)


def _common(arrays, settings, ndim):
    w = arrays.get("w")
    if w is None or w.dtype != np.int8 or w.ndim != ndim or 0 in w.shape:
        raise ValueError(f"a MAC-array layer needs 'w' int8 with {ndim} non-empty axes, got "
                         f"{None if w is None else (w.dtype.name, w.shape)}")
    b = arrays.get("bias")
    if b is not None and (b.dtype != np.int32 or b.shape != (w.shape[0],)):
        raise ValueError(f"MAC-array 'bias' must be int32 of shape ({w.shape[0]},), got {b.dtype.name} {b.shape}")
    extra = sorted(set(arrays) - {"w", "bias"})
    if extra:
        raise ValueError(f"MAC-array layer: unknown arrays {extra}; known: ['w', 'bias']")
    _int(settings, "shift", 0, 31)
    out = settings["out_range"]
    if not (isinstance(out, (list, tuple)) and len(out) == 2 and all(isinstance(a, int) and not isinstance(a, bool)
                                                                   for a in out) and -(2**31) <= out[0] <= out[1] < 2**31):
        raise ValueError(f"MAC-array setting 'out_range' must be [lo, hi] with lo <= hi in int32, got "
                         f"{settings['out_range']!r}")
    for key in ("relu", "signed_input"):
        if not isinstance(settings[key], bool):
            raise ValueError(f"MAC-array setting {key!r} must be true or false, got {settings[key]!r}")


def _dense_shape(arrays, settings):
    _common(arrays, settings, 2)
    o, k = arrays["w"].shape
    shape = settings["in_shape"]
    if shape is None:
        return (k,), (o,), "fixed"
    if not (isinstance(shape, (list, tuple)) and shape
            and all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in shape)):
        raise ValueError(f"mla_dense setting 'in_shape' must be null or a list of positive integers, got {shape!r}")
    if int(np.prod(shape)) != k:
        raise ValueError(f"mla_dense: 'in_shape' {list(shape)} holds {int(np.prod(shape))} values, the weights take {k}")
    return tuple(shape), (o,), "fixed"


def _conv_geometry(arrays, settings):
    o, c, kh, kw = arrays["w"].shape
    shape = settings["in_shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in shape)):
        raise ValueError(f"mla_conv2d setting 'in_shape' must be [C, H, W] of positive integers, got {shape!r}")
    if shape[0] != c:
        raise ValueError(f"mla_conv2d: 'in_shape' has {shape[0]} channels, the kernel {c}")
    sy, sx = _pair(settings, "stride", 1)
    pad = settings["padding"]
    if not (isinstance(pad, (list, tuple)) and len(pad) == 2):
        raise ValueError(f"mla_conv2d setting 'padding' must be [[top, bottom], [left, right]], got {pad!r}")
    (pt, pb), (pl, pr) = (_pair({"padding": p}, "padding", 0) for p in pad)
    h_out = (shape[1] + pt + pb - kh) // sy + 1
    w_out = (shape[2] + pl + pr - kw) // sx + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"mla_conv2d: a {kh}x{kw} kernel does not fit the padded {shape[1]}x{shape[2]} input")
    return tuple(shape), (o, h_out, w_out)


def _conv_shape(arrays, settings):
    _common(arrays, settings, 4)
    shape_in, shape_out = _conv_geometry(arrays, settings)
    return shape_in, shape_out, "fixed"


def _input_dtype_of(settings):
    return np.int8 if settings["signed_input"] else np.uint8


def _apply(arrays, settings, x, conv: bool, rounding):
    from s2jax.hwmodel import mla  # the arithmetic; imported here, as the chip model imports the kinds

    kw = dict(shift=settings["shift"], rounding=rounding, relu=settings["relu"],
              out_range=tuple(settings["out_range"]))
    if conv:
        return mla.conv2d(x[None], arrays["w"], arrays.get("bias"), stride=tuple(settings["stride"]),
                          padding=tuple(map(tuple, settings["padding"])), **kw)[0]
    return mla.dense(x.reshape(-1), arrays["w"], arrays.get("bias"), **kw)  # a (C, H, W) input, flattened


def _step(conv):
    def step(arrays, settings, state, x, num):  # the chip's fixed numerics carry the spec's shift rounding
        return state, _apply(arrays, settings, x, conv, num.mla_shift_rounding)
    return step


def _rules(layer, spec):
    limit = 2 ** (spec.mla_accumulator_bits - 1) - 1
    x_max = 128 if layer.settings["signed_input"] else 255
    acc = accumulator_bound(layer.arrays["w"], x_max, layer.arrays.get("bias"))
    if acc <= limit:
        return []
    return [("mac_accumulator", acc, limit, f"{layer.kind.name} layer {layer.name!r}: accumulator bound "
             f"sum|w| * {x_max} + |bias| = {acc:,} exceeds the {spec.mla_accumulator_bits}-bit MAC accumulator "
             f"({limit:,})")]


def _dense_unit_bytes(arrays, settings, spec):
    return int(arrays["w"].shape[1]) + 4 + 1  # one output unit's weight row, its int32 bias, its output


def _conv_pe_bytes(arrays, settings, spec):
    return int(arrays["w"].size) + 4 * int(arrays["w"].shape[0])  # the whole kernel and bias on every PE


def _dense_macs(arrays, settings):
    return int(arrays["w"].size)


def _conv_macs(arrays, settings):
    _, (o, h, w) = _conv_geometry(arrays, settings)
    return int(h * w * arrays["w"].size)


def _kind(name, doc, settings, shape, conv, macs, unit_bytes, pe_bytes):
    return LayerKind(name=name, doc=doc, arrays={"w": "int8 weights", "bias": "int32 bias (optional)"},
                     settings=settings, shape=shape, input_dtype=lambda settings, profile: _input_dtype_of(settings),
                     output_dtype=lambda settings, profile: output_dtype(*settings["out_range"]),
                     init_state=lambda arrays, settings, num: jnp.zeros((), jnp.int32), step=_step(conv),
                     events=lambda y: y != 0, macs=macs, rules=_rules, unit_bytes=unit_bytes, pe_bytes=pe_bytes,
                     atoms_per_core=2**20)  # outputs per PE: bounded by the SRAM bytes, not a count


DENSE = register(_kind("mla_dense", "int8 dense layer on the MAC array (requantize, optional ReLU)",
                       {**_COMMON, "in_shape": None},
                       _dense_shape, False, _dense_macs, _dense_unit_bytes, lambda a, s, spec: 0))
CONV2D = register(_kind("mla_conv2d", "int8 conv layer on the MAC array (NCHW, OIHW kernels)",
                        {**_COMMON, "in_shape": None, "stride": [1, 1], "padding": [[0, 0], [0, 0]]},
                        _conv_shape, True, _conv_macs, lambda a, s, spec: 1, _conv_pe_bytes))
