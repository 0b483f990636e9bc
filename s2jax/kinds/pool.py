"""The ``arm_maxpool`` layer kind: 2-D max pooling of an int8 (or uint8) ``[C, H, W]`` tensor, as the
ARM core of a PE computes it between MAC-array layers (the MAC array has no pooling).

``qnet.Layer("arm_maxpool", {}, settings={"in_shape": [C, H, W], "window": [kH, kW], "stride": [sy, sx]})``;
``stride`` defaults to the window, ``signed_input`` (int8, else uint8) to true. No padding: windows
that do not fit are dropped (``H_out = (H - kH) // sy + 1``). The maximum of integers is exact, so
the kind needs no rounding rule; its output has the input's dtype. It holds no arrays; it costs no
synaptic events and no MACs (the ARM work of pooling is not in the cost model yet), and every PE of
it holds one byte per output value.
"""

from __future__ import annotations

import numpy as np
from jax import lax
from jax import numpy as jnp

from s2jax.kinds.base import LayerKind, register

__all__ = ["MAXPOOL"]


def _pair(settings, key):
    v = settings[key]
    if not (isinstance(v, (list, tuple)) and len(v) == 2
            and all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in v)):
        raise ValueError(f"arm_maxpool setting {key!r} must be two positive integers, got {v!r}")
    return tuple(v)


def _shape(arrays, settings):
    if arrays:
        raise ValueError(f"arm_maxpool holds no arrays, got {sorted(arrays)}")
    shape = settings["in_shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in shape)):
        raise ValueError(f"arm_maxpool setting 'in_shape' must be [C, H, W] of positive integers, got {shape!r}")
    kh, kw = _pair(settings, "window")
    sy, sx = _pair({"stride": settings["stride"] or settings["window"]}, "stride")
    if not isinstance(settings["signed_input"], bool):
        raise ValueError(f"arm_maxpool setting 'signed_input' must be true or false, got {settings['signed_input']!r}")
    c, h, w = shape
    if kh > h or kw > w:
        raise ValueError(f"arm_maxpool: a {kh}x{kw} window does not fit the {h}x{w} input")
    return (c, h, w), (c, (h - kh) // sy + 1, (w - kw) // sx + 1), "fixed"


def _dtype(settings, profile):
    return np.int8 if settings["signed_input"] else np.uint8


def _step(arrays, settings, state, x, num):
    kh, kw = settings["window"]
    sy, sx = settings["stride"] or settings["window"]
    lowest = jnp.array(jnp.iinfo(x.dtype).min, x.dtype)
    return state, lax.reduce_window(x, lowest, lax.max, (1, kh, kw), (1, sy, sx), "VALID")


MAXPOOL = register(LayerKind(
    name="arm_maxpool",
    doc="2-D max pooling on the ARM core between MAC-array layers (int8 or uint8, exact)",
    arrays={},
    settings={"in_shape": None, "window": [2, 2], "stride": None, "signed_input": True},
    shape=_shape,
    input_dtype=_dtype,
    output_dtype=_dtype,
    init_state=lambda arrays, settings, num: jnp.zeros((), jnp.int32),
    step=_step,
    events=lambda y: y != 0,
    unit_bytes=lambda arrays, settings, spec: 1,
    atoms_per_core=2**20,
))
