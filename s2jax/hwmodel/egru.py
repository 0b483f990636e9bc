"""The chip model of EGRU layers: ``run_egru(layers, inputs, profile)``, bit-exact, jittable, batched.

The layers are :class:`~s2jax.egru.EGRULayer` data (``s2jax.quant.egru.quantize_egru`` makes them;
the class lives in :mod:`s2jax.egru` so quantization does not depend on the chip model). Each
layer runs :func:`s2jax.egru.egru_step` with the chip's numerics over the whole sequence in one
``lax.scan``, starting from the zero state; layer ``l`` at step ``t`` consumes layer ``l-1``'s
events of step ``t`` (``ChipSpec.egru_layer_latency_ticks = 0``). One sequence is written
unbatched and ``jax.vmap`` maps it over the batch.

Example::

    >>> import jax, numpy as np
    >>> from flax import nnx
    >>> from s2jax.layers.egru import EGRUStack
    >>> from s2jax.quant.egru import quantize_egru, quantize_inputs
    >>> layers = quantize_egru(EGRUStack(3, [4], rngs=nnx.Rngs(0)))
    >>> x = quantize_inputs(np.ones((2, 5, 3), np.float32))           # int16 Q3.12
    >>> trace = jax.jit(run_egru, static_argnames="profile")(layers, x, profile="fixed")
    >>> trace.outputs[0].shape, trace.outputs[0].dtype.name, trace.events[0].dtype.name
    ((2, 5, 4), 'int16', 'bool')
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from s2jax.dynamics import profile_name
from s2jax.egru import EGRULayer, EGRUState, egru_numerics, egru_step
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["EGRULayer", "EGRUTrace", "run_egru"]


class EGRUTrace(NamedTuple):
    """Per layer, batch-major ``(B, T, H)``: ``outputs`` the events ``y`` (int16 Q3.12 or float32),
    ``events`` where an event was sent (``y > 0``), ``states`` the ``EGRUState`` after each step."""

    outputs: tuple
    events: tuple
    states: tuple


def _check(layers, inputs, profile):
    if not layers:
        raise ValueError("run_egru needs at least one layer")
    want = jnp.int8 if profile == "fixed" else jnp.float32
    features = inputs.shape[-1]
    for k, layer in enumerate(layers):
        if layer.w_in.dtype != want or layer.w_rec.dtype != want:
            raise ValueError(f"EGRU layer {k}: {profile} profile needs {jnp.dtype(want).name} weights, "
                             f"got {layer.w_in.dtype}")
        if layer.w_in.shape[0] != features:
            raise ValueError(f"EGRU layer {k}: expects {layer.w_in.shape[0]} input features, gets {features}")
        features = layer.theta.shape[-1]
    if inputs.ndim != 3:
        raise ValueError(f"run_egru inputs must be (batch, time, features), got shape {inputs.shape}")
    if profile == "fixed" and inputs.dtype != jnp.int16:
        raise TypeError(f"fixed profile inputs must be int16 Q3.12 (quant.egru.quantize_inputs), got {inputs.dtype}")
    if profile == "float32" and inputs.dtype != jnp.float32:
        raise TypeError(f"float32 profile inputs must be float32, got {inputs.dtype}")


def run_egru(layers: Sequence[EGRULayer], inputs, profile: str = "fixed", spec: ChipSpec = SPINNAKER2) -> EGRUTrace:
    """Run a stack of EGRU layers on ``inputs`` ``(B, T, I)`` (int16 Q3.12 for "fixed", float32 for
    "float32"; "int" is the earlier name of "fixed"). Jit with ``static_argnames=("profile", "spec")``."""
    profile = profile_name(profile, ("float32", "fixed"))
    layers = [EGRULayer(*layer) for layer in layers]
    inputs = jnp.asarray(inputs)
    _check(layers, inputs, profile)
    num = egru_numerics(profile, spec)

    def one_sequence(x):  # (T, I) -> per layer (T, H) outputs and states
        outputs, states = [], []
        for layer in layers:
            p = layer.params()
            zero = jnp.zeros(p.theta.shape, num.state_dtype)

            def tick(s, x_t, p=p):
                s, _ = egru_step(p, s, x_t, num)
                return s, s

            _, traj = lax.scan(tick, EGRUState(zero, zero), x)
            outputs.append(traj.y)
            states.append(traj)
            x = traj.y
        return tuple(outputs), tuple(states)

    outputs, states = jax.vmap(one_sequence)(inputs)
    return EGRUTrace(outputs, tuple(y > 0 for y in outputs), states)
