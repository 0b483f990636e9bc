"""Synapse layers: ``Linear`` and ``Conv`` (with the chip's fused sum-pooling before the conv).

Synapses carry no bias: the chip adds a per-neuron constant as the neuron's ``i_offset``, so a
bias lives in the neuron layer (``LIF(..., bias=True)``).

After ``s2jax.quant.qat`` a synapse holds a quantizer: its effective kernel is the integer grid
``round(clip(W * scale, lo, hi))`` (straight-through), the integers the chip stores, as float32.
Spikes times integer weights summed in float32 are exact in any order while the sum stays below
2^24, so the hoisted matmul of a QAT layer equals the chip's int32 synaptic sum exactly.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jax import lax

__all__ = ["Linear", "Conv"]


def _kernel(module):
    """The kernel the forward pass uses: float, or the STE-quantized integer grid after qat()."""
    q = getattr(module, "quantizer", None)
    w = module.kernel[...]
    return w if q is None else q.quantize(w, module.quant_scale[...])


class Linear(nnx.Module):
    """Dense synapses ``I[..., o] = sum_i x[..., i] W[i, o]`` (no bias).

    Inputs of more than one trailing dimension (a conv layer's ``(C, H, W)``) are flattened in
    C, H, W order, the chip's neuron order.
    """

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs,
                 kernel_init=nnx.initializers.lecun_normal()):
        self.in_features, self.out_features = in_features, out_features
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features), jnp.float32))
        self.quantizer = None
        self.quant_scale = nnx.data(None)

    def _flat(self, x):
        if x.shape[-1] != self.in_features:
            x = x.reshape(*x.shape[:2], -1) if x.ndim > 3 else x
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear expects {self.in_features} input features, got shape {x.shape}")
        return x

    def __call__(self, x):
        return self._flat(x) @ _kernel(self)

    def split(self, x):
        """(excitatory, inhibitory) sums: positive weights and ``|negative weights|`` separately."""
        x = self._flat(x)
        w = _kernel(self)
        return x @ jnp.maximum(w, 0.0), x @ jnp.maximum(-w, 0.0)

    def integer_kernel(self):
        """The chip's integer weights ``(in, out)`` (after qat / calibration), as int32."""
        if self.quantizer is None:
            raise ValueError("Linear has no quantizer: call s2jax.quant.qat(model, config) first")
        return _kernel(self).astype(jnp.int32)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Conv(nnx.Module):
    """Sum-pooling (``pool``), then a 2-D cross-correlation, NCHW, no bias.

    Kernel layout ``(C_in, C_out, kH, kW)`` as py-spinnaker2's ``Conv2DProjection``. Input
    ``(..., C_in, H, W)``; output ``(..., C_out, H_out, W_out)`` with
    ``H_out = (H // pool_y + pad_top + pad_bottom - kH) // stride_y + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1, padding=0, pool=1,
                 rngs: nnx.Rngs, kernel_init=nnx.initializers.lecun_normal(in_axis=(0, 2, 3), out_axis=1)):
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = _pair(stride)
        self.pool = _pair(pool)
        if isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        self.padding = tuple(tuple(p) for p in padding)
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_channels, out_channels, kh, kw), jnp.float32))
        self.quantizer = None
        self.quant_scale = nnx.data(None)

    def output_shape(self, in_height: int, in_width: int) -> tuple[int, int, int]:
        kh, kw = self.kernel.shape[2:]
        hp, wp = in_height // self.pool[0], in_width // self.pool[1]
        (pt, pb), (pl, pr) = self.padding
        return (self.out_channels, (hp + pt + pb - kh) // self.stride[0] + 1,
                (wp + pl + pr - kw) // self.stride[1] + 1)

    def _pooled(self, x):
        *lead, c, h, w = x.shape
        py, px = self.pool
        hp, wp = h // py, w // px
        x = x[..., : hp * py, : wp * px].reshape(*lead, c, hp, py, wp, px)
        return x.sum(axis=(-3, -1)).reshape(-1, c, hp, wp), lead

    def _conv(self, x, w):
        x, lead = self._pooled(x)
        y = lax.conv_general_dilated(x, jnp.transpose(w, (1, 0, 2, 3)), self.stride, self.padding)
        return y.reshape(*lead, *y.shape[1:])

    def __call__(self, x):
        return self._conv(x, _kernel(self))

    def split(self, x):
        w = _kernel(self)
        return self._conv(x, jnp.maximum(w, 0.0)), self._conv(x, jnp.maximum(-w, 0.0))

    def integer_kernel(self):
        if self.quantizer is None:
            raise ValueError("Conv has no quantizer: call s2jax.quant.qat(model, config) first")
        return _kernel(self).astype(jnp.int32)

