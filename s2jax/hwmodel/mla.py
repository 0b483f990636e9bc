"""The int8 MAC array (MLA) path: dense and conv layers with power-of-two requantization.

``SPINNAKER2.md`` section 5, per output ``o``::

    acc = bias[o] + sum_k W[o, k] * x[k]          # int8 x int8 products, exact int32 sum
    y   = round(acc / 2^shift)                    # named rounding (chip: FLOOR, a truncating shift)
    y   = max(y, 0) if relu                       # fused ReLU
    y   = clip(y, lo, hi)                         # the output range of the layer (int8 by default)

The products are accumulated with ``preferred_element_type=int32``, so the sum is exact whatever
order XLA picks, as long as it fits int32; the chip's accumulator is narrower
(``ChipSpec.mla_accumulator_bits``) and the design rules reject layers that could exceed it.
Conv layers are NCHW cross-correlations with OIHW kernels.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from s2jax.fixedpoint import requantize
from s2jax.kinds.mla import output_dtype
from s2jax.spec import SPINNAKER2, Rounding

__all__ = ["dense", "conv2d", "output_dtype"]


def _check_operands(x, w, where):
    for name, a in (("input", x), ("weights", w)):
        if a.dtype not in (jnp.int8, jnp.uint8):
            raise TypeError(f"{where}: {name} must be int8 or uint8 (the MAC array's operands), got {a.dtype}")


def dense(x, w, bias=None, *, shift: int, rounding: Rounding = SPINNAKER2.mla_shift_rounding, relu: bool = False,
          out_range: tuple[int, int] = (-128, 127)):
    """``x``: ``(..., K)`` int8/uint8; ``w``: ``(O, K)`` int8; ``bias``: ``(O,)`` int32 -> ``(..., O)``."""
    x, w = jnp.asarray(x), jnp.asarray(w)
    _check_operands(x, w, "mla.dense")
    acc = lax.dot_general(x, w, (((x.ndim - 1,), (1,)), ((), ())), preferred_element_type=jnp.int32)
    if bias is not None:
        acc = acc + jnp.asarray(bias, jnp.int32)
    y = requantize(acc, shift, rounding, relu=relu, lo=out_range[0], hi=out_range[1])
    return y.astype(output_dtype(*out_range))


def conv2d(x, w, bias=None, *, shift: int, stride=(1, 1), padding=((0, 0), (0, 0)),
           rounding: Rounding = SPINNAKER2.mla_shift_rounding, relu: bool = False, out_range: tuple[int, int] = (-128, 127)):
    """``x``: ``(N, C, H, W)`` int8/uint8; ``w``: ``(O, C, kH, kW)`` int8; ``bias``: ``(O,)`` int32."""
    x, w = jnp.asarray(x), jnp.asarray(w)
    _check_operands(x, w, "mla.conv2d")
    if x.dtype != w.dtype:  # XLA's integer conv wants one operand type: widen losslessly
        x, w = x.astype(jnp.int16), w.astype(jnp.int16)
    acc = lax.conv_general_dilated(x, w, tuple(stride), tuple(map(tuple, padding)),
                                   preferred_element_type=jnp.int32)
    if bias is not None:
        acc = acc + jnp.asarray(bias, jnp.int32)[None, :, None, None]
    y = requantize(acc, shift, rounding, relu=relu, lo=out_range[0], hi=out_range[1])
    return y.astype(output_dtype(*out_range))
