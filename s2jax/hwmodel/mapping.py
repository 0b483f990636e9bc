"""Place a :class:`~s2jax.qnet.Network` onto PEs and chips: slices, SRAM bytes and routing entries.

Rules (``ChipSpec`` fields in brackets; all of them are assumptions, tag A):

1. Populations, in network order, are cut into consecutive slices of at most
   ``pop.max_atoms_per_core`` neurons when the user set it (``set_max_atoms_per_core``), else
   ``spec.atoms_per_core(model)`` [``max_atoms_per_core``].
2. A slice is shrunk, one neuron at a time in effect (down to one neuron, never below), until its
   SRAM fits ``spec.sram_data_bytes_per_pe``. The SRAM of a slice of neurons ``[a, b)`` is::

       neuron_bytes  = (b - a) * spec.state_bytes(model)                 # neuron models
                     = (neuron, tick) entries in [a, b) * spike_time_bytes   # spike_list sources
       synapse_bytes = incoming Projection rows into [a, b) * synapse_word_bytes
                     + per Conv2DProjection into the population:
                       C_in * C_out * kH * kW (the int8 kernel) + CONV_PARAM_BYTES

   Every PE holding a slice of a conv population stores the whole kernel and its parameters.
3. PEs are filled in order, one slice per PE: placement ``i`` is global PE ``i``, on chip
   ``i // spec.pes_per_chip``, PE ``i % spec.pes_per_chip``.
4. Routing entries (``routing_entry_rule == "per_source_pe_and_chip"``): a *target* of a source
   slice S is a placement holding the post neuron of a synapse whose pre neuron is in S (every
   ``Projection`` row counts, weight 0 included; a conv pre neuron targets every output neuron,
   all output channels, whose receptive field covers its pooled position, whatever the kernel
   values). The router of chip ``c`` holds one entry for S when ``c`` holds at least one target of S
   (that entry delivers to S's targets on ``c``), plus one entry on S's own chip when S has targets
   but none on its own chip (that entry only forwards the packet off chip). Intermediate chips
   of a multi-hop path are not counted (default routing is assumed to carry packets through them).

:func:`map_to_cores` never raises because a network is too big for the chip: a slice over SRAM,
more chips than a board has, or a chip over ``routing_entries_per_chip`` entries are reported by
the design rules (:mod:`s2jax.export`), which read the :class:`Mapping`.

Example::

    >>> from s2jax import qnet as snn
    >>> from s2jax.hwmodel.mapping import map_to_cores
    >>> stim = snn.Population(300, "spike_list", name="in")
    >>> hid = snn.Population(600, "lif", name="hid")
    >>> net = snn.Network().add(stim, hid, snn.Projection(stim, hid, [[0, 599, 3, 1]]))
    >>> m = map_to_cores(net)
    >>> [(p.population, p.start, p.stop, p.chip, p.pe) for p in m.placements]
    [('in', 0, 300, 0, 0), ('hid', 0, 250, 0, 1), ('hid', 250, 500, 0, 2), ('hid', 500, 600, 0, 3)]
    >>> m.routing_entries, m.pes, m.chips
    ((1,), 4, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2jax.qnet import CONV_KEYS, Conv2DProjection, Network, Population
from s2jax.spec import INPUT_MODELS, SPINNAKER2, ChipSpec

__all__ = ["CONV_PARAM_BYTES", "Mapping", "Placement", "Route", "map_to_cores"]

CONV_PARAM_BYTES = 4 * (4 + len(CONV_KEYS))
"""SRAM bytes of one conv's parameters on a PE: one 32-bit word for each of C_in, C_out, kH, kW
and each ``conv_params`` key (in_height, in_width, stride_x/y, pool_x/y, pad_top/bottom/left/right)."""


@dataclass(frozen=True)
class Placement:
    """One slice ``[start, stop)`` of one population on one PE, with its SRAM use in bytes."""

    population: str
    start: int
    stop: int
    chip: int
    pe: int
    neuron_bytes: int
    synapse_bytes: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def sram_bytes(self) -> int:
        return self.neuron_bytes + self.synapse_bytes


@dataclass(frozen=True)
class Route:
    """One routing entry: the router of ``chip`` handles packets of placement ``source``.

    ``targets``: indices (into ``Mapping.placements``) of the receiving placements on ``chip``;
    empty for the entry on the source's own chip that only forwards off chip.
    """

    chip: int
    source: int
    targets: tuple[int, ...]


@dataclass(frozen=True)
class Mapping:
    """Where every neuron of a network lives, and what that costs in SRAM and routing entries.

    ``placements`` in PE order (placement ``i`` is global PE ``i``); ``routing_entries``: entries
    per chip (``len == chips``); ``models``: ``(population name, neuron model)`` in network order;
    ``routes``: the routing entries themselves, ordered by source then chip.
    """

    placements: tuple[Placement, ...]
    routing_entries: tuple[int, ...]
    spec: ChipSpec
    models: tuple[tuple[str, str], ...] = ()
    routes: tuple[Route, ...] = ()

    @property
    def pes(self) -> int:
        """PEs used in total (one per placement)."""
        return len(self.placements)

    @property
    def chips(self) -> int:
        """Chips needed to hold every placement."""
        return self.placements[-1].chip + 1 if self.placements else 0

    def of(self, population: str) -> tuple[Placement, ...]:
        """The placements of one population, in neuron order."""
        out = tuple(p for p in self.placements if p.population == population)
        if not out:
            raise KeyError(f"the mapping has no population {population!r}; "
                           f"populations: {[name for name, _ in self.models]}")
        return out

    def summary(self) -> str:
        """A text table: one line per population, then the totals."""
        rows = [("population", "model", "neurons", "PEs", "max SRAM bytes/PE")]
        names = [n for n, _ in self.models] or list(dict.fromkeys(p.population for p in self.placements))
        model = dict(self.models)
        for name in names:
            pls = [p for p in self.placements if p.population == name]
            rows.append((str(name), model.get(name, "?"), str(sum(p.size for p in pls)), str(len(pls)),
                         str(max(p.sram_bytes for p in pls))))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        fmt = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(r, widths)))
        lines = [fmt(rows[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows[1:]]
        lines.append(
            f"total: {self.pes} PEs on {self.chips} chip(s) ({self.spec.pes_per_chip} PEs, "
            f"{self.spec.sram_data_bytes_per_pe} data bytes per PE); routing entries per chip: "
            f"max {max(self.routing_entries, default=0)} of {self.spec.routing_entries_per_chip}"
        )
        return "\n".join(lines)


def _slice_cap(pop: Population, spec: ChipSpec) -> int:
    return pop.max_atoms_per_core if pop.max_atoms_per_core is not None else spec.atoms_per_core(pop.neuron_model)


def _per_neuron_bytes(net: Network, pop: Population, spec: ChipSpec) -> tuple[np.ndarray, np.ndarray, int]:
    """``(neuron_bytes, synapse_bytes)`` of every neuron of ``pop`` and the fixed bytes of each PE."""
    if pop.neuron_model in INPUT_MODELS:
        entries = np.zeros(pop.size, np.int64)
        for idx, ticks in pop.params.items():
            entries[idx] = len(ticks)
        return entries * spec.spike_time_bytes, np.zeros(pop.size, np.int64), 0
    words = np.zeros(pop.size, np.int64)
    fixed = 0
    for proj in net.projections:
        if proj.post is not pop:
            continue
        if isinstance(proj, Conv2DProjection):
            fixed += proj.weights.size + CONV_PARAM_BYTES
        else:
            words += np.bincount(proj.post_idx, minlength=pop.size)
    neuron = np.full(pop.size, spec.state_bytes(pop.neuron_model), np.int64)
    return neuron, words * spec.synapse_word_bytes, fixed


def _slices(pop: Population, neuron: np.ndarray, synapse: np.ndarray, fixed: int, spec: ChipSpec):
    """Consecutive ``(start, stop, neuron_bytes, synapse_bytes)`` slices of one population."""
    cap = _slice_cap(pop, spec)
    cum_n = np.concatenate([[0], np.cumsum(neuron)])
    cum_s = np.concatenate([[0], np.cumsum(synapse)])
    cum = cum_n + cum_s
    out, start = [], 0
    while start < pop.size:
        stop = min(start + cap, pop.size)
        # largest stop whose slice fits: cum[stop] - cum[start] + fixed <= limit (cum is non-decreasing)
        budget = cum[start] + spec.sram_data_bytes_per_pe - fixed
        fit = int(np.searchsorted(cum, budget, side="right")) - 1
        stop = max(start + 1, min(stop, fit))
        out.append((start, stop, int(cum_n[stop] - cum_n[start]), int(cum_s[stop] - cum_s[start]) + fixed))
        start = stop
    return out


def _conv_pairs(proj: Conv2DProjection, pre_starts: np.ndarray, post_starts: np.ndarray):
    """``(pre slice, post slice)`` pairs (local slice numbers) connected by a conv."""
    cp = proj.conv_params
    c_in, c_out, kh, kw = proj.weights.shape
    h, w = cp["in_height"], cp["in_width"]
    hp, wp = h // cp["pool_y"], w // cp["pool_x"]
    ho, wo = proj.out_height, proj.out_width
    # ry[py, oy]: pooled row py lies in the receptive field of output row oy (the same for columns)
    ry = np.arange(hp)[:, None] + cp["pad_top"] - np.arange(ho)[None, :] * cp["stride_y"]
    rx = np.arange(wp)[:, None] + cp["pad_left"] - np.arange(wo)[None, :] * cp["stride_x"]
    ry = ((ry >= 0) & (ry < kh)).astype(np.int32)
    rx = ((rx >= 0) & (rx < kw)).astype(np.int32)
    pairs = []
    bounds = np.append(pre_starts, proj.pre.size)
    for s in range(len(pre_starts)):
        n = np.arange(bounds[s], bounds[s + 1])
        py, px = (n // w) % h // cp["pool_y"], n % w // cp["pool_x"]
        ok = (py < hp) & (px < wp)
        if not ok.any():
            continue
        reached = np.flatnonzero((ry[py[ok]].T @ rx[px[ok]]) > 0)  # positions oy * wo + ox
        if reached.size == 0:
            continue
        post = (np.arange(c_out)[:, None] * (ho * wo) + reached[None, :]).reshape(-1)
        for d in np.unique(np.searchsorted(post_starts, post, side="right") - 1):
            pairs.append((s, int(d)))
    return np.asarray(pairs, np.int64).reshape(-1, 2)


def _routes(net: Network, first: dict, starts: dict, n_placements: int, spec: ChipSpec):
    """Routing entries of every source placement (see rule 4 of the module docstring)."""
    keys = []
    for proj in net.projections:
        pre_starts, post_starts = starts[id(proj.pre)], starts[id(proj.post)]
        if isinstance(proj, Conv2DProjection):
            local = _conv_pairs(proj, pre_starts, post_starts)
            src, dst = local[:, 0], local[:, 1]
        else:
            src = np.searchsorted(pre_starts, proj.pre_idx, side="right") - 1
            dst = np.searchsorted(post_starts, proj.post_idx, side="right") - 1
        keys.append((src + first[id(proj.pre)]) * n_placements + dst + first[id(proj.post)])
    keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    src_all, dst_all = keys // n_placements, keys % n_placements
    routes = []
    counts = np.zeros(-(-n_placements // spec.pes_per_chip), np.int64)
    bounds = np.searchsorted(src_all, np.arange(n_placements + 1))
    for s in range(n_placements):
        dst = dst_all[bounds[s]: bounds[s + 1]]
        if dst.size == 0:
            continue
        own = s // spec.pes_per_chip
        chips = dst // spec.pes_per_chip
        mine = [Route(int(c), s, tuple(int(d) for d in dst[chips == c])) for c in np.unique(chips)]
        if not np.any(chips == own):
            mine.append(Route(own, s, ()))
        routes.extend(sorted(mine, key=lambda r: r.chip))
    for r in routes:
        counts[r.chip] += 1
    return tuple(routes), tuple(int(c) for c in counts)


def map_to_cores(net: Network, spec: ChipSpec = SPINNAKER2) -> Mapping:
    """Slice every population onto PEs and count SRAM bytes and routing entries (module docstring).

    Raises ``ValueError`` only for a malformed network (a projection to a population that was not
    added); a network too big for the chip is mapped anyway and the design rules report it.
    """
    if spec.routing_entry_rule != "per_source_pe_and_chip":
        raise ValueError(f"routing_entry_rule {spec.routing_entry_rule!r} is not implemented; "
                         f"known: 'per_source_pe_and_chip'")
    net.validate()
    placements: list[Placement] = []
    first, starts = {}, {}
    for pop in net.populations:
        neuron, synapse, fixed = _per_neuron_bytes(net, pop, spec)
        first[id(pop)] = len(placements)
        slices = _slices(pop, neuron, synapse, fixed, spec)
        starts[id(pop)] = np.array([a for a, *_ in slices], np.int64)
        for start, stop, nb, sb in slices:
            i = len(placements)
            placements.append(Placement(pop.name, start, stop, i // spec.pes_per_chip, i % spec.pes_per_chip, nb, sb))
    routes, counts = _routes(net, first, starts, len(placements), spec)
    models = tuple((p.name, p.neuron_model) for p in net.populations)
    return Mapping(tuple(placements), counts, spec, models, routes)
