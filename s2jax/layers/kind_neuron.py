"""``Neuron``: a layer of any registered neuron kind, stepped by the kind's own chip-model block.

The cell holds the kind's declared parameters (:mod:`s2jax.kinds`) and calls
``kind.block.step`` with the numerics it is given: :class:`~s2jax.numerics.FloatNumerics` for float
training, the chip numerics after :func:`s2jax.quant.qat`. Since the chip model steps the same
function with the same numerics, the QAT forward pass equals the chip model by construction: a kind
added to the registry trains, fine-tunes and quantizes with no code of its own here.

Chip units after ``qat``: every parameter of class "value" (threshold, offsets, reset and initial
membranes) is multiplied by the input synapse's weight scale (one rounded float32 product; the
threshold also by a learnable threshold scale with adaptive threshold scaling); "decay" parameters
are clipped to [0, 1]; "ticks" and "reset" parameters are taken as they are. In the fixed profile the
values are then rounded onto s16.15 and the decays onto unsigned 0.16 (the spec's
``fixed_param_rounding``), and the cell runs the exact integer step beside a float32 shadow that
provides the gradient (:func:`s2jax.numerics.straight_through`: the forward value is the integer
one), as :class:`~s2jax.layers.LIF` does.

Example::

    >>> import jax.numpy as jnp
    >>> cell = Neuron("lif_no_delay", 2, params={"threshold": 1.0, "alpha_decay": 0.5})
    >>> carry = cell.initialize_carry((1, 2))
    >>> carry, z = cell(carry, jnp.array([[1.5, 0.5]]))
    >>> z.tolist()
    [[1.0, 0.0]]
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from s2jax import kinds
from s2jax.layers.neurons import _fixed, _is_fixed, _resync, _shape
from s2jax.numerics import ChipFloat32, FloatNumerics, straight_through
from s2jax.spec import SPINNAKER2, ChipSpec
from s2jax.surrogates import FastSigmoid

__all__ = ["Neuron"]


@dataclasses.dataclass(frozen=True)
class StepSettings:
    """The static settings a block's step reads besides its parameters (the chip model passes its
    ``Layout``, which has the same field)."""

    cuba_order: str


class _SurrogateWidth:
    """Numerics whose surrogate gradient is widened by ``scale`` (the weight scale of chip units);
    the forward values are those of ``inner``."""

    def __init__(self, inner, scale):
        self.inner, self.scale = inner, scale

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def spike(self, v, threshold, scale=1.0):
        return self.inner.spike(v, threshold, self.scale * scale)


class Neuron(nnx.Module):
    """A layer of ``size`` neurons of the registered kind ``model`` (e.g. ``"lif_curr_exp"``).

    ``params``: values of the kind's parameters (scalars or one per neuron); the others take the
    kind's defaults. ``learn``: names of "value" / "decay" parameters to train (decays are clipped
    to [0, 1]). ``readout=True``: a leaky readout whose output is its membrane, with the chip's
    unreachable threshold (``ChipSpec.readout_threshold``) after ``qat``. Inputs: one tick's
    synaptic sum, or the pair ``(excitatory, inhibitory)`` for two-channel kinds (``Linear.split``).
    ``spec``: the chip whose readout threshold and current order the layer uses (``qat`` passes its
    config's); ``numerics``: the arithmetic (default float training with ``surrogate``).
    """

    def __init__(self, model: str, size, *, params: dict | None = None, learn=(), readout: bool = False,
                 surrogate=FastSigmoid(), spec: ChipSpec = SPINNAKER2, numerics=None, rngs: nnx.Rngs | None = None):
        kind = kinds.get(model)
        if kind.is_input:
            raise ValueError(f"{model!r} is an input kind: it has no neurons to step")
        params = dict(params or {})
        unknown = sorted(set(params) - set(kind.defaults), key=str)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for neuron model {model!r}; known: {sorted(kind.defaults)}")
        bad_learn = sorted(k for k in learn if kind.param_classes.get(k) not in ("value", "decay"))
        if bad_learn:
            raise ValueError(f"only 'value' and 'decay' parameters of {model!r} can be learned, got {bad_learn}")
        self.model = model
        self.shape = _shape(size)
        self.names = tuple(kind.defaults)
        self.modes = {}  # reset parameters: their mode names (static)
        for key, cls in kind.param_classes.items():
            value = params.get(key, kind.defaults[key])
            if cls == "reset":
                if value not in ("reset_by_subtraction", "reset_to_v_reset"):
                    raise ValueError(f"{key} must be 'reset_by_subtraction' or 'reset_to_v_reset', got {value!r}")
                self.modes[key] = value
                continue
            values = np.asarray(value, np.float64)
            if values.dtype.kind not in "fiu" or not np.all(np.isfinite(values)) or (
                    cls == "ticks" and np.any((values < 0) | (values != np.round(values)))):
                raise ValueError(f"{model}: parameter {key!r} must be finite numbers"
                                 f"{' (non-negative integer ticks)' if cls == 'ticks' else ''}, got {value!r}")
            try:
                array = jnp.broadcast_to(jnp.asarray(values, jnp.int32 if cls == "ticks" else jnp.float32), self.shape)
            except ValueError:
                raise ValueError(f"{model}: parameter {key!r} must be a scalar or have the layer's shape {self.shape}, "
                                 f"got shape {values.shape}") from None
            setattr(self, key, nnx.Param(array) if key in learn else nnx.Variable(array))
        self.readout = readout
        self.surrogate = surrogate
        self.numerics = numerics or FloatNumerics(surrogate=surrogate)
        self.current_order = spec.cuba_current_order  # qat passes its config's spec's
        self.readout_threshold = spec.readout_threshold
        self.quant_scale = nnx.data(None)  # set by s2jax.quant.qat: the input synapse's weight scale
        self.threshold_scale = nnx.data(None)  # set by qat with adaptive threshold scaling (trainable)

    @property
    def kind(self) -> kinds.NeuronKind:
        return kinds.get(self.model)

    @property
    def channels(self) -> int:
        return self.kind.channels

    @property
    def num_feature_axes(self) -> int:
        return len(self.shape)

    @property
    def scale(self):
        return 1.0 if self.quant_scale is None else jnp.broadcast_to(self.quant_scale[...], self.shape)

    # --- parameters in chip units ------------------------------------------------------------------

    def chip_values(self) -> dict:
        """Every parameter in chip units as the chip stores it (float32 values, int32 ticks, mode
        names for reset parameters)."""
        out = {}
        for key, cls in self.kind.param_classes.items():
            if cls == "reset":
                out[key] = self.modes[key]
                continue
            x = getattr(self, key)[...]
            if cls == "decay":
                x = jnp.clip(x, 0.0, 1.0)
            elif cls == "value" and self.quant_scale is not None:
                if key == "threshold" and self.readout:
                    x = jnp.full(self.shape, self.readout_threshold, jnp.float32)
                else:
                    x = x * jnp.broadcast_to(self.quant_scale[...], self.shape)
                    if key == "threshold" and self.threshold_scale is not None:
                        x = x * self.threshold_scale[...]
            elif key == "threshold" and self.readout:
                x = jnp.full(self.shape, self.readout_threshold, jnp.float32)
            out[key] = x
        return out

    def population_params(self) -> dict:
        """The ``qnet.Population`` parameters of this layer (one value per neuron, flattened)."""
        return {k: (v if isinstance(v, str) else np.asarray(v).reshape(-1)) for k, v in self.chip_values().items()}

    def _converted(self, numerics) -> dict:
        """The chip values as the step under ``numerics`` stores them (integers in the fixed profile)."""
        out = {}
        for key, x in self.chip_values().items():
            cls = self.kind.param_classes[key]
            if cls == "reset":
                out[key] = jnp.full(self.shape, x == "reset_by_subtraction")
            elif cls != "ticks" and _is_fixed(numerics):
                bits = numerics.decay_frac_bits if cls == "decay" else numerics.v_frac_bits
                out[key] = _fixed(x, bits, numerics.param_rounding)
            else:
                out[key] = x
        return out

    # --- recurrent cell ------------------------------------------------------------------------------

    def _state(self, batch, numerics, dtype):
        v0 = jnp.broadcast_to(self._converted(numerics)["v_init"], (*batch, *self.shape))
        return self.kind.block.init_state(v0, dtype)

    def initialize_carry(self, input_shape, rngs=None):
        batch = tuple(input_shape[: len(input_shape) - len(self.shape)])
        if _is_fixed(self.numerics):
            shadow = ChipFloat32(self.numerics.strict_threshold, self.surrogate)
            return self._state(batch, self.numerics, jnp.int32), self._state(batch, shadow, jnp.float32)
        return self._state(batch, self.numerics, jnp.float32)

    def _step(self, state, x, numerics):
        block = self.kind.block
        a, b = x if self.channels == 2 else (x, jnp.zeros_like(x))
        params = block.make_params({k: v for k, v in self._converted(numerics).items() if k in block.params})
        return block.step(params, state, a, b, _SurrogateWidth(numerics, self.scale), StepSettings(self.current_order))

    def __call__(self, carry, x):
        block = self.kind.block
        if not _is_fixed(self.numerics):
            numerics = self.numerics
            if self.readout and isinstance(numerics, FloatNumerics):
                # a readout never spikes; a live reset would multiply the surrogate's zero by the
                # huge readout threshold in the backward pass (inf * 0 = NaN)
                numerics = dataclasses.replace(numerics, detach_reset=True)
            carry, z = self._step(carry, x, numerics)
            return carry, (block.voltage(carry) if self.readout else z)
        exact, shadow = carry
        shadow_num = ChipFloat32(self.numerics.strict_threshold, self.surrogate)
        exact, z_int = self._step(exact, x, self.numerics)
        shadow, z_sh = self._step(shadow, x, shadow_num)
        shadow = _resync(shadow, exact, self.numerics.v_frac_bits)
        z = straight_through(z_int, z_sh)
        return (exact, shadow), (block.voltage(shadow) if self.readout else z)

    def voltage(self, carry):
        """The chip's membrane value of a carry (raw int32 s16.15 in the fixed profile)."""
        return self.kind.block.voltage(carry[0] if _is_fixed(self.numerics) else carry)
