"""What a neuron kind declares, and the registry the rest of the package reads kinds from.

A :class:`NeuronKind` is one py-spinnaker2 neuron model (``lif``, ``spike_list``, ...): its
parameters and their defaults, how each parameter is stored on the chip, how many synaptic input
channels it has, and the chip-model :class:`Block` its neurons are stepped in. Kinds that share a
block (``lif``, ``lif_no_delay`` and ``lif_conv2d`` differ only in their synapses) share one state
vector and one vectorized step, so the chip model's cost per tick does not grow with the number of
populations.

The per-kind chip numbers (weight range, neurons per PE, SRAM bytes per neuron, synaptic delays)
are declared here as defaults; a :class:`~s2jax.spec.ChipSpec` that lists a kind overrides them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

__all__ = ["Block", "NeuronKind", "LayerKind", "ProjectionKind", "PARAM_CLASSES", "register", "get", "get_layer",
           "get_projection", "names", "neuron_names", "input_names", "layer_names", "projection_names",
           "projection_targets", "block", "blocks", "unregister"]

#: How a parameter is stored on the chip, which fixes its conversion in the chip model:
#: "value": a float32 (float32 profile) or an s16.15 integer (fixed profile), like the membrane;
#: "decay": a factor in [0, 1] (float32, or unsigned 0.16); "ticks": a non-negative integer count of
#: ticks; "reset": the reset mode name, stored as a flag (True: reset by subtraction).
PARAM_CLASSES = ("value", "decay", "ticks", "reset")


@dataclass(frozen=True)
class Block:
    """Neurons stepped together by the chip model (one state vector, one vectorized step).

    ``params``: the parameter names the block's step reads, in the order of ``make_params``;
    ``make_params(values)``: ``{name: (n,) array}`` (converted for the profile) -> the params pytree;
    ``init_state(v0, dtype)``: the initial state pytree from the initial membranes;
    ``step(params, state, a, b, numerics, settings) -> (state, spikes)``: one tick, ``a`` and ``b``
    the synaptic sums of the two channels (``b`` is zero for one-channel kinds; int32 on the chip
    model, float in a ``layers.Neuron``), ``settings`` the static settings a step may read: only
    ``settings.cuba_order`` (``ChipSpec.cuba_current_order``; the chip model passes its ``Layout``,
    a ``layers.Neuron`` a ``StepSettings``);
    ``voltage(state)``: the membrane the trace records."""

    name: str
    params: tuple[str, ...]
    make_params: Callable[[dict], Any]
    init_state: Callable[[Any, Any], Any]
    step: Callable
    voltage: Callable[[Any], Any] = lambda state: state.v


@dataclass(frozen=True)
class NeuronKind:
    """One neuron model of the hand-off format (:class:`s2jax.qnet.Population`'s ``neuron_model``).

    ``defaults``: every parameter with its default (neuron kinds); ``param_classes``: the
    :data:`PARAM_CLASSES` entry of each parameter; ``channels``: synaptic input channels (1: one
    signed sum; 2: excitatory and inhibitory sums of the positive weights and of the magnitudes of the negative ones);
    ``is_input``: a spike source with no state (``spike_list``); ``block``: the chip-model block;
    ``weight_range``, ``atoms_per_core``, ``state_bytes``, ``delays``: chip defaults (ChipSpec
    overrides the kinds it lists); ``codecs``: per file format, the kind's codec (``codecs["nir"]``:
    how its populations become NIR nodes and back); a format refuses a kind without its codec, naming
    it; ``projections``: the projection kinds (:class:`ProjectionKind` names) that may target its
    populations, ``("dense",)`` unless given (an input kind receives none); ``doc``: one line for
    listings."""

    name: str
    doc: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    param_classes: Mapping[str, str] = field(default_factory=dict)
    channels: int = 1
    is_input: bool = False
    block: Block | None = None
    weight_range: tuple[int, int] | None = None
    atoms_per_core: int = 250
    state_bytes: int = 24
    delays: bool = False
    codecs: Mapping[str, Any] = field(default_factory=dict)
    projections: tuple[str, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "param_classes", MappingProxyType(dict(self.param_classes)))
        object.__setattr__(self, "codecs", MappingProxyType(dict(self.codecs)))
        projections = self.projections
        if projections is None:
            projections = () if self.is_input else ("dense",)
        if isinstance(projections, str) or not all(isinstance(p, str) for p in projections):
            raise ValueError(f"kind {self.name!r}: projections must be a tuple of projection kind names, "
                             f"got {self.projections!r}")
        object.__setattr__(self, "projections", tuple(projections))
        if self.is_input:
            if self.block is not None or self.defaults:
                raise ValueError(f"kind {self.name!r}: an input kind has no block and no parameters")
            if self.projections:
                raise ValueError(f"kind {self.name!r}: an input kind receives no projections, got "
                                 f"{list(self.projections)}")
            return
        if self.block is None:
            raise ValueError(f"kind {self.name!r}: a neuron kind needs a chip-model block")
        if set(self.defaults) != set(self.param_classes):
            raise ValueError(f"kind {self.name!r}: defaults {sorted(self.defaults)} and param_classes "
                             f"{sorted(self.param_classes)} must name the same parameters")
        bad = {k: c for k, c in self.param_classes.items() if c not in PARAM_CLASSES}
        if bad:
            raise ValueError(f"kind {self.name!r}: unknown parameter classes {bad}; known: {list(PARAM_CLASSES)}")
        if self.param_classes.get("v_init") != "value":
            raise ValueError(f"kind {self.name!r}: a neuron kind needs a 'v_init' parameter of class 'value' (the "
                             f"initial membrane)")
        if self.weight_range is None:
            raise ValueError(f"kind {self.name!r}: a neuron kind needs a weight_range (lo, hi)")
        missing = sorted(set(self.block.params) - set(self.defaults) - {"v_init"})
        if missing:
            raise ValueError(f"kind {self.name!r}: block {self.block.name!r} reads parameters {missing} the kind "
                             f"does not declare")
        if self.channels not in (1, 2):
            raise ValueError(f"kind {self.name!r}: channels must be 1 or 2, got {self.channels}")

    def params_of(self, cls: str) -> tuple[str, ...]:
        """The parameters of one class, e.g. ``params_of("decay")``."""
        return tuple(k for k, c in self.param_classes.items() if c == cls)


@dataclass(frozen=True)
class LayerKind:
    """One layer kind of the hand-off format (:class:`s2jax.qnet.Layer`'s ``kind``): a node that
    stores its own arrays (weights, biases, thresholds) and maps one input tensor per tick to one
    output tensor, with or without state (EGRU layers, the MAC array's dense and conv layers).

    A layer holds ``arrays`` (name -> NumPy array) and ``settings`` (name -> a JSON value); the kind says:

    ``arrays``: every array name and a one-line description of its dtype and shape;
    ``settings``: every setting and its default;
    ``shape(arrays, settings) -> (in_shape, out_shape, profile)``: checks the arrays (dtypes,
    shapes; ``ValueError`` naming the array and what it must be) and returns the per-tick input and
    output shapes and the chip profile the arrays are stored for ("float32" or "fixed");
    ``input_dtype(settings, profile)``, ``output_dtype(settings, profile)``: the dtypes of the inputs
    it consumes and of the outputs it gives (a layer reading another must consume what it gives);
    ``init_state(arrays, settings, numerics)`` and
    ``step(arrays, settings, state, x, numerics) -> (state, y)``: one tick for one sample, with the
    arithmetic of ``numerics`` (:mod:`s2jax.numerics`), what the chip model scans;
    ``events(y)``: where an output is sent (bool, ``y``'s shape);
    ``synaptic_events(arrays, x, state)``: synaptic events per tick (int32) of a whole sequence, ``x``
    the inputs ``(T, ...)`` and ``state`` the states before each tick (leaves ``(T, ...)``), for the
    trace and the cost;
    ``synapses(arrays, settings)``: the synapses it stores (the worst case of ``synaptic_events``);
    ``updates(arrays, settings)``: units updated per tick; ``macs(arrays, settings)``: MAC-array
    multiply-accumulates per tick;
    ``rules(layer, spec) -> [(rule, value, limit, message), ...]``: its design rules;
    ``unit_bytes(arrays, settings, spec)``: SRAM bytes per output unit on a PE (weights, state);
    ``pe_bytes(arrays, settings, spec)``: SRAM bytes on every PE the layer uses (a shared kernel);
    ``atoms_per_core``: output units per PE at most; ``codecs``: per file format, the kind's codec
    (reserved: no file format writes layer kinds yet, every exporter refuses them by name);
    ``doc``: one line for listings."""

    name: str
    doc: str
    arrays: Mapping[str, str]
    shape: Callable
    input_dtype: Callable[[Any, str], Any]
    output_dtype: Callable[[Any, str], Any]
    init_state: Callable
    step: Callable
    events: Callable
    settings: Mapping[str, Any] = field(default_factory=dict)
    synaptic_events: Callable = lambda arrays, x, state: 0
    synapses: Callable = lambda arrays, settings: 0
    updates: Callable = lambda arrays, settings: 0
    macs: Callable = lambda arrays, settings: 0
    rules: Callable = lambda layer, spec: []
    unit_bytes: Callable = lambda arrays, settings, spec: 0
    pe_bytes: Callable = lambda arrays, settings, spec: 0
    atoms_per_core: int = 250
    codecs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for name in ("arrays", "settings", "codecs"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        try:
            json.dumps(dict(self.settings), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"layer kind {self.name!r}: setting defaults must be JSON values ({e})") from None


@dataclass(frozen=True)
class ProjectionKind:
    """One kind of synapses between two populations (:class:`s2jax.qnet.Projection`: ``dense``
    synapse rows; :class:`s2jax.qnet.Conv2DProjection`: a ``conv2d`` kernel), what the cost model,
    the mapper and the design rules ask of a projection (``proj`` is one projection of the kind):

    ``worst_events(proj)``: synaptic events per tick with every synapse active;
    ``macs(proj)``: MAC-array multiply-accumulates per tick;
    ``synapse_bytes(proj, spec) -> (posts, nbytes, fixed)``: the SRAM it takes on the PEs of its
    post population: ``nbytes[i]`` bytes stored with post neuron ``posts[i]`` (int64 arrays, indices
    may repeat) and ``fixed`` bytes on every PE holding a slice of the post population;
    ``rules(proj, spec) -> [(rule, value, limit, message), ...]``: its own design rules;
    ``mac_array``: the MAC array computes it every tick: populations of a neuron kind it may target
    are charged MACs, not synaptic events (:func:`s2jax.kinds.mac_target`);
    ``doc``: one line for listings.

    Which neuron kinds a projection kind may target is declared by the neuron kinds
    (:attr:`NeuronKind.projections`)."""

    name: str
    doc: str
    worst_events: Callable[[Any], int]
    macs: Callable[[Any], int]
    synapse_bytes: Callable
    rules: Callable = lambda proj, spec: []
    mac_array: bool = False


_KINDS: dict[str, NeuronKind] = {}
_BLOCKS: dict[str, Block] = {}
_LAYERS: dict[str, LayerKind] = {}
_PROJECTIONS: dict[str, ProjectionKind] = {}


def _registered_as(name: str) -> str | None:
    for what, table in (("neuron", _KINDS), ("layer", _LAYERS), ("projection", _PROJECTIONS)):
        if name in table:
            return what
    return None


def register(kind: NeuronKind | LayerKind | ProjectionKind, *, replace: bool = False
             ) -> NeuronKind | LayerKind | ProjectionKind:
    """Add ``kind`` (a neuron, layer or projection kind; names are unique across the three) to the
    registry (every module of the package reads kinds from here); with ``replace=True`` a kind of
    the same name is unregistered first. Kinds that name the same block must pass the same
    :class:`Block` object and agree on its inputs: the same synaptic channels and the same parameter
    classes (one state vector, one step, one parameter conversion for all). A neuron kind's
    ``projections`` must be registered projection kinds. Programs compiled before a kind is replaced
    keep the block they were compiled with. Returns the kind."""
    if not isinstance(kind, (NeuronKind, LayerKind, ProjectionKind)):
        raise ValueError(f"register takes a NeuronKind, LayerKind or ProjectionKind, got {type(kind).__name__}")
    if not isinstance(kind.name, str) or not kind.name.isidentifier():
        raise ValueError(f"a kind's name must be a non-empty identifier string, got {kind.name!r}")
    what = ("layer" if isinstance(kind, LayerKind) else "projection" if isinstance(kind, ProjectionKind)
            else "neuron")
    known_as = _registered_as(kind.name)
    if known_as is not None and known_as != what:
        raise ValueError(f"{kind.name!r} is already registered as a {known_as} kind")
    if isinstance(kind, LayerKind):
        if kind.name in _LAYERS and not replace:
            raise ValueError(f"a layer kind named {kind.name!r} is already registered")
        _LAYERS[kind.name] = kind
        return kind
    if isinstance(kind, ProjectionKind):
        if kind.name in _PROJECTIONS and not replace:
            raise ValueError(f"a projection kind named {kind.name!r} is already registered")
        _PROJECTIONS[kind.name] = kind
        return kind
    unknown = [p for p in kind.projections if p not in _PROJECTIONS]
    if unknown:
        raise ValueError(f"kind {kind.name!r}: unknown projection kind(s) {unknown}; known projection kinds: "
                         f"{list(_PROJECTIONS)}")
    if kind.name in _KINDS:
        if not replace:
            raise ValueError(f"a neuron kind named {kind.name!r} is already registered")
        unregister(kind.name)
    if kind.block is not None:
        known = _BLOCKS.get(kind.block.name)
        if known is not None and known is not kind.block:
            raise ValueError(f"kind {kind.name!r}: another block is already registered as {kind.block.name!r}")
        for other in _KINDS.values():
            if other.block is kind.block and (other.channels, dict(other.param_classes)) != (
                    kind.channels, dict(kind.param_classes)):
                raise ValueError(f"kind {kind.name!r}: block {kind.block.name!r} is shared with kind {other.name!r}, "
                                 f"which has other channels or parameter classes ({other.channels} channel(s), "
                                 f"{dict(other.param_classes)}); kinds of one block must agree")
        _BLOCKS.setdefault(kind.block.name, kind.block)
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (and its block when no other kind uses it); for tests and experiments. A
    projection kind that a registered neuron kind declares cannot be removed."""
    if not isinstance(name, str) or _registered_as(name) is None:
        raise ValueError(f"no kind named {name!r} is registered")
    if name in _LAYERS:
        del _LAYERS[name]
        return
    if name in _PROJECTIONS:
        users = [k.name for k in _KINDS.values() if name in k.projections]
        if users:
            raise ValueError(f"projection kind {name!r} is declared by neuron kinds {users}: unregister those first")
        del _PROJECTIONS[name]
        return
    kind = _KINDS.pop(name)
    if kind.block is not None and not any(k.block is kind.block for k in _KINDS.values()):
        del _BLOCKS[kind.block.name]


def get(name: str) -> NeuronKind:
    """The kind named ``name``; ``ValueError`` listing the known kinds otherwise."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        hint = f" ({name!r} is a layer kind: a qnet.Layer, not a Population)" if name in _LAYERS else ""
        raise ValueError(f"unknown neuron model {name!r}{hint}; known models: {list(_KINDS)}") from None


def get_layer(name: str) -> LayerKind:
    """The layer kind named ``name``; ``ValueError`` listing the known layer kinds otherwise."""
    try:
        return _LAYERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown layer kind {name!r}; known layer kinds: {list(_LAYERS)}") from None


def get_projection(name: str) -> ProjectionKind:
    """The projection kind named ``name``; ``ValueError`` listing the known projection kinds otherwise."""
    try:
        return _PROJECTIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown projection kind {name!r}; known projection kinds: {list(_PROJECTIONS)}") from None


def projection_names() -> tuple[str, ...]:
    """Every registered projection kind, in registration order."""
    return tuple(_PROJECTIONS)


def projection_targets(name: str) -> tuple[str, ...]:
    """The neuron kinds that projections of kind ``name`` may target (those that declare it), in
    registration order."""
    return tuple(k for k, v in _KINDS.items() if name in v.projections)


def layer_names() -> tuple[str, ...]:
    """Every registered layer kind, in registration order."""
    return tuple(_LAYERS)


def names() -> tuple[str, ...]:
    """Every registered kind, inputs first, in registration order."""
    return input_names() + neuron_names()


def neuron_names() -> tuple[str, ...]:
    return tuple(k for k, v in _KINDS.items() if not v.is_input)


def input_names() -> tuple[str, ...]:
    return tuple(k for k, v in _KINDS.items() if v.is_input)


def block(name: str) -> Block:
    return _BLOCKS[name]


def blocks() -> tuple[str, ...]:
    """Block names in registration order: the order of the chip model's neuron space."""
    return tuple(_BLOCKS)
