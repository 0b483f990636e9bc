"""Neuron layers: ``LIF``, ``CubaLIF`` and the leaky readout ``LI``, as Flax recurrent cells.

Each cell holds only parameters and calls the pure step of :mod:`s2jax.dynamics` with its
numerics: ``FloatNumerics`` for float training, the chip numerics after ``s2jax.quant.qat``.
Cells follow the Flax contract ``cell(carry, x) -> (carry, y)`` with ``initialize_carry``, so
they also run inside ``nnx.RNN``. ``x`` is the synaptic input of one tick (``CubaLIF`` takes the
pair ``(excitatory, inhibitory)`` from ``Linear.split``); ``y`` is the spikes (0/1 floats), or the
membrane for ``LI``.

Chip units. After ``qat`` a neuron lives in the units of its integer weights: threshold, bias
(the chip's ``i_offset``) and ``v_reset`` are multiplied by the input synapse's weight scale
(and by a learnable threshold scale with adaptive threshold scaling), each product one rounded
float32 operation, the same ones ``s2jax.quant.quantize`` computes for the chip. In the fixed
profile they are then rounded to s16.15 and the decay to unsigned 0.16 (``ChipFixed.param_rounding``,
the spec's ``fixed_param_rounding``, through :func:`s2jax.fixedpoint.to_fixed`); the cell then runs
the exact integer step and, beside it, a float32 shadow of the same step that provides the gradient
(:func:`s2jax.numerics.straight_through`: the forward value is always the integer one).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from s2jax import dynamics
from s2jax.fixedpoint import INT32_MAX, INT32_MIN, to_fixed
from s2jax.numerics import ChipFloat32, FloatNumerics, straight_through
from s2jax.spec import SPINNAKER2, ChipSpec
from s2jax.surrogates import FastSigmoid

__all__ = ["LIF", "CubaLIF", "LI"]

RESETS = ("subtract", "to_v_reset")


def _shape(size):
    return (size,) if isinstance(size, int) else tuple(size)


def _var(value, learn):
    return nnx.Param(value) if learn else nnx.Variable(value)


def _fixed(x, frac_bits, rounding):
    """float32 -> int32 on the 2^-frac grid with the spec's parameter rounding (the conversion the
    chip model's host side uses, ``hwmodel.params``); beyond int32 saturates."""
    return to_fixed(jnp.asarray(x), frac_bits, rounding, INT32_MIN, INT32_MAX).astype(jnp.int32)


def _is_fixed(numerics) -> bool:
    return numerics.name == "fixed"


class LIF(nnx.Module):
    """Leaky integrate-and-fire: ``v = alpha v + I + bias; spike if v > threshold; reset``.

    ``reset``: "subtract" (py-spinnaker2's ``reset_by_subtraction``) or "to_v_reset".
    ``learn_alpha`` / ``learn_threshold`` make decay / threshold trainable (the decay is
    clipped to [0, 1]); ``bias=True`` adds a trainable per-neuron constant input. ``spec``: the
    chip whose readout threshold and current order the layer uses (``s2jax.quant.qat`` passes its
    config's); ``numerics``: the arithmetic (:mod:`s2jax.numerics`; default float training with
    ``surrogate``), as Flax layers take a ``precision``.

    Example::

        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> cell = LIF(3, alpha=0.5, threshold=1.0)
        >>> carry = cell.initialize_carry((2, 3))
        >>> carry, z = cell(carry, jnp.full((2, 3), 1.5))
        >>> z.tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, size, *, alpha=0.9, threshold=1.0, reset: str = "subtract", v_reset=0.0,
                 bias: bool = False, learn_alpha: bool = False, learn_threshold: bool = False,
                 surrogate=FastSigmoid(), detach_reset: bool = False, spec: ChipSpec = SPINNAKER2, numerics=None,
                 rngs: nnx.Rngs | None = None):
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        self.shape = _shape(size)
        self.reset = reset
        self.alpha = _var(jnp.full(self.shape, alpha, jnp.float32), learn_alpha)
        self.threshold = _var(jnp.full(self.shape, threshold, jnp.float32), learn_threshold)
        self.v_reset = nnx.Variable(jnp.full(self.shape, v_reset, jnp.float32))
        self.bias = nnx.Param(jnp.zeros(self.shape, jnp.float32)) if bias else None
        self.surrogate = surrogate
        self.numerics = numerics or FloatNumerics(surrogate=surrogate, detach_reset=detach_reset)
        self.quant_scale = nnx.data(None)  # set by s2jax.quant.qat: the input synapse's weight scale
        self.threshold_scale = nnx.data(None)  # set by qat with adaptive threshold scaling (trainable)
        self.readout = False
        self.readout_threshold = spec.readout_threshold  # qat passes its config's spec's
        self.current_order = spec.cuba_current_order

    # --- parameters ------------------------------------------------------------------------------

    def _common_float(self):
        alpha = jnp.clip(self.alpha[...], 0.0, 1.0)
        bias = self.bias[...] if self.bias is not None else jnp.zeros(self.shape, jnp.float32)
        return alpha, self.threshold[...], bias, self.v_reset[...]

    def chip_values(self):
        """(alpha, threshold, i_offset, v_reset) in chip units, float32 (what the chip stores)."""
        alpha, thr, bias, v_reset = self._common_float()
        if self.quant_scale is None:
            return alpha, thr, bias, v_reset
        s = jnp.broadcast_to(self.quant_scale[...], self.shape)
        if self.readout:
            thr = jnp.full(self.shape, self.readout_threshold, jnp.float32)
        else:
            thr = thr * s
            if self.threshold_scale is not None:
                thr = thr * self.threshold_scale[...]
        return alpha, thr, bias * s, v_reset * s

    def params(self, numerics=None):
        numerics = numerics or self.numerics
        alpha, thr, i_off, v_reset = self.chip_values()
        if _is_fixed(numerics):
            alpha = _fixed(alpha, numerics.decay_frac_bits, numerics.param_rounding)
            thr, i_off, v_reset = (_fixed(x, numerics.v_frac_bits, numerics.param_rounding) for x in (thr, i_off, v_reset))
        return dynamics.LIFParams(alpha, thr, i_off, v_reset, self.reset == "subtract")

    @property
    def scale(self):
        return 1.0 if self.quant_scale is None else jnp.broadcast_to(self.quant_scale[...], self.shape)

    #: synaptic input channels: one signed sum (``CubaLIF``: the pair from ``Linear.split``)
    channels = 1

    def population_params(self) -> dict:
        """The ``qnet.Population`` parameters of this layer in chip units (one value per neuron)."""
        alpha, thr, i_off, v_reset = (np.asarray(a, np.float32).reshape(-1) for a in self.chip_values())
        return {"threshold": thr, "alpha_decay": alpha, "i_offset": i_off, "v_reset": v_reset, "v_init": 0.0,
                "reset": "reset_by_subtraction" if self.reset == "subtract" else "reset_to_v_reset"}

    # --- recurrent cell ----------------------------------------------------------------------------

    def _zero_state(self, batch, dtype):
        return dynamics.LIFState(jnp.zeros((*batch, *self.shape), dtype))

    def initialize_carry(self, input_shape, rngs=None):
        batch = tuple(input_shape[: len(input_shape) - len(self.shape)])
        if _is_fixed(self.numerics):
            return self._zero_state(batch, jnp.int32), self._zero_state(batch, jnp.float32)
        return self._zero_state(batch, jnp.float32)

    def _step(self, params, state, x, numerics):
        return dynamics.lif_step(params, state, x, numerics, self.scale)

    def __call__(self, carry, x):
        if not _is_fixed(self.numerics):
            numerics = self.numerics
            if self.readout and isinstance(numerics, FloatNumerics):
                # a readout never spikes; a live reset would multiply the surrogate's zero by the
                # huge readout threshold in the backward pass (inf * 0 = NaN)
                numerics = dataclasses.replace(numerics, detach_reset=True)
            carry, z = self._step(self.params(), carry, x, numerics)
            return carry, (carry.v if self.readout else z)
        exact, shadow = carry
        shadow_num = ChipFloat32(self.numerics.strict_threshold, self.surrogate)
        exact, z_int = self._step(self.params(), exact, x, self.numerics)
        shadow, z_sh = self._step(self.params(shadow_num), shadow, x, shadow_num)
        shadow = _resync(shadow, exact, self.numerics.v_frac_bits)
        z = straight_through(z_int, z_sh)
        return (exact, shadow), (shadow.v if self.readout else z)

    def voltage(self, carry):
        """The chip's membrane value of a carry (raw int32 s16.15 in the fixed profile)."""
        return carry[0].v if _is_fixed(self.numerics) else carry.v

    @property
    def num_feature_axes(self) -> int:
        return len(self.shape)


def _resync(shadow, exact, frac_bits):
    """Shadow state whose value is the exact integer state (dequantized), gradient of the shadow."""
    fields = []
    for s, e in zip(shadow, exact):
        if s.dtype == jnp.float32:
            s = straight_through(e.astype(jnp.float32) / jnp.float32(2.0**frac_bits), s)
        else:  # refractory counters: integers, exact on both sides
            s = e
        fields.append(s)
    return type(shadow)(*fields)


class LI(LIF):
    """Leaky integrator readout: a LIF whose threshold cannot be reached; its output is ``v``.

    On the chip it is a ``lif_no_delay`` population with the largest finite float32 threshold
    (``ChipSpec.readout_threshold``) and its voltage recorded every tick.
    """

    def __init__(self, size, *, alpha=0.9, bias: bool = False, learn_alpha: bool = False,
                 spec: ChipSpec = SPINNAKER2, numerics=None, rngs: nnx.Rngs | None = None):
        super().__init__(size, alpha=alpha, threshold=spec.readout_threshold, bias=bias,
                         learn_alpha=learn_alpha, spec=spec, numerics=numerics)
        self.readout = True


class CubaLIF(LIF):
    """Current-based LIF (py-spinnaker2's ``lif_curr_exp``)::

        i_exc = exc_decay i_exc + E ;  i_inh = inh_decay i_inh + N
        v = alpha v + (i_exc - i_inh) + bias   (held at v_reset for t_refrac ticks after a spike)

    ``x`` is the pair ``(E, N)``: sums of positive and of ``|negative|`` weights (``Linear.split``).
    """

    channels = 2

    def __init__(self, size, *, alpha=0.9, exc_decay=0.8, inh_decay=None, t_refrac: int = 0, **kwargs):
        super().__init__(size, alpha=alpha, **kwargs)
        self.exc_decay = nnx.Variable(jnp.full(self.shape, exc_decay, jnp.float32))
        self.inh_decay = nnx.Variable(jnp.full(self.shape, exc_decay if inh_decay is None else inh_decay,
                                               jnp.float32))
        self.t_refrac = int(t_refrac)

    def params(self, numerics=None):
        numerics = numerics or self.numerics
        base = super().params(numerics)
        exc, inh = jnp.clip(self.exc_decay[...], 0, 1), jnp.clip(self.inh_decay[...], 0, 1)
        if _is_fixed(numerics):
            exc, inh = (_fixed(a, numerics.decay_frac_bits, numerics.param_rounding) for a in (exc, inh))
        refrac = jnp.full(self.shape, self.t_refrac, jnp.int32)
        return dynamics.CubaParams(*base, exc, inh, refrac)

    def population_params(self) -> dict:
        return {**super().population_params(),
                "exc_decay": np.clip(np.asarray(self.exc_decay[...], np.float32), 0, 1).reshape(-1),
                "inh_decay": np.clip(np.asarray(self.inh_decay[...], np.float32), 0, 1).reshape(-1),
                "t_refrac": self.t_refrac}

    def _zero_state(self, batch, dtype):
        z = jnp.zeros((*batch, *self.shape), dtype)
        return dynamics.CubaState(z, z, z, jnp.zeros((*batch, *self.shape), jnp.int32))

    def _step(self, params, state, x, numerics):
        exc, inh = x
        return dynamics.cuba_step(params, state, exc, inh, numerics, self.current_order, self.scale)
