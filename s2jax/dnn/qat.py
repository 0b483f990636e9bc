"""The QAT twin of a quantized MLP or CNN: the chip's integer pipeline forward, float gradients back.

:func:`qat_forward` runs, per layer of a :class:`~s2jax.dnn.Plan`, exactly what the
``mla_dense`` / ``mla_conv2d`` layers of :func:`~s2jax.dnn.build_network` compute on the chip
model: the int8 weights and int32 bias come from the float parameters through
:func:`~s2jax.dnn.to_grid` (the function PTQ uses), and the layer's output is the integer result
of :mod:`s2jax.hwmodel.mla` (int32 accumulation, the shift rounded as
``spec.mla_shift_rounding``, ReLU, saturation). So ``qat_forward(params, x, plan) ==
hwmodel.run(build_network(params, plan), x[:, None])`` bit for bit.

Gradients: every integer carries the gradient of a float *shadow* through
:func:`s2jax.numerics.straight_through`: weights ``w * 2^w_exp``, bias ``b * 2^(in_exp + w_exp)``,
the output ``clip(relu?(acc * 2^-shift), lo, hi)`` with ``acc`` the float dense or conv of the
(integer-valued) inputs and weights. The exponents are fixed by the plan (not learned).

Not done yet: learned exponents, a check under ``jit`` that trained weights still pass the
accumulator rule (:func:`~s2jax.dnn.build_network` checks it when the network is built).

Example::

    >>> import jax, numpy as np
    >>> from flax import nnx
    >>> from s2jax.dnn import params_of, lower, calibrate, qat_forward, quantize_inputs
    >>> model = nnx.Sequential(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    >>> x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    >>> ops = lower(model, (3,))
    >>> plan = calibrate(ops, x)
    >>> qat_forward(params_of(ops), quantize_inputs(x, plan), plan).shape
    (4, 2)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from s2jax.dnn.ptq import Plan, bias_range, to_grid
from s2jax.hwmodel import mla
from s2jax.numerics import straight_through
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["qat_forward", "qat_layer"]


def _ste_grid(v, exp, lo, hi):
    shadow = jnp.asarray(v, jnp.float32) * jnp.float32(2.0**exp)
    return straight_through(to_grid(v, exp, lo, hi), shadow)


def qat_layer(p, lp, x, spec: ChipSpec = SPINNAKER2):
    """One layer (:class:`~s2jax.dnn.LayerPlan` ``lp``, float parameters ``p``) on ``x``
    ``(N, *lp.in_shape)``, float32 holding int8 values; returns ``(N, *lp.out_shape)`` float32
    holding the chip's int8 outputs."""
    if lp.kind == "maxpool":  # exact on integer values; the gradient goes to the maximum, as in float
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + tuple(lp.window), (1, 1) + tuple(lp.stride), "VALID")
    w = _ste_grid(p["w"], lp.w_exp, -128, 127)
    b = _ste_grid(p["bias"], lp.in_exp + lp.w_exp, *bias_range(spec))
    xi, wi, bi = x.astype(jnp.int8), w.astype(jnp.int8), b.astype(jnp.int32)
    kw = dict(shift=lp.shift, rounding=spec.mla_shift_rounding, relu=lp.relu, out_range=tuple(lp.out_range))
    if lp.kind == "dense":
        x2 = x.reshape(x.shape[0], -1)
        y_int = mla.dense(xi.reshape(x2.shape), wi, bi, **kw)
        acc = jnp.dot(x2, w.T) + b
    else:
        y_int = mla.conv2d(xi, wi, bi, stride=lp.stride, padding=lp.padding, **kw)
        acc = lax.conv_general_dilated(x, w, lp.stride, lp.padding) + b[None, :, None, None]
    shadow = acc * jnp.float32(2.0 ** -lp.shift)
    if lp.relu:
        shadow = jax.nn.relu(shadow)
    shadow = jnp.clip(shadow, jnp.float32(lp.out_range[0]), jnp.float32(lp.out_range[1]))
    return straight_through(y_int, shadow)


def qat_forward(params, x, plan: Plan, spec: ChipSpec = SPINNAKER2):
    """The whole network on int8 inputs ``x`` ``(N, *in_shape)`` (:func:`~s2jax.dnn.quantize_inputs`):
    the last layer's int8 outputs as float32, differentiable with respect to ``params``
    (:func:`~s2jax.dnn.params_of`). Multiply by ``2^-plan.output_exp`` for the float values."""
    y = jnp.asarray(x).astype(jnp.float32)
    for p, lp in zip(params, plan.layers, strict=True):
        y = qat_layer(p, lp, y, spec)
    return y
