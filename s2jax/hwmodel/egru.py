"""EGRU layers on the chip model: :func:`egru_network` makes the ``qnet.Network`` of a stack of
:class:`~s2jax.egru.EGRULayer` data, which :func:`s2jax.hwmodel.run` runs; ``run_egru(layers,
inputs, profile)``, the earlier entry point, is now that call (deprecated).

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

import warnings

import jax.numpy as jnp

from s2jax.dynamics import profile_name
from s2jax.egru import EGRULayer
from s2jax.numerics import numerics_for
from s2jax.qnet.layer import egru_network
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["EGRULayer", "EGRUTrace", "egru_network", "run_egru"]


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
    """Deprecated: ``hwmodel.run(egru_network(layers), inputs)`` (a :class:`~s2jax.hwmodel.Trace`).

    Runs a stack of EGRU layers on ``inputs`` ``(B, T, I)`` (int16 Q3.12 for "fixed", float32 for
    "float32"; "int" is the earlier name of "fixed") and returns the same numbers as an
    :class:`EGRUTrace`. Jit with ``static_argnames=("profile", "spec")``."""
    warnings.warn("run_egru is deprecated: use hwmodel.run(hwmodel.egru_network(layers), inputs)",
                  DeprecationWarning, stacklevel=2)
    from s2jax.hwmodel.layers import Node, scan_layers
    from s2jax.kinds import get_layer
    from s2jax.kinds.egru import ARRAYS

    profile = profile_name(profile, ("float32", "fixed"))
    layers = [EGRULayer(*layer) for layer in layers]
    inputs = jnp.asarray(inputs)
    _check(layers, inputs, profile)
    kind = get_layer("egru")  # the layers' arrays may be traced: no qnet.Layer (which checks values) here
    names = [f"egru{k}" for k in range(len(layers))]
    nodes = [Node(n, kind, {}, names[k - 1] if k else None) for k, n in enumerate(names)]
    arrays = [{k: jnp.asarray(a) for k, a in zip(ARRAYS, layer) if a is not None} for layer in layers]
    values, states, _ = scan_layers(nodes, arrays, inputs, [numerics_for(profile, spec)] * len(layers))
    trace_events = tuple(kind.events(values[n]) for n in names)
    return EGRUTrace(tuple(values[n] for n in names), trace_events, tuple(states[n] for n in names))
