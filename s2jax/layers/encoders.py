"""Spike encoders: continuous values to ``(B, T, ...)`` spike trains (or currents).

``rate`` and ``latency`` and ``population`` give 0/1 spikes the chip can take as a
``spike_list`` input; ``direct`` repeats real values as currents (float training only: the chip's
inputs are spikes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["rate", "latency", "direct", "population"]


def rate(key, x, timesteps: int):
    """Bernoulli rate coding: each tick spikes with probability ``clip(x, 0, 1)``."""
    p = jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 1.0)
    u = jax.random.uniform(key, (p.shape[0], timesteps, *p.shape[1:]))
    return (u < p[:, None]).astype(jnp.float32)


def latency(x, timesteps: int, *, threshold: float = 0.0):
    """One spike per value at tick ``round((1 - x) * (T - 1))``: large values fire early.

    Values ``<= threshold`` (after clipping to [0, 1]) do not fire.
    """
    x = jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 1.0)
    tick = jnp.round((1.0 - x) * (timesteps - 1)).astype(jnp.int32)
    t = jnp.arange(timesteps).reshape((1, timesteps) + (1,) * (x.ndim - 1))
    return ((t == tick[:, None]) & (x[:, None] > threshold)).astype(jnp.float32)


def direct(x, timesteps: int):
    """Direct-current coding: the value itself every tick (float models only)."""
    x = jnp.asarray(x, jnp.float32)
    return jnp.broadcast_to(x[:, None], (x.shape[0], timesteps, *x.shape[1:]))


def population(x, low, high, n_neurons: int, timesteps: int, *, sigma: float | None = None, key=None,
               max_rate: float = 1.0):
    """Population coding of continuous observations (e.g. RL states).

    Each of the D values of ``x`` (``(B, D)``) drives ``n_neurons`` Gaussian receptive fields
    with centres evenly spaced over ``[low, high]`` (per dimension; values outside are clipped).
    The field activation ``a`` in [0, 1] becomes spikes deterministically (a neuron fires each time
    its accumulated ``max_rate * a`` passes an integer: regular firing at that rate) or, with
    ``key``, as Bernoulli spikes. Output ``(B, T, D * n_neurons)``, dimension-major.
    """
    x = jnp.asarray(x, jnp.float32)
    low = jnp.broadcast_to(jnp.asarray(low, jnp.float32), x.shape[-1:])
    high = jnp.broadcast_to(jnp.asarray(high, jnp.float32), x.shape[-1:])
    centres = low[:, None] + (high - low)[:, None] * jnp.linspace(0.0, 1.0, n_neurons)[None, :]
    width = (high - low)[:, None] / max(n_neurons - 1, 1) if sigma is None else jnp.float32(sigma)
    xc = jnp.clip(x, low, high)[..., None]
    a = jnp.exp(-0.5 * ((xc - centres) / width) ** 2).reshape(x.shape[0], -1) * max_rate
    if key is not None:
        u = jax.random.uniform(key, (x.shape[0], timesteps, a.shape[-1]))
        return (u < a[:, None]).astype(jnp.float32)
    t = jnp.arange(1, timesteps + 1, dtype=jnp.float32)[None, :, None]
    return (jnp.floor(a[:, None] * t) > jnp.floor(a[:, None] * (t - 1))).astype(jnp.float32)
