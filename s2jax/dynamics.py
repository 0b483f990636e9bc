"""Neuron dynamics, written once, with the arithmetic injected as a *numerics* object.

A numerics object supplies five operations; the step functions below never touch arithmetic
directly. :class:`ChipFloat32` is the stock py-spinnaker2 float32 ARM code; :class:`ChipFixed` is
the integer profile (s16.15 state, unsigned 0.16 decays, saturating adds). Both are frozen
dataclasses, so they are hashable and can be static arguments of ``jax.jit``.

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

from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from s2jax import fixedpoint as fx
from s2jax.surrogates import FastSigmoid, spike
from s2jax.spec import Rounding


@dataclass(frozen=True)
class FloatNumerics:
    """Plain float32 training arithmetic (XLA may fuse, reorder within its rules); surrogate spikes.

    Not chip-faithful: this is the numerics of float training, before ``s2jax.quant.qat``.
    """

    surrogate: object = FastSigmoid()
    detach_reset: bool = False
    name: str = "float"
    state_dtype = jnp.float32

    def input(self, i_syn):
        return i_syn.astype(jnp.float32)

    def decay(self, alpha, x):
        return alpha * x

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def spike(self, v, threshold, scale=1.0):
        return spike(v, threshold, self.surrogate, scale)

    def reset_subtract(self, v, z, threshold):
        z = lax.stop_gradient(z) if self.detach_reset else z
        return v - z * threshold

    def reset_to(self, v, z, v_reset):
        z = lax.stop_gradient(z) if self.detach_reset else z
        return v * (1.0 - z) + z * v_reset


@dataclass(frozen=True)
class ChipFloat32:
    """float32 profile: IEEE-754 binary32, every operation rounded to nearest-even, no FMA.

    Spikes carry a surrogate gradient, so QAT trains through this exact forward pass; resets are
    selects (their gradient does not flow through the spike, i.e. a detached reset).
    """

    strict_threshold: bool = True
    surrogate: object = FastSigmoid()
    name: str = "float32"
    state_dtype = jnp.float32

    def input(self, i_syn):
        return i_syn.astype(jnp.float32)

    def decay(self, alpha, x):
        return fx.fmul(alpha, x)

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def spike(self, v, threshold, scale=1.0):
        return spike(v, threshold, self.surrogate, scale, self.strict_threshold)

    def reset_subtract(self, v, z, threshold):
        return jnp.where(z > 0, v - threshold, v)

    def reset_to(self, v, z, v_reset):
        return jnp.where(z > 0, v_reset, v)


@dataclass(frozen=True)
class ChipFixed:
    """Fixed-point profile: int32 state in s16.15, decays unsigned 0.16, saturating adds.

    Integer arithmetic has no gradient; QAT in this profile pairs it with a float shadow
    (``s2jax.quant``) that supplies the backward pass.
    """

    v_frac_bits: int = 15
    decay_frac_bits: int = 16
    decay_rounding: Rounding = Rounding.HALF_UP
    strict_threshold: bool = True
    param_rounding: Rounding = Rounding.HALF_EVEN  # float parameters onto the fixed-point grid
    name: str = "fixed"
    state_dtype = jnp.int32

    def input(self, i_syn):
        return fx.shift_left_saturate(i_syn.astype(jnp.int32), self.v_frac_bits)

    def decay(self, alpha_q, x):
        return fx.mul_shift(x, alpha_q, self.decay_frac_bits, self.decay_rounding)

    def add(self, a, b):
        return fx.add_saturate(a, b)

    def sub(self, a, b):
        return fx.sub_saturate(a, b)

    def spike(self, v, threshold, scale=1.0):
        hit = v > threshold if self.strict_threshold else v >= threshold
        return hit.astype(jnp.float32)

    def reset_subtract(self, v, z, threshold):
        return jnp.where(z > 0, fx.sub_saturate(v, threshold), v)

    def reset_to(self, v, z, v_reset):
        return jnp.where(z > 0, v_reset, v)


#: The profile names every layer, chip model and entry point takes: "float" (float training, not
#: chip-faithful), "float32" (the chip's float32 code) and "fixed" (the chip's integer arithmetic:
#: s16.15 neurons, Q3.12 EGRU).
PROFILES = ("float", "float32", "fixed")
#: Earlier names, still accepted: "int" was the EGRU functions' name for "fixed".
PROFILE_ALIASES = {"int": "fixed"}


def profile_name(profile, allowed=PROFILES) -> str:
    """The canonical name of ``profile`` (an alias of :data:`PROFILE_ALIASES` becomes its name), or a
    ``ValueError`` listing the ``allowed`` names."""
    name = PROFILE_ALIASES.get(profile, profile) if isinstance(profile, str) else profile
    if name not in allowed:
        raise ValueError(f"profile must be one of {list(allowed)}, got {profile!r}")
    return name


def numerics_for(profile: str, spec, surrogate=None) -> FloatNumerics | ChipFloat32 | ChipFixed:
    """The numerics of a profile name (:data:`PROFILES`) under a ChipSpec."""
    profile = profile_name(profile)
    if profile == "float":
        return FloatNumerics(surrogate=surrogate or FastSigmoid())
    if profile == "float32":
        return ChipFloat32(strict_threshold=spec.threshold_strict, surrogate=surrogate or FastSigmoid())
    if profile == "fixed":
        return ChipFixed(
            v_frac_bits=spec.fixed_v_frac_bits,
            decay_frac_bits=spec.fixed_decay_frac_bits,
            decay_rounding=spec.fixed_decay_rounding,
            strict_threshold=spec.threshold_strict,
            param_rounding=spec.fixed_param_rounding,
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
