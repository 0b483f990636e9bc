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
the design rules (:mod:`s2jax.export`), which read the :class:`Mapping`. Only sizes beyond what
the mapper itself places raise :class:`MappingSizeError`, before anything is allocated: a
population size outside [1, ``qnet.MAX_POPULATION_SIZE``] (edited after construction) or more than
:data:`MAX_MAPPED_PES` PEs. Memory grows with synapses, spike entries and PEs, never with a
population's size alone.

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

import numbers
from dataclasses import dataclass

import numpy as np

from s2jax.qnet import CONV_KEYS, Conv2DProjection, Network, Population, population_size_error
from s2jax import kinds
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["CONV_PARAM_BYTES", "MAX_MAPPED_PES", "Mapping", "MappingSizeError", "Placement", "Route",
           "check_population_sizes", "map_to_cores"]

MAX_MAPPED_PES = 2**20
"""Most PEs :func:`map_to_cores` places: 1,048,576, about 144 boards of 48 chips (a 48-chip board
has 7,296 PEs). A network needing more is refused before its placements are built."""


class MappingSizeError(ValueError):
    """A network beyond what the mapper places: a population size outside [1, MAX_POPULATION_SIZE]
    or more than :data:`MAX_MAPPED_PES` PEs. ``pes``: the PEs needed, when that is the reason."""

    def __init__(self, message: str, pes: int | None = None):
        super().__init__(message)
        self.pes = pes

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
    cap = pop.max_atoms_per_core if pop.max_atoms_per_core is not None else spec.atoms_per_core(pop.neuron_model)
    if not isinstance(cap, numbers.Integral) or isinstance(cap, bool) or cap < 1:
        raise MappingSizeError(f"population {pop.name!r}: max atoms per core must be a positive integer, "
                               f"got {cap!r}")
    return int(cap)


def check_population_sizes(net: Network) -> None:
    """Raise :class:`MappingSizeError` naming the first population whose ``size`` is not an integer
    in [1, ``MAX_POPULATION_SIZE``] (a size edited after construction), before anything is allocated."""
    for pop in net.populations:
        error = population_size_error(pop)
        if error:
            raise MappingSizeError(error)


def _min_pes(net: Network, spec: ChipSpec) -> int:
    """PEs the populations need at least: ``ceil(size / atoms per PE)`` each (no allocation)."""
    return sum(-(-pop.size // _slice_cap(pop, spec)) for pop in net.populations)


class _Bytes:
    """SRAM bytes of the neurons of one population without one array entry per neuron:
    ``per_neuron`` bytes each, plus ``extra`` bytes at the sorted neuron indices ``at`` (spike
    entries of a source, synapse words of a neuron population), plus ``fixed`` bytes per PE."""

    def __init__(self, per_neuron: int, at: np.ndarray, extra: np.ndarray, fixed: int, extra_is_synapse: bool):
        self.per_neuron, self.at, self.fixed, self.extra_is_synapse = per_neuron, at, fixed, extra_is_synapse
        self.cum = np.concatenate([[0], np.cumsum(extra, dtype=np.int64)])

    def extra_before(self, x: int) -> int:
        """Extra bytes of the neurons below index ``x``."""
        return int(self.cum[np.searchsorted(self.at, x, side="left")])

    def slice_bytes(self, start: int, stop: int) -> tuple[int, int]:
        """``(neuron_bytes, synapse_bytes)`` of the slice ``[start, stop)`` on one PE."""
        extra = self.extra_before(stop) - self.extra_before(start)
        neuron = self.per_neuron * (stop - start)
        return (neuron, extra + self.fixed) if self.extra_is_synapse else (neuron + extra, self.fixed)


def _population_bytes(net: Network, pop: Population, spec: ChipSpec) -> _Bytes:
    """The SRAM bytes of ``pop``'s neurons (memory proportional to its spikes and synapses, not its size)."""
    if kinds.get(pop.neuron_model).is_input:
        items = sorted((int(i), len(t)) for i, t in pop.params.items() if len(t))
        at = np.array([i for i, _ in items], np.int64)
        entries = np.array([n for _, n in items], np.int64)
        return _Bytes(0, at, entries * spec.spike_time_bytes, 0, False)
    posts, sizes, fixed = [], [], 0
    for proj in net.projections:  # each projection's kind says what it stores (kinds.ProjectionKind.synapse_bytes)
        if proj.post is not pop:
            continue
        at, nbytes, per_pe = proj.kind.synapse_bytes(proj, spec)
        posts.append(np.asarray(at, np.int64))
        sizes.append(np.asarray(nbytes, np.int64))
        fixed += int(per_pe)
    at, inverse = np.unique(np.concatenate(posts) if posts else np.zeros(0, np.int64), return_inverse=True)
    extra = np.zeros(at.size, np.int64)
    np.add.at(extra, inverse, np.concatenate(sizes) if sizes else np.zeros(0, np.int64))
    return _Bytes(spec.state_bytes(pop.neuron_model), at, extra, fixed, True)


def _slices(pop: Population, nbytes: _Bytes, spec: ChipSpec):
    """Consecutive ``(start, stop, neuron_bytes, synapse_bytes)`` slices of one population: each the
    largest that fits ``cap`` neurons and the PE's SRAM (cost grows with stop), never below one neuron."""
    cap = _slice_cap(pop, spec)
    limit = spec.sram_data_bytes_per_pe

    def fits(start, stop):
        return sum(nbytes.slice_bytes(start, stop)) <= limit

    out, start = [], 0
    while start < pop.size:
        stop = min(start + cap, pop.size)
        if not fits(start, stop):
            lo, hi = start + 1, stop  # the slice [start, lo) is kept even when it does not fit
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if fits(start, mid) else (lo, mid)
            stop = lo
        out.append((start, stop, *nbytes.slice_bytes(start, stop)))
        start = stop
    return out


def _field_range(pooled: np.ndarray, pad: int, stride: int, k: int, n_out: int):
    """First and last output row (or column) whose receptive field covers each pooled position:
    ``0 <= pooled + pad - o * stride < k``."""
    top = pooled + pad
    first = np.maximum(np.floor_divide(top - k, stride) + 1, 0)
    last = np.minimum(np.floor_divide(top, stride), n_out - 1)
    return first, last


def _conv_pairs(proj: Conv2DProjection, pre_starts: np.ndarray, post_starts: np.ndarray):
    """``(pre slice, post slice)`` pairs (local slice numbers) connected by a conv.

    Each pre slice reaches a union of rectangles of output positions (one per pooled input
    position); the union is marked on a 2-D difference grid over the rectangles' bounding box, so
    memory grows with the slice, not with the product of the input and output sizes."""
    cp = proj.conv_params
    c_in, c_out, kh, kw = proj.weights.shape
    h, w = cp["in_height"], cp["in_width"]
    hp, wp = h // cp["pool_y"], w // cp["pool_x"]
    ho, wo = proj.out_height, proj.out_width
    pairs = []
    bounds = np.append(pre_starts, proj.pre.size)
    for s in range(len(pre_starts)):
        n = np.arange(bounds[s], bounds[s + 1])
        py, px = (n // w) % h // cp["pool_y"], n % w // cp["pool_x"]
        ok = (py < hp) & (px < wp)
        if not ok.any():
            continue
        cells = np.unique(py[ok] * wp + px[ok])
        y0, y1 = _field_range(cells // wp, cp["pad_top"], cp["stride_y"], kh, ho)
        x0, x1 = _field_range(cells % wp, cp["pad_left"], cp["stride_x"], kw, wo)
        keep = (y0 <= y1) & (x0 <= x1)
        if not keep.any():
            continue
        y0, y1, x0, x1 = y0[keep], y1[keep], x0[keep], x1[keep]
        oy, ox = int(y0.min()), int(x0.min())  # bounding box origin
        grid = np.zeros((int(y1.max()) - oy + 2, int(x1.max()) - ox + 2), np.int32)
        for dy, dx, sign in ((y0, x0, 1), (y0, x1 + 1, -1), (y1 + 1, x0, -1), (y1 + 1, x1 + 1, 1)):
            np.add.at(grid, (dy - oy, dx - ox), sign)
        ys, xs = np.nonzero(np.cumsum(np.cumsum(grid, axis=0), axis=1)[:-1, :-1] > 0)
        reached = (ys + oy) * wo + xs + ox  # positions oy * wo + ox
        post = (np.arange(c_out)[:, None] * (ho * wo) + reached[None, :]).reshape(-1)
        for d in np.unique(np.searchsorted(post_starts, post, side="right") - 1):
            pairs.append((s, int(d)))
    return np.asarray(pairs, np.int64).reshape(-1, 2)


def _layer_slices(layer, spec: ChipSpec):
    """Consecutive ``(start, stop, bytes)`` slices of a layer's output units: as many units per PE as
    its kind's atoms per core and the PE's SRAM (after the bytes every PE of it holds) allow, never
    below one."""
    unit = max(1, int(layer.kind.unit_bytes(layer.arrays, layer.settings, spec)))
    fixed = int(layer.kind.pe_bytes(layer.arrays, layer.settings, spec))
    cap = max(1, min(int(layer.kind.atoms_per_core), (spec.sram_data_bytes_per_pe - fixed) // unit))
    return [(a, min(a + cap, layer.size), fixed + unit * (min(a + cap, layer.size) - a))
            for a in range(0, layer.size, cap)]


def _routes(net: Network, first: dict, starts: dict, n_placements: int, spec: ChipSpec):
    """Routing entries of every source placement (see rule 4 of the module docstring); a layer's
    outputs go to every placement of each layer that reads it."""
    keys = []
    for layer in net.layers:
        if layer.pre is not None:
            src = first[id(layer.pre)] + np.arange(len(starts[id(layer.pre)]))
            dst = first[id(layer)] + np.arange(len(starts[id(layer)]))
            keys.append((src[:, None] * n_placements + dst[None, :]).reshape(-1))
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
    """Slice every population (then every layer, by its kind's SRAM bytes per unit and atoms per
    core) onto PEs and count SRAM bytes and routing entries (module docstring).

    Raises ``ValueError`` only for a malformed network (a projection to a population that was not
    added) and :class:`MappingSizeError` for sizes beyond what the mapper places (a population size
    outside [1, ``MAX_POPULATION_SIZE``], more than :data:`MAX_MAPPED_PES` PEs), checked before
    anything is allocated; a network too big for the chip is otherwise mapped anyway and the design
    rules report it. Memory grows with the synapses, spikes and PEs, not with population sizes.
    """
    if spec.routing_entry_rule != "per_source_pe_and_chip":
        raise ValueError(f"routing_entry_rule {spec.routing_entry_rule!r} is not implemented; "
                         f"known: 'per_source_pe_and_chip'")
    net.validate()
    check_population_sizes(net)
    needed = _min_pes(net, spec)
    if needed > MAX_MAPPED_PES:
        raise MappingSizeError(f"network {net.name!r}: needs at least {needed:,} PEs, over the "
                               f"{MAX_MAPPED_PES:,} PEs the mapper places (MAX_MAPPED_PES)", needed)
    placements: list[Placement] = []
    first, starts = {}, {}
    for pop in net.populations:
        nbytes = _population_bytes(net, pop, spec)
        first[id(pop)] = len(placements)
        slices = _slices(pop, nbytes, spec)
        if len(placements) + len(slices) > MAX_MAPPED_PES:
            raise MappingSizeError(f"network {net.name!r}: needs more than {MAX_MAPPED_PES:,} PEs (population "
                                   f"{pop.name!r} alone takes {len(slices):,}), over the {MAX_MAPPED_PES:,} "
                                   f"PEs the mapper places (MAX_MAPPED_PES)", len(placements) + len(slices))
        starts[id(pop)] = np.array([a for a, *_ in slices], np.int64)
        for start, stop, nb, sb in slices:
            i = len(placements)
            placements.append(Placement(pop.name, start, stop, i // spec.pes_per_chip, i % spec.pes_per_chip, nb, sb))
    for layer in net.layers:
        slices = _layer_slices(layer, spec)
        if len(placements) + len(slices) > MAX_MAPPED_PES:
            raise MappingSizeError(f"network {net.name!r}: needs more than {MAX_MAPPED_PES:,} PEs (layer "
                                   f"{layer.name!r} alone takes {len(slices):,}), over the {MAX_MAPPED_PES:,} "
                                   f"PEs the mapper places (MAX_MAPPED_PES)", len(placements) + len(slices))
        first[id(layer)] = len(placements)
        starts[id(layer)] = np.array([a for a, *_ in slices], np.int64)
        for start, stop, nb in slices:
            i = len(placements)
            placements.append(Placement(layer.name, start, stop, i // spec.pes_per_chip, i % spec.pes_per_chip, nb, 0))
    routes, counts = _routes(net, first, starts, len(placements), spec)
    models = tuple((p.name, p.neuron_model) for p in net.populations) + tuple(
        (layer.name, layer.kind.name) for layer in net.layers)
    return Mapping(tuple(placements), counts, spec, models, routes)
