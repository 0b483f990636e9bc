"""Lowering a Flax NNX MLP or CNN to a list of MAC-array operations (:class:`Op`).

:func:`lower` walks an ``nnx.Sequential`` (or a list) of

- ``nnx.Linear`` -> a ``"dense"`` op, kernel ``(K, O)`` stored as ``(O, K)``;
- ``nnx.Conv`` (2-D, no dilation, no groups, no mask) -> a ``"conv2d"`` op, kernel
  ``(kH, kW, C, O)`` (Flax, NHWC) stored as ``(O, C, kH, kW)`` (the chip, NCHW / OIHW); stride and
  padding ``"VALID"``, ``"SAME"`` (Flax's: the extra row or column at the bottom / right), an int,
  per-axis ints or ``[(top, bottom), (left, right)]`` pairs;
- ``nnx.relu`` (``jax.nn.relu``) -> fused into the op before it;
- :class:`Flatten` -> nothing: a dense op after a conv reads its ``[C, H, W]`` output flattened in
  C, H, W order, which is what :class:`Flatten` does to the float model's NHWC activations;
- :class:`MaxPool` -> a ``"maxpool"`` op (the ``arm_maxpool`` layer kind: no padding, windows that
  do not fit are dropped, as ``nnx.max_pool`` with ``"VALID"``).

Anything else raises a ``ValueError`` naming the module and its position.

Layouts: the Flax model is fed NHWC (``(N, H, W, C)``) in float; the chip and every function of
this package past :func:`lower` use NCHW, one sample ``(C, H, W)`` (an MLP: ``(K,)``).
:func:`to_chip_layout` converts a batch.

Not done yet: average pooling, residual adds, attention, layer norm, softmax, GELU, BatchNorm folding,
dropout (refused, not skipped), ONNX import, scheduling and export.

Example::

    >>> from flax import nnx
    >>> from s2jax.dnn import Flatten, lower
    >>> rngs = nnx.Rngs(0)
    >>> model = nnx.Sequential(nnx.Conv(1, 4, (3, 3), rngs=rngs), nnx.relu, Flatten(),
    ...                        nnx.Linear(4 * 6 * 6, 2, rngs=rngs))
    >>> [(op.kind, op.in_shape, op.out_shape, op.relu) for op in lower(model, (1, 6, 6))]
    [('conv2d', (1, 6, 6), (4, 6, 6), True), ('dense', (4, 6, 6), (2,), False)]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

__all__ = ["Op", "Flatten", "MaxPool", "lower", "float_forward", "to_chip_layout"]


class Op(NamedTuple):
    """One MAC-array operation in float: ``y = relu?(W x + bias)``.

    ``kind``: ``"dense"`` (``w`` ``(O, K)``) or ``"conv2d"`` (``w`` ``(O, C, kH, kW)``, NCHW
    cross-correlation); ``bias`` ``(O,)`` float32 (zeros for a module without bias); ``stride``
    ``(sy, sx)`` and ``padding`` ``((top, bottom), (left, right))`` (a dense op: ``(1, 1)`` and
    zeros); ``in_shape`` / ``out_shape`` of one sample (a dense op after a conv reads
    ``(C, H, W)`` flattened); ``source``: the module it came from, e.g. ``"layers[0] (Conv)"``;
    ``window``: the pooling window of a ``"maxpool"`` op (which has empty ``w`` and ``bias``).
    """

    kind: str
    w: np.ndarray
    bias: np.ndarray
    relu: bool
    stride: tuple
    padding: tuple
    in_shape: tuple
    out_shape: tuple
    source: str
    window: tuple = (1, 1)


class MaxPool(nnx.Module):
    """2-D max pooling of a Flax NHWC batch, ``window`` ``(kH, kW)``, ``strides`` (default: the
    window), no padding; the marker :func:`lower` turns into an ``arm_maxpool`` layer."""

    def __init__(self, window=(2, 2), strides=None):
        self.window = tuple(window)
        self.strides = tuple(strides) if strides is not None else self.window

    def __call__(self, x):
        return nnx.max_pool(x, self.window, self.strides, "VALID")


class Flatten(nnx.Module):
    """Flatten a batch in the chip's C, H, W order: ``(N, H, W, C)`` (Flax's NHWC) is read as
    ``(N, C, H, W)`` and reshaped to ``(N, C * H * W)``; ``(N, K)`` stays as it is. The marker
    :func:`lower` recognises."""

    def __call__(self, x):
        if x.ndim == 4:
            x = jnp.transpose(x, (0, 3, 1, 2))
        return x.reshape(x.shape[0], -1)


def to_chip_layout(x):
    """A batch in the Flax model's layout to the chip's: ``(N, H, W, C)`` -> ``(N, C, H, W)``;
    ``(N, K)`` unchanged."""
    x = np.asarray(x)
    return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def _pair(v, what, where):
    v = (v, v) if isinstance(v, int) else tuple(v)
    if len(v) != 2 or not all(isinstance(a, (int, np.integer)) for a in v):
        raise ValueError(f"lower: {where}: {what} must be an int or two ints (2-D conv), got {v!r}")
    return tuple(int(a) for a in v)


def _padding(pad, hw, kernel, stride, where):
    if isinstance(pad, str):
        if pad.upper() not in ("VALID", "SAME"):
            raise ValueError(f"lower: {where}: padding {pad!r} is not supported (VALID, SAME or explicit pairs)")
        return tuple(tuple(int(a) for a in p) for p in lax.padtype_to_pads(hw, kernel, stride, pad.upper()))
    if isinstance(pad, int):
        return ((pad, pad), (pad, pad))
    pad = tuple(pad)
    if len(pad) != 2:
        raise ValueError(f"lower: {where}: padding must name two axes, got {pad!r}")
    out = tuple((p, p) if isinstance(p, int) else tuple(p) for p in pad)
    if not all(len(p) == 2 and all(isinstance(a, int) and a >= 0 for a in p) for p in out):
        raise ValueError(f"lower: {where}: padding must be non-negative ints or (low, high) pairs, got {pad!r}")
    return out


def _value(var):
    return np.asarray(var[...], np.float32)


def _dense(m, shape, flat, where):
    k = int(np.prod(shape))
    if len(shape) != 1 and not flat:
        raise ValueError(f"lower: {where}: nnx.Linear reads a {list(shape)} input; put s2jax.dnn.Flatten() "
                         f"before it (a Linear over the channel axis alone is not supported)")
    if m.in_features != k:
        raise ValueError(f"lower: {where}: nnx.Linear takes {m.in_features} features, its input has {k}")
    w = _value(m.kernel).T
    b = _value(m.bias) if m.bias is not None and m.use_bias else np.zeros(m.out_features, np.float32)
    return Op("dense", w, b, False, (1, 1), ((0, 0), (0, 0)), tuple(shape), (m.out_features,), where)


def _conv(m, shape, where):
    kernel = _value(m.kernel)
    if kernel.ndim != 4:
        raise ValueError(f"lower: {where}: only 2-D nnx.Conv is supported, got a kernel of shape {kernel.shape}")
    for attr in ("kernel_dilation", "input_dilation"):
        if _pair(getattr(m, attr) or 1, attr, where) != (1, 1):
            raise ValueError(f"lower: {where}: nnx.Conv with {attr}={getattr(m, attr)!r} is not supported")
    if m.feature_group_count != 1 or m.mask is not None:
        raise ValueError(f"lower: {where}: grouped or masked nnx.Conv is not supported")
    if len(shape) != 3 or shape[0] != m.in_features:
        raise ValueError(f"lower: {where}: nnx.Conv takes [{m.in_features}, H, W] inputs, got {list(shape)}")
    kh, kw = kernel.shape[:2]
    stride = _pair(m.strides or 1, "strides", where)
    pad = _padding(m.padding, shape[1:], (kh, kw), stride, where)
    h = (shape[1] + sum(pad[0]) - kh) // stride[0] + 1
    w = (shape[2] + sum(pad[1]) - kw) // stride[1] + 1
    if h < 1 or w < 1:
        raise ValueError(f"lower: {where}: a {kh}x{kw} kernel does not fit the padded {shape[1]}x{shape[2]} input")
    b = _value(m.bias) if m.bias is not None and m.use_bias else np.zeros(m.out_features, np.float32)
    w_oihw = np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))
    return Op("conv2d", w_oihw, b, False, stride, pad, tuple(shape), (m.out_features, h, w), where)


def _maxpool(m, shape, where):
    if len(shape) != 3:
        raise ValueError(f"lower: {where}: MaxPool takes [C, H, W] inputs, got {list(shape)}")
    (kh, kw), (sy, sx) = _pair(m.window, "window", where), _pair(m.strides, "strides", where)
    if kh > shape[1] or kw > shape[2]:
        raise ValueError(f"lower: {where}: a {kh}x{kw} window does not fit the {shape[1]}x{shape[2]} input")
    out = (shape[0], (shape[1] - kh) // sy + 1, (shape[2] - kw) // sx + 1)
    empty = np.zeros(0, np.float32)
    return Op("maxpool", empty, empty, False, (sy, sx), ((0, 0), (0, 0)), tuple(shape), out, where, (kh, kw))


def lower(model, input_shape) -> list[Op]:
    """The :class:`Op` list of ``model`` (an ``nnx.Sequential`` or a list of modules) for inputs of
    one sample of shape ``input_shape``: ``(C, H, W)`` (NCHW) for a CNN, ``(K,)`` for an MLP."""
    modules = list(model.layers) if isinstance(model, nnx.Sequential) else list(model)
    label = "layers" if isinstance(model, nnx.Sequential) else "model"
    shape, flat, ops = tuple(int(a) for a in input_shape), False, []
    for i, m in enumerate(modules):
        where = f"{label}[{i}] ({getattr(m, '__name__', type(m).__name__)})"
        if isinstance(m, nnx.Linear):
            ops.append(_dense(m, shape, flat, where))
        elif isinstance(m, nnx.Conv):
            ops.append(_conv(m, shape, where))
        elif m is jax.nn.relu:
            if not ops:
                raise ValueError(f"lower: {where}: a ReLU is fused into the layer before it; there is none")
            ops[-1] = ops[-1]._replace(relu=True)
            continue
        elif isinstance(m, Flatten):
            flat = True
            continue
        elif isinstance(m, MaxPool):
            ops.append(_maxpool(m, shape, where))
        else:
            raise ValueError(f"lower: {where} is not supported; supported: nnx.Linear, nnx.Conv, nnx.relu "
                             f"(jax.nn.relu), s2jax.dnn.Flatten, s2jax.dnn.MaxPool")
        shape, flat = ops[-1].out_shape, False
    if not ops:
        raise ValueError("lower: the model has no nnx.Linear or nnx.Conv layer")
    return ops


def _apply(op: Op, x):
    if op.kind == "maxpool":
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + op.window, (1, 1) + op.stride, "VALID")
    if op.kind == "dense":
        y = jnp.dot(x.reshape(x.shape[0], -1), jnp.asarray(op.w).T, precision=lax.Precision.HIGHEST)
    else:
        y = lax.conv_general_dilated(x, jnp.asarray(op.w), op.stride, op.padding,
                                     precision=lax.Precision.HIGHEST)
    y = y + jnp.asarray(op.bias).reshape((-1,) + (1,) * (y.ndim - 2))
    return jax.nn.relu(y) if op.relu else y


def float_forward(ops, x, *, every: bool = False):
    """The float32 forward pass of ``ops`` on a batch ``x`` ``(N, *in_shape)`` in the chip layout:
    the last op's outputs, or (``every``) the list of every op's outputs."""
    outs, y = [], jnp.asarray(x, jnp.float32)
    for op in ops:
        y = _apply(op, y)
        outs.append(y)
    return outs if every else y
