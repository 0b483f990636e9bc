"""Straight-through quantizers and the quantization configuration.

Both quantizers are :func:`s2jax.numerics.straight_through`: the forward value is the quantized
one, exactly; the gradient is that of the unquantized input.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from s2jax import kinds
from s2jax.fixedpoint import round_float
from s2jax.numerics import straight_through
from s2jax.spec import SPINNAKER2, ChipSpec, Rounding

__all__ = ["ste_round", "ste_clip", "WeightQuantizer", "QuantConfig", "target_kinds"]


def ste_round(x, rounding: Rounding = Rounding.HALF_EVEN):
    """Round forward (half to even unless ``rounding`` says otherwise); identity backward
    (straight-through)."""
    return straight_through(round_float(x, rounding), x)


def ste_clip(x, lo, hi):
    """Clip forward; backward passes the gradient unchanged (also outside [lo, hi])."""
    return straight_through(jnp.clip(x, lo, hi), x)


@dataclass(frozen=True)
class WeightQuantizer:
    """``round(clip(W * scale, lo, hi))``: the chip's integer weights, as float32, rounded with
    ``rounding`` (``qat`` passes the spec's ``fixed_param_rounding``; default half to even).

    The gradient reaches ``W`` inside the clip range (straight-through rounding) and is zero
    for weights clipped at the range edge (they cannot move the integer any further).
    """

    lo: int
    hi: int
    rounding: Rounding = Rounding.HALF_EVEN

    def quantize(self, w, scale):
        return ste_round(jnp.clip(w * scale, float(self.lo), float(self.hi)), self.rounding)


def target_kinds() -> tuple[str, ...]:
    """The kinds ``QuantConfig.target`` accepts: registered neuron kinds (not inputs) with one
    synaptic channel that dense projections may target."""
    return tuple(name for name in kinds.projection_targets("dense")
                 if not kinds.get(name).is_input and kinds.get(name).channels == 1)


@dataclass(frozen=True)
class QuantConfig:
    """How a float model becomes a chip model.

    ``target``: "lif_no_delay" (weights in [-127, 127]) or "lif" (weights in [-15, 15], the
    delay models; current-based layers take the matching ``lif_curr_exp*``), or any registered
    one-channel neuron kind that dense projections may target (:func:`target_kinds`). Conv layers map to
    ``lif_conv2d`` (int8 kernels, used symmetrically in [-127, 127]; a ``layers.Neuron`` after a
    Conv must be of a kind that declares the ``conv2d`` projection kind) and ``LI`` readouts to
    ``lif_no_delay``. ``per_channel``: one weight scale per output neuron / channel instead of one
    per layer (thresholds become per neuron). ``power_of_two``: scales rounded down to 2^k.
    ``calibration``: "absmax" (scale = w_max / max|W|) or "percentile" (scale = w_max /
    percentile(``|W|``, ``percentile``), clipping the outliers, as py-spinnaker2's
    ``weight_scale_percentile``), or "search": data-driven, the percentile of each layer picked
    from ``search_percentiles`` to best match the float model on calibration inputs
    (:func:`s2jax.quant.search_scales`). ``adaptive_threshold``: QAT learns a threshold scale per layer
    (per channel with ``per_channel``). ``profile``: "float32" or "fixed".
    """

    target: str = "lif_no_delay"
    per_channel: bool = False
    power_of_two: bool = False
    calibration: str = "absmax"
    percentile: float = 99.9
    search_percentiles: tuple[float, ...] = (99.0, 99.5, 99.9, 99.99, 100.0)
    adaptive_threshold: bool = False
    profile: str = "float32"
    spec: ChipSpec = SPINNAKER2

    def __post_init__(self):
        if self.target not in target_kinds():
            raise ValueError(f"target must be a registered one-channel neuron kind that dense projections "
                             f"target ({', '.join(map(repr, target_kinds()))}), got {self.target!r}")
        if self.calibration not in ("absmax", "percentile", "search"):
            raise ValueError(f"calibration must be 'absmax', 'percentile' or 'search', got {self.calibration!r}")
        for p in (self.percentile, *self.search_percentiles):
            if not 0.0 < p <= 100.0:
                raise ValueError(f"percentile must be in (0, 100], got {p}")
        if not self.search_percentiles:
            raise ValueError("search_percentiles must name at least one percentile")
        if self.profile == "int":  # the earlier name of "fixed" (s2jax.numerics.PROFILE_ALIASES)
            object.__setattr__(self, "profile", "fixed")
        if self.profile not in ("float32", "fixed"):
            raise ValueError(f"profile must be 'float32' or 'fixed', got {self.profile!r}")

    def chip_model(self, synapse, neuron) -> str:
        """The py-spinnaker2 model of the population a (synapse, neuron) layer becomes."""
        from s2jax.layers.neurons import CubaLIF
        from s2jax.layers.synapses import Conv

        model = getattr(neuron, "model", None)  # a layers.Neuron names its kind
        if model is not None:
            conv_targets = kinds.projection_targets("conv2d")
            if isinstance(synapse, Conv) and model not in conv_targets:
                raise ValueError(f"a Conv layer maps to {' or '.join(conv_targets)} (kinds that declare the "
                                 f"'conv2d' projection kind); a Neuron of kind {model!r} cannot follow one")
            return model
        if getattr(neuron, "readout", False):
            return "lif_no_delay"
        if isinstance(synapse, Conv):
            if isinstance(neuron, CubaLIF):
                raise ValueError("a Conv layer maps to lif_conv2d, which has no current-based variant: use LIF")
            return "lif_conv2d"
        if isinstance(neuron, CubaLIF):
            return "lif_curr_exp" if self.target == "lif" else "lif_curr_exp_no_delay"
        return self.target

    def weight_limit(self, model: str) -> int:
        """Largest ``|integer weight|`` used for ``model`` (ranges used symmetrically)."""
        lo, hi = self.spec.weight_range(model)
        return min(-lo, hi)
