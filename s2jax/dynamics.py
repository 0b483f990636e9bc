"""Neuron dynamics, written once, with the arithmetic injected as a *numerics* object.

The step functions below never touch arithmetic directly: they call the operations ``input``,
``decay``, ``add``, ``sub``, ``spike``, ``reset_subtract`` and ``reset_to`` of a numerics object
(:class:`s2jax.numerics.Numerics`): :class:`~s2jax.numerics.FloatNumerics` for float training,
:class:`~s2jax.numerics.ChipFloat32` for the stock py-spinnaker2 float32 ARM code,
:class:`~s2jax.numerics.ChipFixed` for the integer profile (s16.15 state, unsigned 0.16 decays,
saturating adds). Those classes, :func:`~s2jax.numerics.numerics_for`, ``PROFILES`` and
``profile_name`` live in :mod:`s2jax.numerics` and are importable from here too.

LIF (``lif``, ``lif_no_delay``, ``lif_conv2d``), per tick, ``I`` the int32 sum of arriving weights::

    v = (decay(alpha, v) + input(I)) + i_offset        # decay first, then input, then i_offset
    z = v > threshold                                  # strict (ChipSpec.threshold_strict)
    v = z ? (subtract ? v - threshold : v_reset) : v   # the recorded voltage is this one

Current-based LIF (``lif_curr_exp*``), ``E`` / ``N`` the sums of positive / ``|negative|`` weights::

    i_exc = decay(exc_decay, i_exc) + input(E);  i_inh = decay(inh_decay, i_inh) + input(N)
    i_mem = i_exc - i_inh   (this tick's currents; last tick's with order "previous")
    if r > 0: r -= 1; v = v_reset          else: v = (decay(alpha, v) + i_mem) + i_offset
    z = (r == 0) and v > threshold ;  on z: reset as LIF and r = t_refrac

Every ``+`` and ``-`` above is one rounded float32 operation (float32 profile) or one saturating
int32 operation (fixed-point profile); ``decay`` is a rounded product (never fused with the add) or
an exact ``(alpha_q * x) >> 16`` with the named rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

# the numerics, importable from here as before
from s2jax.numerics import (  # noqa: F401
    PROFILE_ALIASES,
    PROFILES,
    ChipFixed,
    ChipFloat32,
    FloatNumerics,
    numerics_for,
    profile_name,
)


class LIFParams(NamedTuple):
    """Per-neuron parameters (arrays of one shape; float32, or int32 in the fixed profile)."""

    alpha: jnp.ndarray
    threshold: jnp.ndarray
    i_offset: jnp.ndarray
    v_reset: jnp.ndarray
    subtract: jnp.ndarray  # bool: reset_by_subtraction (True) or reset_to_v_reset (False)


class LIFState(NamedTuple):
    v: jnp.ndarray


def lif_step(p: LIFParams, s: LIFState, i_syn, num, scale=1.0) -> tuple[LIFState, jnp.ndarray]:
    """One tick of a LIF population; ``i_syn`` is the summed input (int32, or integer-valued float
    in QAT). Returns the new state and the spikes as 0/1 floats. ``scale`` only scales the
    surrogate gradient's width (the QAT weight scale)."""
    v = num.add(num.add(num.decay(p.alpha, s.v), num.input(i_syn)), p.i_offset)
    z = num.spike(v, p.threshold, scale)
    v = _reset(v, z, p, num)
    return LIFState(v), z


class CubaParams(NamedTuple):
    alpha: jnp.ndarray
    threshold: jnp.ndarray
    i_offset: jnp.ndarray
    v_reset: jnp.ndarray
    subtract: jnp.ndarray
    exc_decay: jnp.ndarray
    inh_decay: jnp.ndarray
    t_refrac: jnp.ndarray  # int32 ticks


class CubaState(NamedTuple):
    v: jnp.ndarray
    i_exc: jnp.ndarray
    i_inh: jnp.ndarray
    refrac: jnp.ndarray  # int32 ticks left


def cuba_step(p: CubaParams, s: CubaState, exc, inh, num, order: str = "current", scale=1.0):
    """One tick of a current-based LIF; ``exc`` / ``inh`` are int32 sums (``inh`` as magnitudes)."""
    i_exc = num.add(num.decay(p.exc_decay, s.i_exc), num.input(exc))
    i_inh = num.add(num.decay(p.inh_decay, s.i_inh), num.input(inh))
    if order == "current":
        i_mem = num.sub(i_exc, i_inh)
    elif order == "previous":
        i_mem = num.sub(s.i_exc, s.i_inh)
    else:
        raise ValueError(f"order must be 'current' or 'previous', got {order!r}")
    in_refrac = s.refrac > 0
    refrac = jnp.where(in_refrac, s.refrac - 1, s.refrac)
    v_int = num.add(num.add(num.decay(p.alpha, s.v), i_mem), p.i_offset)
    v = jnp.where(in_refrac, p.v_reset, v_int)
    z = num.spike(v, p.threshold, scale) * (refrac == 0).astype(jnp.float32)
    v = _reset(v, z, p, num)
    refrac = jnp.where(z > 0, p.t_refrac, refrac)
    return CubaState(v, i_exc, i_inh, refrac), z


def _reset(v, z, p, num):
    if isinstance(p.subtract, bool):  # one mode for the whole layer (Flax layers)
        return num.reset_subtract(v, z, p.threshold) if p.subtract else num.reset_to(v, z, p.v_reset)
    return jnp.where(p.subtract, num.reset_subtract(v, z, p.threshold), num.reset_to(v, z, p.v_reset))
