"""Latency and energy estimates from activity counts (a cost model, not a measurement).

Per tick and per PE (placements of :func:`~s2jax.hwmodel.mapping.map_to_cores`)::

    cycles = events * cycles_per_synaptic_event + neurons * cycles_per_neuron_update
             + macs / macs_per_pe
    latency per tick = max over PEs of cycles / pe_clock_hz        (PEs work in parallel)
    energy per tick  = events * energy_per_synaptic_event_j + updates * energy_per_neuron_update_j
                       + macs * energy_per_mac_j + PEs used * static_power_per_pe_w * tick_s

``events``: synaptic events (every delivered synapse, counted at the receiving population; from a
:class:`~s2jax.hwmodel.Trace` averaged over batch and ticks, or, without a trace, the worst
case: every synapse every tick, each projection's ``kind.worst_events``). A population's events
are shared among its PEs in proportion to their neurons. ``macs``: each projection's
``kind.macs`` (:mod:`s2jax.kinds.projections`). Populations of a kind that a MAC-array projection
kind may target (``lif_conv2d``: ``kinds.mac_target``) are charged MACs instead of events: the MAC
array computes the whole convolution every tick (``C_out * H_out * W_out * C_in * kH * kW``).
Every constant is a ``ChipSpec`` field tagged A with its source: these are estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2jax.hwmodel.mapping import Mapping, map_to_cores
from s2jax.qnet import Conv2DProjection, Network
from s2jax import kinds
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["CostEstimate", "estimate_cost"]


@dataclass(frozen=True)
class CostEstimate:
    """Per-tick activity and the cost model's latency and energy (all per sample)."""

    synaptic_events_per_tick: float
    neuron_updates_per_tick: int
    macs_per_tick: int
    pes: int
    chips: int
    latency_per_tick_s: float
    energy_per_tick_j: float
    tick_s: float
    worst_case: bool
    per_population: dict  # name -> {"events": float, "updates": int, "macs": int}

    @property
    def real_time(self) -> bool:
        """Whether the busiest PE finishes a tick within the tick's wall time."""
        return self.latency_per_tick_s <= self.tick_s

    @property
    def power_w(self) -> float:
        return self.energy_per_tick_j / self.tick_s

    def summary(self) -> str:
        basis = "worst case (every synapse every tick)" if self.worst_case else "recorded activity"
        lines = [
            f"cost estimate per tick, {basis}; constants are ChipSpec assumptions (estimates):",
            f"  synaptic events {self.synaptic_events_per_tick:,.1f}, neuron updates {self.neuron_updates_per_tick:,}, "
            f"MACs {self.macs_per_tick:,}",
            f"  {self.pes} PE(s) on {self.chips} chip(s); busiest PE {1e6 * self.latency_per_tick_s:,.1f} us per tick "
            f"({'within' if self.real_time else 'OVER'} the {1e3 * self.tick_s:g} ms tick)",
            f"  energy {1e9 * self.energy_per_tick_j:,.2f} nJ per tick, {1e3 * self.power_w:,.3f} mW",
        ]
        return "\n".join(lines)


def _conv_macs(proj: Conv2DProjection) -> int:
    """MAC-array multiply-accumulates per tick of a conv projection (its kind's ``macs``)."""
    return proj.kind.macs(proj)


def _trace_events(trace, names: list, what: str) -> np.ndarray:
    """Mean synaptic events per tick of each node of ``names`` in ``trace`` (which must be of them)."""
    if tuple(trace.names) != tuple(names):
        raise ValueError(f"the trace is of {list(trace.names)}, the network has {what} {names}")
    ev = np.asarray(trace.synaptic_events, np.float64)
    return ev.reshape(-1, ev.shape[-1]).mean(axis=0)


def _layer_cost(net: Network, trace, spec: ChipSpec, mapping: Mapping) -> CostEstimate:
    """The cost of a network of layers, from the counts each layer's kind declares."""
    if net.populations:
        raise ValueError(f"network {net.name!r} holds both populations and layers; the cost model takes one or "
                         f"the other (mixed networks are not supported yet)")
    if trace is not None:
        events = _trace_events(trace, [layer.name for layer in net.layers], "layers")
    else:
        events = [layer.kind.synapses(layer.arrays, layer.settings) for layer in net.layers]
    per = {layer.name: {"events": float(e), "updates": int(layer.kind.updates(layer.arrays, layer.settings)),
                        "macs": int(layer.kind.macs(layer.arrays, layer.settings))}
           for layer, e in zip(net.layers, events)}
    return _total(per, {layer.name: layer.size for layer in net.layers}, mapping, spec, trace is None)


def _total(per: dict, sizes: dict, mapping: Mapping, spec: ChipSpec, worst_case: bool) -> CostEstimate:
    """Busiest PE, energy and totals of per-node counts ``{name: {"events", "updates", "macs"}}``."""
    worst = 0.0
    for p in mapping.placements:
        share = p.size / sizes[p.population]
        a = per[p.population]
        cycles = (share * a["events"] * spec.cycles_per_synaptic_event
                  + (p.size if a["updates"] else 0) * spec.cycles_per_neuron_update
                  + share * a["macs"] / spec.macs_per_pe)
        worst = max(worst, cycles / spec.pe_clock_hz)
    events = sum(a["events"] for a in per.values())
    updates = sum(a["updates"] for a in per.values())
    macs = sum(a["macs"] for a in per.values())
    energy = (events * spec.energy_per_synaptic_event_j + updates * spec.energy_per_neuron_update_j
              + macs * spec.energy_per_mac_j + mapping.pes * spec.static_power_per_pe_w * spec.tick_s)
    return CostEstimate(float(events), int(updates), int(macs), mapping.pes, mapping.chips, float(worst),
                        float(energy), spec.tick_s, worst_case, per)


def estimate_cost(net: Network, trace=None, spec: ChipSpec = SPINNAKER2, mapping: Mapping | None = None
                  ) -> CostEstimate:
    """Cost of one tick of ``net`` (per sample), from ``trace`` (a ``Trace`` of ``hwmodel.run``)
    or, when ``trace`` is None, for the worst case of every synapse active every tick. Sizes are
    checked by :func:`~s2jax.hwmodel.mapping.map_to_cores` before anything is allocated."""
    mapping = mapping or map_to_cores(net, spec)
    if net.layers:
        return _layer_cost(net, trace, spec, mapping)
    names = [p.name for p in net.populations]
    if trace is not None:
        events = _trace_events(trace, names, "populations")
    else:
        events = np.zeros(len(names))
        for proj in net.projections:
            events[names.index(proj.post.name)] += proj.kind.worst_events(proj)
    macs = {name: 0 for name in names}
    for proj in net.projections:
        macs[proj.post.name] += proj.kind.macs(proj)
    per_pop = {}
    for k, pop in enumerate(net.populations):
        per_pop[pop.name] = {"events": 0.0 if kinds.mac_target(pop.neuron_model) else float(events[k]),
                             "updates": 0 if kinds.get(pop.neuron_model).is_input else pop.size,
                             "macs": macs[pop.name]}

    sizes = {pop.name: pop.size for pop in net.populations}
    return _total(per_pop, sizes, mapping, spec, trace is None)
