"""Surrogate gradients: the forward pass is the exact Heaviside step ``v > threshold``; the
backward pass uses the derivative of a smooth stand-in, evaluated at ``x = (v - threshold) / scale``.

Each surrogate is a frozen dataclass (hashable, so it is static under ``jax.jit``) whose call
returns d spike / d x. ``scale`` lets one surrogate serve a float model (scale 1) and its QAT
version, whose membrane lives in integer weight units (scale = the layer's weight scale).

The EGRU's event (:func:`event`) is the same kind of step, ``c > theta``, with its own
pseudo-derivative ``gamma * max(0, 1 - slope |c - theta|)`` (:func:`pseudo_derivative`).

    >>> import jax, jax.numpy as jnp
    >>> from s2jax.surrogates import FastSigmoid, spike
    >>> jax.grad(lambda v: spike(v, 1.0, FastSigmoid(slope=10.0)))(jnp.float32(1.0))
    Array(1., dtype=float32)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["FastSigmoid", "Arctan", "Triangle", "Boxcar", "SuperSpike", "Custom", "spike", "REGISTRY",
           "pseudo_derivative", "event"]


@dataclass(frozen=True)
class FastSigmoid:
    """d/dx of ``x / (1 + slope |x|)``: ``1 / (1 + slope |x|)^2`` (snnTorch's default slope 25)."""

    slope: float = 25.0

    def __call__(self, x):
        return 1.0 / (1.0 + self.slope * jnp.abs(x)) ** 2


@dataclass(frozen=True)
class Arctan:
    """d/dx of ``arctan(pi/2 * alpha * x) / pi``: ``alpha / 2 / (1 + (pi/2 alpha x)^2)``."""

    alpha: float = 2.0

    def __call__(self, x):
        return (self.alpha / 2.0) / (1.0 + (math.pi / 2.0 * self.alpha * x) ** 2)


@dataclass(frozen=True)
class Triangle:
    """``max(0, 1 - |x| / width) / width``: a triangle of area 1."""

    width: float = 1.0

    def __call__(self, x):
        return jnp.maximum(0.0, 1.0 - jnp.abs(x) / self.width) / self.width


@dataclass(frozen=True)
class Boxcar:
    """``1 / (2 width)`` for ``|x| < width``, else 0: a box of area 1."""

    width: float = 0.5

    def __call__(self, x):
        return jnp.where(jnp.abs(x) < self.width, 1.0 / (2.0 * self.width), 0.0)


@dataclass(frozen=True)
class SuperSpike:
    """Zenke and Ganguli (2018): ``1 / (beta |x| + 1)^2`` with their steep default ``beta = 100``."""

    beta: float = 100.0

    def __call__(self, x):
        return 1.0 / (self.beta * jnp.abs(x) + 1.0) ** 2


@dataclass(frozen=True)
class Custom:
    """A user-supplied derivative ``fn(x)`` (must be hashable, e.g. a module-level function)."""

    fn: Callable
    slope: float = 1.0

    def __call__(self, x):
        return self.fn(self.slope * x) * self.slope


REGISTRY = {"fast_sigmoid": FastSigmoid, "arctan": Arctan, "triangle": Triangle, "boxcar": Boxcar,
            "superspike": SuperSpike}


def spike(v, threshold, surrogate, scale=1.0, strict: bool = True):
    """Spike ``v > threshold`` (or ``>=`` when not strict) as 0/1 in v's dtype, surrogate backward."""
    return _spike(surrogate, strict)(v, threshold, scale)


@functools.lru_cache(maxsize=None)
def _spike(surrogate, strict):
    @jax.custom_jvp
    def f(v, threshold, scale):
        hit = v > threshold if strict else v >= threshold
        return hit.astype(v.dtype)

    @f.defjvp
    def f_jvp(primals, tangents):
        v, threshold, scale = primals
        dv, dthr, _ = tangents
        g = surrogate((v - threshold) / scale) / scale
        return f(v, threshold, scale), (g * (dv - dthr)).astype(v.dtype)

    return f


def pseudo_derivative(x, gamma, slope):
    """``gamma * max(0, 1 - slope * |x|)`` with ``x = c - theta`` (the EGRU's d o / d c)."""
    return gamma * jnp.maximum(0.0, 1.0 - slope * jnp.abs(x))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def event(c, theta, gamma, slope):
    """``c > theta`` as 0/1 in c's dtype; its derivative is :func:`pseudo_derivative` (in c, minus it
    in theta)."""
    return (c > theta).astype(c.dtype)


@event.defjvp
def _event_jvp(gamma, slope, primals, tangents):
    c, theta = primals
    dc, dtheta = tangents
    return event(c, theta, gamma, slope), pseudo_derivative(c - theta, gamma, slope) * (dc - dtheta)
