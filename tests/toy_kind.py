"""A toy neuron kind, kept as a test of the registry: a non-leaky integrate-and-fire neuron.

Everything it needs is in this one module (plus its oracle, ``tests/reference/toy_kind_oracle.py``,
and its entry in ``docs/adding-a-kind.md``)::

    v = (v + input(I)) + i_offset ;  z = v > threshold ;  on z: v - threshold or v_reset
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from s2jax import kinds
from s2jax.kinds.codecs import NIRCodec, per_neuron

NAME = "if_toy"


class IFParams(NamedTuple):
    threshold: jnp.ndarray
    i_offset: jnp.ndarray
    v_reset: jnp.ndarray
    subtract: jnp.ndarray  # bool per neuron: reset by subtraction


class IFState(NamedTuple):
    v: jnp.ndarray


def if_step(p, s, a, b, num, settings):
    """One tick: integrate without leak, fire, reset (every operation from ``num``, the profile's numerics)."""
    v = num.add(num.add(s.v, num.input(a)), p.i_offset)
    z = num.spike(v, p.threshold)
    v = jnp.where(p.subtract, num.reset_subtract(v, z, p.threshold), num.reset_to(v, z, p.v_reset))
    return IFState(v), z


BLOCK = kinds.Block(
    name=NAME,
    params=("threshold", "i_offset", "v_reset", "reset"),
    make_params=lambda v: IFParams(v["threshold"], v["i_offset"], v["v_reset"], v["reset"]),
    init_state=lambda v0, dtype: IFState(jnp.asarray(v0, dtype)),
    step=if_step,
)

def nir_node(values, shape, dt, readout):
    """An ``nir.IF`` (``r = 1``): NIR's non-leaky integrate-and-fire. ``i_offset`` travels as the
    bias of the population's one dense input when it has one, else in the s2jax metadata only."""
    import nir

    return nir.IF(r=np.ones(shape), v_threshold=per_neuron(values["threshold"], shape),
                  v_reset=per_neuron(values["v_reset"], shape))


# Written as IF nodes and restored exactly from the s2jax metadata; a foreign IF node still becomes
# a lif population (the stock LIF codec reads IF), so this codec reads nothing.
NIR = NIRCodec(fields={"IF": ("r", "v_threshold")}, optional={"IF": ("v_reset",)}, writes=("IF",),
               to_node=nir_node, bias="i_offset")

KIND = kinds.NeuronKind(
    NAME, "non-leaky integrate-and-fire (a toy kind)",
    defaults={"threshold": 1.0, "i_offset": 0.0, "v_init": 0.0, "v_reset": 0.0, "reset": "reset_by_subtraction"},
    param_classes={"threshold": "value", "i_offset": "value", "v_init": "value", "v_reset": "value",
                   "reset": "reset"},
    block=BLOCK, weight_range=(-127, 127), atoms_per_core=256, state_bytes=20,
    codecs={"nir": NIR},
)
