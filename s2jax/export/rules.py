"""Design rules: can the chip run this network? One small function per rule.

Every rule takes the network (or, for the graph rules, a NIR graph) and the ``ChipSpec`` and
returns a list of :class:`Violation`, each naming where (population, projection or node), the
offending value and the limit. :func:`check` runs them all and returns every violation;
:func:`require_deployable` raises one :class:`DesignRuleError` listing all of them.

``qnet`` already validates each object when it is built, but arrays can be edited afterwards,
a network may have been built against another ``ChipSpec``, and resource limits (SRAM per PE,
PEs, chips, routing entries) only show once the whole network is mapped: ``check`` is the one
place that looks at everything against one spec.

Rules (name: what it checks):

- ``weight_range``: integer weights within ``spec.weight_range(post model)`` (projections) and
  ``spec.conv_weight_range`` (conv kernels); integral values only.
- ``delays``: delays 0..``max_delay`` on delay models, 0 elsewhere.
- ``exact_input_sum``: the largest possible ``|input sum|`` of a neuron in one tick, ``max(sum of
  positive weights, sum of |negative weights|)`` over its synapses (conv: pooled inputs times
  ``|taps|``), stays below ``exact_input_sum_bound`` (2^24) so the float32 profile adds it exactly.
- ``mac_accumulator`` (the rules of each projection's kind, :mod:`s2jax.kinds.projections`): a
  conv's largest ``|accumulator|`` (``C_in * kH * kW * pool_y * pool_x * max|w|``) fits the
  signed ``mla_accumulator_bits`` accumulator of the MAC array.
- ``population_size``: every population size is an integer in [1, ``qnet.MAX_POPULATION_SIZE``]
  (checked first: when one is not, :func:`check` reports only these, since every other rule and
  the mapping read the sizes).
- ``parameters``: each population's parameters (or spike ticks) still pass the checks of its
  constructor (types, one value or one per neuron, finite), after any edit.
- ``decay_range``: ``alpha_decay``, ``exc_decay``, ``inh_decay`` within [0, 1] (``qnet.DECAY_RANGE``),
  on the float32 values the chip stores; the same check (:func:`s2jax.qnet.decay_violations`)
  makes the fixed-point profile refuse a network, so both agree on what the chip can run.
- ``atoms_per_core``: ``set_max_atoms_per_core`` is a positive integer not above the model's limit.
- ``sram_per_pe``: every PE's neuron and synapse bytes fit ``sram_data_bytes_per_pe``.
- ``chips``: the PEs needed fit the chips available (``chips=``, one by default); a network needing
  more PEs than the mapper places (``mapping.MAX_MAPPED_PES``) is reported here without being mapped.
- ``routing_entries``: each chip's routing entries fit ``routing_entries_per_chip``.
- ``conv_target``: every projection targets a population whose kind declares its projection kind
  (``NeuronKind.projections``): conv projections only into ``lif_conv2d`` populations (or another
  kind that declares ``conv2d``).
- layer rules (``layer_rules``): each :class:`~s2jax.qnet.Layer` is checked by its kind's own rules
  (``egru_weight_range``, ``egru_exponent_range``, ``egru_threshold_range``, ``egru_accumulator``,
  ``egru_finite``; ``mac_accumulator`` for the MAC-array layers: :mod:`s2jax.kinds.egru`,
  :mod:`s2jax.kinds.mla`); layers are mapped by their kind's SRAM bytes per unit (``sram_per_pe``).
- ``projection_endpoints``: projections connect populations of the network, pre and post indices
  inside them, and only neuron models receive synapses.
- graph rules (``nir_node_type``, ``nir_consecutive_weights``, ``nir_unweighted_edge``): node types
  with no chip mapping, two weight nodes in a row, and neuron-to-neuron (or input-to-neuron) edges
  without weights, which py-spinnaker2's NIR import rejects.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from s2jax.hwmodel.mapping import MAX_MAPPED_PES, Mapping, MappingSizeError, map_to_cores
from s2jax.qnet import (DECAY_RANGE, MAX_POPULATION_SIZE, Conv2DProjection, Network, Projection, decay_violations,
                        parameter_error, population_size_error)
from s2jax import kinds
from s2jax.export import nir as nir_nodes
from s2jax.kinds.projections import targets_text
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["Violation", "DesignRuleError", "check", "require_deployable", "RULES", "MAPPING_BLOCKERS",
           "check_nir_graph"]


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``rule`` name, ``where`` (population / projection / node), the offending
    ``value``, the ``limit``, and a one-line ``message`` naming all three."""

    rule: str
    where: str
    value: object
    limit: object
    message: str

    def __str__(self):
        return f"[{self.rule}] {self.message}"


class DesignRuleError(ValueError):
    """Raised by :func:`require_deployable`; ``violations`` holds every broken rule."""

    def __init__(self, violations):
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"the chip cannot run this network ({len(self.violations)} violation(s)):\n{lines}")


def _proj_name(proj) -> str:
    kind = "conv projection" if isinstance(proj, Conv2DProjection) else "projection"
    return f"{kind} {proj.pre.name!r} -> {proj.post.name!r}"


# --- population rules --------------------------------------------------------------------------------


def population_size(net: Network, spec: ChipSpec) -> list[Violation]:
    out = []
    for pop in net.populations:
        error = population_size_error(pop)
        if error:
            out.append(Violation("population_size", f"population {pop.name!r}", pop.size,
                                 (1, MAX_POPULATION_SIZE), error))
    return out


def neuron_model(net: Network, spec: ChipSpec) -> list[Violation]:
    """Every population's ``neuron_model`` is a registered kind (a name edited after construction is
    reported here; the other rules read the kind)."""
    out = []
    for pop in net.populations:
        if not isinstance(pop.neuron_model, str) or pop.neuron_model not in kinds.names():
            out.append(Violation("neuron_model", f"population {pop.name!r}", pop.neuron_model, list(kinds.names()),
                                 f"population {pop.name!r}: unknown neuron model {pop.neuron_model!r}; known "
                                 f"models: {list(kinds.names())}"))
    return out


def parameters(net: Network, spec: ChipSpec) -> list[Violation]:
    out = []
    for pop in net.populations:
        error = parameter_error(pop)
        if error:
            out.append(Violation("parameters", f"population {pop.name!r}", None, "qnet's parameter checks", error))
    return out


def decay_range(net: Network, spec: ChipSpec) -> list[Violation]:
    out = []
    for pop in net.populations:
        if pop.neuron_model in kinds.neuron_names():
            out += [Violation("decay_range", f"population {pop.name!r}", value, DECAY_RANGE, message)
                    for _, value, message in decay_violations(pop)]
    return out


# --- synapse rules -----------------------------------------------------------------------------------


def weight_range(net: Network, spec: ChipSpec) -> list[Violation]:
    out = []
    for proj in net.projections:
        where = _proj_name(proj)
        w = np.asarray(proj.weights)
        if isinstance(proj, Conv2DProjection):
            (lo, hi), what = spec.conv_weight_range, "conv kernel"
        elif proj.post.neuron_model in kinds.neuron_names():
            (lo, hi), what = spec.weight_range(proj.post.neuron_model), f"model {proj.post.neuron_model!r}"
        else:
            continue  # projection_endpoints reports it
        bad = w[~np.isfinite(w)]
        if bad.size:
            out.append(Violation("weight_range", where, float(bad[0]), "a finite integer",
                                 f"{where}: weight {bad[0]} is not finite"))
            w = np.where(np.isfinite(w), w, 0)
        frac = w[np.mod(w, 1) != 0]
        if frac.size:
            out.append(Violation("weight_range", where, float(frac[0]), "an integer",
                                 f"{where}: weight {frac[0]} is not an integer"))
        bad = w[(w < lo) | (w > hi)]
        if bad.size:
            v = int(bad[np.argmax(np.abs(bad))])
            out.append(Violation("weight_range", where, v, (lo, hi),
                                 f"{where}: weight {v} outside [{lo}, {hi}] of {what}"))
    return out


def delays(net: Network, spec: ChipSpec) -> list[Violation]:
    out = []
    for proj in net.projections:
        if isinstance(proj, Conv2DProjection) or not len(proj.delays):
            continue
        where, model = _proj_name(proj), proj.post.neuron_model
        d = np.asarray(proj.delays)
        if spec.has_delays(model):
            bad = d[(d < 0) | (d > spec.max_delay)]
            if bad.size:
                out.append(Violation("delays", where, int(bad[0]), (0, spec.max_delay),
                                     f"{where}: delay {int(bad[0])} outside [0, {spec.max_delay}] of model {model!r}"))
        elif np.any(d != 0):
            v = int(d[d != 0][0])
            out.append(Violation("delays", where, v, 0,
                                 f"{where}: delay {v} on model {model!r}, which has no delays (limit 0); "
                                 f"delay models: {', '.join(spec.delay_models)}"))
    return out


def _conv_bound(proj: Conv2DProjection) -> int:
    """Largest |sum| one conv output can receive in a tick: every pooled input at its maximum."""
    cp, w = proj.conv_params, np.abs(np.asarray(proj.weights, np.int64))
    pooled_max = cp["pool_x"] * cp["pool_y"]
    return int(w.sum(axis=(0, 2, 3)).max()) * pooled_max if w.size else 0


def exact_input_sum(net: Network, spec: ChipSpec) -> list[Violation]:
    out = []
    for pop in net.populations:
        if pop.neuron_model not in kinds.neuron_names() or population_size_error(pop):
            continue
        posts, ws = [], []  # incoming synapses: summed per receiving neuron (memory per synapse, not per neuron)
        conv = 0
        for proj in net.projections:
            if proj.post is not pop:
                continue
            if isinstance(proj, Conv2DProjection):
                conv += _conv_bound(proj)
                continue
            w = np.asarray(proj.weights, np.float64)
            w = np.where(np.isfinite(w), w, 0).astype(np.int64)  # weight_range reports non-finite ones
            post = np.asarray(proj.post_idx, np.int64)
            ok = (post >= 0) & (post < pop.size)
            posts.append(post[ok])
            ws.append(w[ok])
        post = np.concatenate(posts) if posts else np.zeros(0, np.int64)
        w = np.concatenate(ws) if ws else np.zeros(0, np.int64)
        _, neuron = np.unique(post, return_inverse=True)
        pos = np.zeros(neuron.size, np.int64)
        neg = np.zeros(neuron.size, np.int64)
        np.add.at(pos, neuron, np.where(w > 0, w, 0))
        np.add.at(neg, neuron, np.where(w < 0, -w, 0))
        bound = int(max(pos.max(initial=0), neg.max(initial=0))) + conv
        if bound >= spec.exact_input_sum_bound:
            out.append(Violation(
                "exact_input_sum", f"population {pop.name!r}", bound, spec.exact_input_sum_bound,
                f"population {pop.name!r}: largest possible input sum per tick {bound:,} reaches "
                f"{spec.exact_input_sum_bound:,}, above which float32 cannot hold it exactly"))
    return out


def mac_accumulator(net: Network, spec: ChipSpec) -> list[Violation]:
    """Every projection's own rules, as its kind declares them (``conv2d``: ``mac_accumulator``)."""
    out = []
    for proj in net.projections:
        for rule, value, limit, message in proj.kind.rules(proj, spec):
            out.append(Violation(rule, _proj_name(proj), value, limit, message))
    return out


def layer_rules(net: Network, spec: ChipSpec) -> list[Violation]:
    """Every layer's own design rules, as its kind declares them (:class:`s2jax.kinds.LayerKind`), and
    ``layer_network``: a network is of populations or of layers (the chip model, the cost model and
    the file formats take one or the other), and its input layers read one input."""
    out = []
    if net.layers and net.populations:
        where = f"network {net.name!r}"
        out.append(Violation("layer_network", where, "populations and layers", "one or the other",
                             f"{where}: holds both populations and layers; a network of one or the other is "
                             f"supported"))
    firsts = [layer for layer in net.layers if layer.pre is None]
    for layer in firsts[1:]:
        want = (firsts[0].in_shape, firsts[0].input_dtype)
        if (layer.in_shape, layer.input_dtype) != want:
            where = f"layer {layer.name!r}"
            out.append(Violation("layer_network", where, (layer.in_shape, layer.input_dtype.name),
                                 (want[0], want[1].name), f"{where}: reads the network input as {layer.in_shape} "
                                 f"{layer.input_dtype.name}, layer {firsts[0].name!r} as {want[0]} {want[1].name}"))
    for layer in net.layers:
        for rule, value, limit, message in layer.kind.rules(layer, spec):
            out.append(Violation(rule, f"layer {layer.name!r}", value, limit, message))
    return out


def conv_target(net: Network, spec: ChipSpec) -> list[Violation]:
    """Each projection's post kind declares the projection's kind (``limit``: the kinds that do,
    comma-separated). Models that receive no synapses at all are reported by ``projection_endpoints``."""
    out = []
    for proj in net.projections:
        model, kind = proj.post.neuron_model, proj.kind.name
        if model not in kinds.neuron_names() or kind in kinds.get(model).projections:
            continue
        where = _proj_name(proj)
        out.append(Violation("conv_target", where, model, ", ".join(kinds.projection_targets(kind)),
                             f"{where}: a {kind} projection must target a {targets_text(kind)} population, "
                             f"not {model!r}"))
    return out


def projection_endpoints(net: Network, spec: ChipSpec) -> list[Violation]:
    out = []
    for proj in net.projections:
        where = _proj_name(proj)
        for pop in (proj.pre, proj.post):
            if not any(pop is p for p in net.populations):
                out.append(Violation("projection_endpoints", where, pop.name, "a population of the network",
                                     f"{where}: population {pop.name!r} is not part of network {net.name!r}"))
        if proj.post.neuron_model not in kinds.neuron_names():
            out.append(Violation("projection_endpoints", where, proj.post.neuron_model, list(kinds.neuron_names()),
                                 f"{where}: population {proj.post.name!r} of model {proj.post.neuron_model!r} "
                                 f"cannot receive synapses"))
        if isinstance(proj, Projection):
            for idx, pop, label in ((proj.pre_idx, proj.pre, "pre"), (proj.post_idx, proj.post, "post")):
                idx = np.asarray(idx)
                bad = idx[(idx < 0) | (idx >= pop.size)]
                if bad.size:
                    out.append(Violation("projection_endpoints", where, int(bad[0]), (0, pop.size - 1),
                                         f"{where}: {label} index {int(bad[0])} outside [0, {pop.size - 1}] "
                                         f"of population {pop.name!r}"))
    return out


# --- resource rules (read the mapping) -----------------------------------------------------------------


def atoms_per_core(net: Network, spec: ChipSpec) -> list[Violation]:
    out = []
    for pop in net.populations:
        limit = spec.atoms_per_core(pop.neuron_model)
        n = pop.max_atoms_per_core
        if n is not None and (not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1):
            out.append(Violation("atoms_per_core", f"population {pop.name!r}", n, (1, limit),
                                 f"population {pop.name!r}: max atoms per core {n!r} is not a positive integer"))
        elif n is not None and n > limit:
            out.append(Violation("atoms_per_core", f"population {pop.name!r}", pop.max_atoms_per_core, limit,
                                 f"population {pop.name!r}: max atoms per core {pop.max_atoms_per_core} exceeds "
                                 f"{limit} for model {pop.neuron_model!r}"))
    return out


def sram_per_pe(net: Network, spec: ChipSpec, mapping: Mapping) -> list[Violation]:
    out = []
    limit = spec.sram_data_bytes_per_pe
    layers = {layer.name for layer in net.layers}
    for p in mapping.placements:
        if p.sram_bytes > limit:
            where = f"{'layer' if p.population in layers else 'population'} {p.population!r}"
            out.append(Violation(
                "sram_per_pe", where, p.sram_bytes, limit,
                f"{where}: neurons {p.start}..{p.stop - 1} on chip {p.chip} PE {p.pe} need {p.sram_bytes:,} bytes "
                f"({p.neuron_bytes:,} neuron + {p.synapse_bytes:,} synapse), over the {limit:,} bytes of a PE"))
    return out


def chips(net: Network, spec: ChipSpec, mapping: Mapping, available: int = 1) -> list[Violation]:
    if mapping.chips <= available:
        return []
    return [Violation("chips", f"network {net.name!r}", mapping.chips, available,
                      f"network {net.name!r}: needs {mapping.pes} PEs on {mapping.chips} chips, "
                      f"{available} chip(s) of {spec.pes_per_chip} PEs available")]


def routing_entries(net: Network, spec: ChipSpec, mapping: Mapping) -> list[Violation]:
    out = []
    for chip, n in enumerate(mapping.routing_entries):
        if n > spec.routing_entries_per_chip:
            out.append(Violation("routing_entries", f"chip {chip}", n, spec.routing_entries_per_chip,
                                 f"chip {chip}: {n:,} routing entries exceed the router's "
                                 f"{spec.routing_entries_per_chip:,}"))
    return out


NETWORK_RULES = (population_size, parameters, decay_range, weight_range, delays, exact_input_sum, mac_accumulator,
                 conv_target, projection_endpoints, atoms_per_core, layer_rules)
MAPPING_RULES = (sram_per_pe, routing_entries)
RULES = NETWORK_RULES[:1] + (neuron_model,) + NETWORK_RULES[1:] + MAPPING_RULES + (chips,)
MAPPING_BLOCKERS = ("population_size", "neuron_model", "projection_endpoints")
"""Rules whose violations leave the network unmappable: :func:`check` then skips the mapping (and
so should a caller that maps the network itself, e.g. to print a summary)."""


def check(net, spec: ChipSpec = SPINNAKER2, *, chips_available: int = 1, mapping: Mapping | None = None
          ) -> list[Violation]:
    """Every design-rule violation of ``net`` (a ``qnet.Network`` or a ``nir.NIRGraph``) against
    ``spec``; an empty list means the chip can run it. ``chips_available``: chips the network may
    span (a 48-chip board: 48)."""
    if not isinstance(net, Network):
        return check_nir_graph(net)
    out = population_size(net, spec) + neuron_model(net, spec)
    if out:
        return out  # every other rule reads the sizes and the kinds
    for rule in NETWORK_RULES[1:]:
        out += rule(net, spec)
    if any(v.rule in MAPPING_BLOCKERS for v in out):
        return out  # the mapping needs valid sizes and endpoints
    try:
        mapping = mapping or map_to_cores(net, spec)
    except MappingSizeError as e:
        if e.pes is None and any(v.rule == "atoms_per_core" for v in out):
            return out  # an invalid max atoms per core, already reported
        return out + [Violation("chips", f"network {net.name!r}", e.pes, MAX_MAPPED_PES, str(e))]
    for rule in MAPPING_RULES:
        out += rule(net, spec, mapping)
    out += chips(net, spec, mapping, chips_available)
    return out


def require_deployable(net, spec: ChipSpec = SPINNAKER2, **kwargs) -> None:
    """Raise :class:`DesignRuleError` listing every violation, if there is any."""
    violations = check(net, spec, **kwargs)
    if violations:
        raise DesignRuleError(violations)


# --- NIR graph rules -------------------------------------------------------------------------------------

# the node families of s2jax.export.nir (one definition), as type names; the neuron node types are
# those the registered kinds' NIR codecs write or read, looked up at each check
_WEIGHT_NODES = tuple(c.__name__ for c in nir_nodes.WEIGHT_NODES)
_PASS_NODES = tuple(c.__name__ for c in nir_nodes.SHAPE_NODES)  # shape only: they pass the weight-ness along


def check_nir_graph(graph) -> list[Violation]:
    """The graph-level rules of py-spinnaker2's NIR import: no two weight nodes in a row (pooling
    and flatten in between do not count) and no neuron-to-neuron edge without a weight node."""
    try:
        nodes, edges = graph.nodes, graph.edges
    except AttributeError:
        raise TypeError(f"check needs a qnet.Network or a nir.NIRGraph, got {type(graph).__name__}") from None
    kind = {name: type(node).__name__ for name, node in nodes.items()}
    neuron_types = tuple(c.__name__ for c in nir_nodes.neuron_nodes())
    supported = tuple(c.__name__ for c in nir_nodes.supported_nodes())
    preds = {name: [] for name in nodes}
    for src, dst in edges:
        if dst in preds:
            preds[dst].append(src)

    def source_kind(name, seen=()):
        """The kind of the nearest non-pass-through node feeding ``name``'s input."""
        kinds = set()
        for p in preds.get(name, []):
            if p in seen:
                continue
            k = kind.get(p, "Input")
            kinds |= source_kind(p, (*seen, p)) if k in _PASS_NODES else {k}
        return kinds

    out = []
    for name, k in kind.items():
        if k not in supported:
            out.append(Violation("nir_node_type", f"node {name!r}", k, list(supported),
                                 f"node {name!r}: {k} has no SpiNNaker2 mapping; supported: {', '.join(supported)}"))
    for name, k in kind.items():
        srcs = source_kind(name)
        if k in _WEIGHT_NODES and srcs & set(_WEIGHT_NODES):
            out.append(Violation("nir_consecutive_weights", f"node {name!r}", k, "a neuron node in between",
                                 f"node {name!r} ({k}) follows another weight node; the chip needs a neuron "
                                 f"population between two weight layers (fold them into one)"))
        if k in neuron_types and srcs & {*neuron_types, "Input"}:
            out.append(Violation("nir_unweighted_edge", f"node {name!r}", k, "a weight node in between",
                                 f"node {name!r} ({k}) is fed by a neuron or input node without weights; the "
                                 f"chip connects populations only through projections"))
    return out
