"""File-format codecs of neuron kinds (``NeuronKind.codecs[format]``), and the stock NIR codecs.

A kind's NIR codec (``codecs["nir"]``, a :class:`NIRCodec`) is all that :mod:`s2jax.export.nir`
knows of the kind: how a population becomes a NIR neuron node (:attr:`NIRCodec.to_node`), which
node types it writes (checked when a file is rebuilt from its ``s2jax_*`` metadata), and which
node types of a foreign file it converts into a population of which kind
(:attr:`NIRCodec.model_of`, :attr:`NIRCodec.from_node`). The exporter handles everything else for
every kind alike: the graph, the synapses, and the metadata that restores a population exactly
(its kind, size, recording and each parameter of the kind's ``param_classes``). A kind without a
NIR codec is refused by :func:`~s2jax.export.nir.to_nir`, naming the population and the kind.

Node types are named by their class name in the ``nir`` package (``"LIF"``, ``"IF"``, ...), and
codecs import ``nir`` inside their functions only: the kinds load without it, and without
:mod:`s2jax.export` (no import cycle). The helpers below (time constants, checked node fields)
are the conversions the stock codecs share; another kind's codec may use them.

The stock codecs live with their kinds (formulas in :mod:`s2jax.export.nir`):
:data:`s2jax.kinds.lif.LIF_NIR` (``lif``, ``lif_no_delay``, ``lif_conv2d``) writes ``LIF``, or ``LI``
for a readout, and converts foreign ``LIF``, ``IF`` and ``LI`` nodes; :data:`s2jax.kinds.cuba.CUBA_NIR`
(``lif_curr_exp*``) writes and converts ``CubaLIF``. Where the codecs of several kinds convert the same node type, the first kind
registered converts it (the stock kinds register first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np


__all__ = ["refuse_layers", "NIRCodec", "NIRImport", "NO_LEAK_TAU_TICKS", "tau_of", "decay_gain", "per_neuron", "positive",
           "nonzero", "flat_field"]

NO_LEAK_TAU_TICKS = 2.0**26  # tau / dt written for alpha_decay == 1: float32(1 - 2^-26) == 1.0


def refuse_layers(net, what: str) -> None:
    """Refuse a network that holds :class:`~s2jax.qnet.Layer` nodes: no file format writes layer kinds
    yet (EGRU export is issue 17), so every exporter calls this first, for every layer kind alike,
    rather than write a file without them. A ``ValueError`` names the first layer, its kind and
    ``what`` the file is."""
    for layer in getattr(net, "layers", ()):
        raise ValueError(f"layer {layer.name!r} is of kind {layer.kind.name!r}: {what} cannot hold layer kinds yet "
                         f"(only populations and projections); run it with hwmodel.run and check it with export.check")


@dataclass(frozen=True)
class NIRImport:
    """The settings of a foreign-file conversion that a codec's ``from_node`` reads (those of
    :func:`~s2jax.export.nir.from_nir`): ``dt`` in seconds, ``integrator`` ("forward" or
    "exponential"), ``reset`` (the chip reset mode, ``"reset_by_subtraction"`` or
    ``"reset_to_v_reset"``) and ``readout_threshold`` (``ChipSpec.readout_threshold``)."""

    dt: float
    integrator: str
    reset: str
    readout_threshold: float


def _never(values, spec) -> bool:
    return False


@dataclass(frozen=True)
class NIRCodec:
    """How a kind's populations become NIR neuron nodes and back.

    ``fields``: ``{node type: parameter fields}`` for every node type the codec writes or reads:
    the fields whose shapes broadcast to the population's shape (each checked to hold real, finite
    numbers before use); ``optional``: ``{node type: fields}`` checked the same way when not None.

    ``writes``: the node types ``to_node`` returns. ``to_node(values, shape, dt, readout)``: the
    node (without metadata; the exporter adds it) of a population of NIR ``shape``; ``values``:
    every numeric parameter of the kind as a float64 array of one value per neuron (or a scalar),
    every reset parameter as its mode name; ``dt``: the tick in seconds; ``readout``: what
    ``readout(values, spec)`` said (a float ``layers.LI`` passes True).

    ``bias``: the parameter that travels as the bias of an ``Affine`` node when the population has
    one dense input and the parameter is not zero everywhere (the exporter then passes 0 for it to
    ``to_node``); None: it never does.

    ``reads``: the node types of a foreign file (or of a file read with ``use_metadata=False``)
    converted into populations of this codec's kinds. ``model_of(node_type, conv, where)``: the
    kind of such a node (``conv``: a ``Conv2d`` feeds it; ``where`` names the node for errors).
    ``from_node(node, where, shape, bias, w_scale, settings)``: ``(params, v_scale)``, the
    population's parameters (one value per neuron, or scalars) in chip units for the weight scale
    ``w_scale`` (1: float units), ``bias`` the summed biases of the weight nodes into it (one value
    per neuron) and ``settings`` a :class:`NIRImport`; ``v_scale`` turns NIR voltages into chip units.
    """

    fields: Mapping[str, tuple[str, ...]]
    writes: tuple[str, ...]
    to_node: Callable[..., Any]
    readout: Callable[[Mapping, Any], bool] = _never
    bias: str | None = None
    optional: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    model_of: Callable[[str, bool, str], str] | None = None
    from_node: Callable[..., tuple] | None = None

    def __post_init__(self):
        object.__setattr__(self, "fields", MappingProxyType({k: tuple(v) for k, v in self.fields.items()}))
        object.__setattr__(self, "optional", MappingProxyType({k: tuple(v) for k, v in self.optional.items()}))
        missing = sorted((set(self.writes) | set(self.reads)) - set(self.fields))
        if missing:
            raise ValueError(f"NIR codec: node types {missing} have no entry in fields")
        if self.reads and (self.model_of is None or self.from_node is None):
            raise ValueError(f"NIR codec: reading {list(self.reads)} needs model_of and from_node")


# --- helpers shared by codecs -----------------------------------------------------------------------


def tau_of(alpha, dt: float) -> np.ndarray:
    """``dt / (1 - alpha)``, and ``2^26 dt`` where ``alpha == 1`` (a decay that rounds to 1.0)."""
    a = np.asarray(alpha, np.float64)
    one = a == 1.0
    return np.where(one, dt * NO_LEAK_TAU_TICKS, dt / np.where(one, 0.5, 1.0 - a))


def decay_gain(tau, dt: float, integrator: str):
    """One tick of ``tau dv/dt = -v + ...``: ``(decay, gain)``, forward or exponential Euler."""
    tau = np.asarray(tau, np.float64)
    if integrator == "forward":
        return 1 - dt / tau, dt / tau
    e = np.exp(-dt / tau)
    return e, 1 - e


def per_neuron(x, shape) -> np.ndarray:
    """A float64 array of ``shape`` from a scalar or one value per neuron (C, H, W order)."""
    x = np.asarray(x, np.float64)
    return x.reshape(shape).copy() if x.size == math.prod(shape) else np.broadcast_to(x, shape).copy()


def flat_field(node, name: str, shape) -> np.ndarray:
    return np.broadcast_to(np.asarray(getattr(node, name), np.float64), shape).reshape(-1)


def positive(node, name: str, shape, where: str) -> np.ndarray:
    """Field ``name`` of ``node``, one value per neuron, each positive and finite."""
    v = flat_field(node, name, shape)
    bad = ~((v > 0) & np.isfinite(v))
    if np.any(bad):
        raise ValueError(f"{where}: {name} must be positive and finite, got {v[bad][0]}")
    return v


def nonzero(node, name: str, shape, where: str) -> np.ndarray:
    """Field ``name`` of ``node``, one value per neuron, each finite and non-zero."""
    v = flat_field(node, name, shape)
    bad = (v == 0) | ~np.isfinite(v)
    if np.any(bad):
        raise ValueError(f"{where}: {name} must be finite and non-zero, got {v[bad][0]}")
    return v
