"""Compile a :class:`~s2jax.qnet.Network` into a `ChipProgram`: flat arrays the chip model scans over.

Layout. Every neuron of the network gets one index in *spike space*: spike_list inputs first,
then the neurons of each chip-model block (:class:`s2jax.kinds.Block`: ``lif`` holds ``lif``,
``lif_no_delay`` and ``lif_conv2d``; ``cuba`` the current-based kinds) in the registry's block
order; each population is a contiguous slice. Neuron space is spike space minus the inputs.
Neurons of one block share one state vector and one vectorized step, whatever population they
belong to, so the cost per tick does not grow with the number of populations. Only blocks with
neurons appear in the layout.

Synapses. A projection becomes one dense integer matrix per delay, stacked as ``(D * n_pre,
n_post)`` so one matmul sums every delay slot. Duplicate synapses add up (for current-based
targets positive and negative weights are summed into separate excitatory / inhibitory
matrices, as the chip routes them: kinds with two input channels). Projections of equal shape are stacked into groups, one
batched matmul per group per tick. Matrices are int8 when every summed entry fits, else int32;
products are accumulated in int32, so the synaptic sum is exact in any order.

A ChipProgram is a pytree: its arrays are leaves and its layout is static, so a jitted run is
reused for every network of the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import numpy as np

from s2jax import dynamics, kinds
from s2jax.hwmodel.mapping import check_population_sizes
from s2jax.hwmodel.params import block_params, flush_subnormals  # noqa: F401 (flush_subnormals: its old home)
from s2jax.qnet import Conv2DProjection, Network, Population, parameter_error
from s2jax.spec import SPINNAKER2, ChipSpec


@dataclass(frozen=True)
class DenseGroup:
    n_pre: int
    n_post: int
    n_delay: int
    channel: str  # "a": net / excitatory sum, "b": inhibitory magnitudes
    count: int
    pre_start: int = -1  # when the members' pre slices start at pre_start + p * pre_stride,
    pre_stride: int = 0  # they are read with one strided slice instead of a gather


@dataclass(frozen=True)
class ConvGroup:
    pre_start: int
    post_start: int  # neuron space
    post_pop: int
    c_in: int
    in_height: int
    in_width: int
    pool_y: int
    pool_x: int
    stride_y: int
    stride_x: int
    padding: tuple[tuple[int, int], tuple[int, int]]
    c_out: int
    out_height: int
    out_width: int


@dataclass(frozen=True)
class Layout:
    """Static structure of a compiled network (hashable)."""

    names: tuple[str, ...]  # spike-space order
    net_names: tuple[str, ...]  # the network's order: the last axis of the trace's counters
    net_sizes: tuple[int, ...]  # neuron updates per tick of each (0 for inputs)
    models: tuple[str, ...]
    sizes: tuple[int, ...]
    starts: tuple[int, ...]  # spike-space start of each population
    n_in: int
    blocks: tuple[tuple[str, int], ...]  # (block name, neurons) in neuron-space order, non-empty blocks only
    block_defs: tuple  # the kinds.Block of each entry of blocks: a compiled program keeps the steps it was built with
    hist_depth: int
    dense: tuple[DenseGroup, ...]
    conv: tuple[ConvGroup, ...]
    profile: str
    numerics: object
    cuba_order: str
    record_spikes: tuple[str, ...]
    record_v: tuple[str, ...]
    sinks: tuple[str, ...]
    v_frac_bits: int
    identity_a: bool = False  # the concatenated channel-a sums are already in neuron order

    @property
    def n_all(self) -> int:
        return self.n_in + sum(n for _, n in self.blocks)

    def block_size(self, name: str) -> int:
        """Neurons of block ``name`` (0 when the network has none)."""
        return dict(self.blocks).get(name, 0)

    @property
    def n_lif(self) -> int:
        return self.block_size("lif")

    @property
    def n_cuba(self) -> int:
        return self.block_size("cuba")

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n, s in zip(self.names, self.starts) if s < self.n_in)  # inputs come first

    def slice_of(self, name: str) -> tuple[int, int]:
        i = self.names.index(name)
        return self.starts[i], self.starts[i] + self.sizes[i]

    def ranges(self, names, offset: int = 0) -> tuple[tuple[int, int], ...]:
        """Spike-space slices of ``names`` (minus ``offset``), adjacent ones merged."""
        out = []
        for lo, hi in sorted(self.slice_of(n) for n in names):
            if out and out[-1][1] == lo - offset:
                out[-1] = (out[-1][0], hi - offset)
            else:
                out.append((lo - offset, hi - offset))
        return tuple(out)


@dataclass(frozen=True)
class ChipProgram:
    """Arrays of a compiled network plus its static :class:`Layout` (a JAX pytree)."""

    block_params: tuple  # per block of layout.blocks: its params pytree (Block.make_params)
    block_v0: tuple  # per block: initial membranes (float32, or int32 s16.15)
    dense_idx: tuple  # per group: (P, D * n_pre) int32 indices into the flattened spike history
    dense_w: tuple  # per group: (P, D * n_pre, n_post) int8 / int32
    dense_fanout: tuple  # per group: (P, D * n_pre) int32 synapses per history slot
    dense_pop: tuple  # per group: (P,) int32 post population id
    conv_w: tuple  # per conv: (C_out, C_in, kH, kW) int8
    conv_nz: tuple  # per conv: same shape, 1 where the weight is non-zero
    gather_a: np.ndarray  # (n_neurons, M) positions of each neuron's sums in the concatenated outputs
    gather_b: np.ndarray  # the same for the inhibitory channel (pads point one past the end)
    layout: Layout = field(metadata=dict(static=True))

    def params_of(self, block: str):
        """The params pytree of ``block`` (e.g. ``"lif"``: a ``dynamics.LIFParams``)."""
        return self.block_params[[b for b, _ in self.layout.blocks].index(block)]

    def _block_or_empty(self, block: str, v0: bool):
        names = [b for b, _ in self.layout.blocks]
        if block in names:
            k = names.index(block)
            return self.block_v0[k] if v0 else self.block_params[k]
        b = kinds.block(block)  # no neuron of that block: empty arrays, as before the registry
        return np.zeros(0, np.float32) if v0 else b.make_params({k: np.zeros(0, np.float32) for k in b.params})

    # Names of the two-family program, before the kinds registry: the stock blocks' arrays.
    lif_params = property(lambda self: self._block_or_empty("lif", False))
    cuba_params = property(lambda self: self._block_or_empty("cuba", False))
    lif_v0 = property(lambda self: self._block_or_empty("lif", True))
    cuba_v0 = property(lambda self: self._block_or_empty("cuba", True))


jax.tree_util.register_dataclass(
    ChipProgram,
    data_fields=["block_params", "block_v0", "dense_idx", "dense_w",
                 "dense_fanout", "dense_pop", "conv_w", "conv_nz", "gather_a", "gather_b"],
    meta_fields=["layout"],
)


def _block_pops(net: Network) -> dict[str, list[Population]]:
    """The neuron populations of each block (registry block order, empty blocks left out)."""
    out = {b: [] for b in kinds.blocks()}
    for p in net.populations:
        kind = kinds.get(p.neuron_model)
        if not kind.is_input:
            out[kind.block.name].append(p)
    return {b: pops for b, pops in out.items() if pops}


def _order(net: Network) -> list[Population]:
    inputs = [p for p in net.populations if kinds.get(p.neuron_model).is_input]
    return inputs + [p for pops in _block_pops(net).values() for p in pops]


#: The profiles the chip model runs (``"float"`` is float training's, not the chip's).
CHIP_PROFILES = ("float32", "fixed")

MAX_PROGRAM_BYTES = 4 * 2**30
"""Default limit of :func:`compile_network`'s host memory estimate (:func:`program_bytes`): 4 GiB."""

_BYTES_PER_NEURON = 64  # parameter, state and table entries of one neuron while compiling (an upper estimate)


def program_bytes(net: Network) -> tuple[int, str]:
    """Host memory :func:`compile_network` needs for ``net``, estimated without allocating, and the
    largest part by name. Dense projections dominate: each is an int64 matrix of ``delay slots x
    n_pre x n_post`` entries per channel (two for current-based targets), held twice while stacked;
    every neuron adds ``_BYTES_PER_NEURON`` plus its gather-table entries. Population sizes are
    checked first."""
    check_population_sizes(net)
    neurons = sum(p.size for p in net.populations)
    # per neuron: parameters and state, plus the gather tables (one int64 + int32 entry per incoming
    # projection and channel at most)
    total = neurons * (_BYTES_PER_NEURON + 24 * max(1, len(net.projections)))
    biggest, where = 0, f"{neurons:,} neurons"
    for proj in net.projections:
        if isinstance(proj, Conv2DProjection):
            continue
        delays = np.asarray(proj.delays)
        slots = int(delays.max()) + 1 if delays.size else 1
        channels = kinds.get(proj.post.neuron_model).channels
        nbytes = 16 * channels * slots * proj.pre.size * proj.post.size
        total += nbytes
        if nbytes > biggest:
            biggest = nbytes
            where = (f"projection {proj.pre.name!r} -> {proj.post.name!r} ({slots} delay slot(s) x "
                     f"{proj.pre.size:,} x {proj.post.size:,} weights, {nbytes:,} bytes)")
    return total, where


class _Space(NamedTuple):
    """Where every population sits: spike-space order and starts, the trace's population order."""

    pops: list  # spike-space order: inputs, then each block's populations
    starts: list
    pop_id: dict  # id(population) -> index in pops
    net_id: dict  # id(population) -> index in the network (the trace's counters)
    n_in: int
    n_all: int
    by_block: dict  # block name -> its populations


def _check(net: Network, record: str, max_bytes: int | None) -> None:
    """Stage 1: the network is complete, within the memory limit, and its parameters valid."""
    if record not in ("flags", "all"):
        raise ValueError(f"record must be 'flags' or 'all', got {record!r}")
    net.validate()
    limit = MAX_PROGRAM_BYTES if max_bytes is None else max_bytes
    estimate, largest = program_bytes(net)  # checks the population sizes first
    if estimate > limit:
        raise ValueError(f"network {net.name!r}: compiling it for the chip model needs about {estimate:,} bytes "
                         f"of host memory (largest part: {largest}), over the limit of {limit:,} bytes "
                         f"(max_bytes=, default MAX_PROGRAM_BYTES)")
    for pop in net.populations:  # parameters edited after construction: the constructor's checks again
        error = parameter_error(pop)
        if error:
            raise ValueError(error)


def _space(net: Network) -> _Space:
    """Stage 2: the spike-space layout."""
    pops = _order(net)
    if not any(not kinds.get(p.neuron_model).is_input for p in pops):
        raise ValueError(f"network {net.name!r} has no neuron population to simulate")
    starts = np.concatenate([[0], np.cumsum([p.size for p in pops])]).tolist()
    n_in = sum(p.size for p in pops if kinds.get(p.neuron_model).is_input)
    return _Space(pops, starts[:-1], {id(p): i for i, p in enumerate(pops)},
                  {id(p): i for i, p in enumerate(net.populations)}, n_in, starts[-1], _block_pops(net))


def _dense(net: Network, sp: _Space):
    """Stage 4: every ``Projection`` as integer matrices per delay slot, grouped by shape.
    Returns ``(groups, indices, weights, fan-outs, post indices, post populations, history depth)``."""
    dense = [proj for proj in net.projections if not isinstance(proj, Conv2DProjection)]
    hist_depth = max([int(p.delays.max()) + 1 for p in dense if p.delays.size] + [1])
    groups: dict[tuple, list] = {}
    for proj in dense:
        pre_i, post_i = sp.pop_id[id(proj.pre)], sp.pop_id[id(proj.post)]
        n_pre, n_post = proj.pre.size, proj.post.size
        n_delay = int(proj.delays.max()) + 1 if proj.delays.size else 1
        two = kinds.get(proj.post.neuron_model).channels == 2
        idx = (np.arange(n_delay)[:, None] * sp.n_all + sp.starts[pre_i] + np.arange(n_pre)[None, :]).reshape(-1)
        post = np.arange(n_post) + sp.starts[post_i] - sp.n_in
        row = proj.delays.astype(np.int64) * n_pre + proj.pre_idx
        channels = ([("a", proj.weights >= 0), ("b", proj.weights < 0)] if two
                    else [("a", np.ones_like(proj.weights, bool))])
        for channel, sel in channels:
            w = np.zeros((n_delay * n_pre, n_post), np.int64)
            np.add.at(w, (row[sel], proj.post_idx[sel]), np.abs(proj.weights[sel]) if two else proj.weights[sel])
            fan = np.zeros(n_delay * n_pre, np.int64)
            np.add.at(fan, row[sel], 1)
            key = (n_pre, n_post, n_delay, channel)
            groups.setdefault(key, []).append((idx, w, fan, post, sp.net_id[id(proj.post)], sp.starts[pre_i]))

    out = [], [], [], [], [], []
    for (n_pre, n_post, n_delay, channel), members in groups.items():
        w = np.stack([m[1] for m in members])
        if np.abs(w).max(initial=0) >= 2**31:
            raise ValueError(f"summed duplicate synapses exceed int32 in a projection into {n_post} neurons")
        pre_starts = np.array([m[5] for m in members])
        stride = int(pre_starts[1] - pre_starts[0]) if len(members) > 1 else n_pre
        strided = (stride >= n_pre and np.array_equal(pre_starts, pre_starts[0] + stride * np.arange(len(members)))
                   and pre_starts[0] + stride * len(members) <= sp.n_all)
        out[0].append(DenseGroup(n_pre, n_post, n_delay, channel, len(members),
                                 int(pre_starts[0]) if strided else -1, stride if strided else 0))
        out[1].append(np.stack([m[0] for m in members]).astype(np.int32))
        out[2].append(w.astype(np.int8 if np.abs(w).max(initial=0) <= 127 else np.int32))
        out[3].append(np.stack([m[2] for m in members]).astype(np.int32))
        out[4].append(np.stack([m[3] for m in members]).astype(np.int32))
        out[5].append(np.array([m[4] for m in members], np.int32))
    return (*out, hist_depth)


def _conv(net: Network, sp: _Space):
    """Stage 5: every ``Conv2DProjection`` as an OIHW int8 kernel and its non-zero mask."""
    groups, weights, nonzero = [], [], []
    for proj in net.projections:
        if not isinstance(proj, Conv2DProjection):
            continue
        cp = proj.conv_params
        c_in, c_out = proj.weights.shape[:2]
        groups.append(ConvGroup(
            pre_start=sp.starts[sp.pop_id[id(proj.pre)]], post_start=sp.starts[sp.pop_id[id(proj.post)]] - sp.n_in,
            post_pop=sp.net_id[id(proj.post)], c_in=c_in, in_height=cp["in_height"], in_width=cp["in_width"],
            pool_y=cp["pool_y"], pool_x=cp["pool_x"], stride_y=cp["stride_y"], stride_x=cp["stride_x"],
            padding=((cp["pad_top"], cp["pad_bottom"]), (cp["pad_left"], cp["pad_right"])),
            c_out=c_out, out_height=proj.out_height, out_width=proj.out_width))
        oihw = np.transpose(proj.weights, (1, 0, 2, 3))
        weights.append(oihw.astype(np.int8))
        nonzero.append((oihw != 0).astype(np.int8))
    return groups, weights, nonzero


def _gather(dense_groups, dense_post, conv_groups, n_neur: int):
    """Stage 6: per channel, where each neuron's synaptic sums sit in the concatenated outputs
    (padded with one index past the end), and whether channel a is already in neuron order."""
    targets = {"a": [], "b": []}  # per channel: neuron-space target of every synaptic-sum output
    for g, post in zip(dense_groups, dense_post):
        targets[g.channel].append(post.reshape(-1))
    for g in conv_groups:
        targets["a"].append(g.post_start + np.arange(g.c_out * g.out_height * g.out_width))
    gather = []
    for channel in ("a", "b"):
        tgt = np.concatenate(targets[channel]) if targets[channel] else np.zeros(0, np.int64)
        counts = np.bincount(tgt, minlength=n_neur) if tgt.size else np.zeros(n_neur, np.int64)
        table = np.full((n_neur, max(int(counts.max(initial=0)), 1)), tgt.size, np.int64)
        order = np.argsort(tgt, kind="stable")
        rank = np.arange(tgt.size) - np.repeat(np.cumsum(counts) - counts, counts)
        table[tgt[order], rank] = order
        gather.append(table.astype(np.int32))
    identity_a = (bool(targets["a"]) and gather[0].shape[1] == 1
                  and np.array_equal(gather[0][:, 0], np.arange(n_neur)))
    return gather[0], gather[1], bool(identity_a)


def compile_network(net: Network, profile: str = "float32", spec: ChipSpec = SPINNAKER2,
                    record: str = "flags", *, max_bytes: int | None = None) -> ChipProgram:
    """Turn a Network into a ChipProgram for :func:`s2jax.hwmodel.run`.

    ``profile``: "float32" (the stock ARM code) or "fixed" (int32 s16.15). ``record``: "flags"
    records what each population's ``record`` list asks for; "all" records every spike and voltage.
    Before allocating, the memory estimate :func:`program_bytes` must stay within ``max_bytes``
    (default :data:`MAX_PROGRAM_BYTES`), else a ``ValueError`` names the estimate, its largest part
    and the limit. The fixed profile refuses decays outside [0, 1] and parameters outside s16.15.

    Stages: check the network, lay out spike space, convert each block's parameters
    (:mod:`s2jax.hwmodel.params`), build the dense and conv synapse arrays, the gather tables,
    then the static :class:`Layout`.
    """
    numerics = dynamics.numerics_for(dynamics.profile_name(profile, CHIP_PROFILES), spec)
    _check(net, record, max_bytes)
    sp = _space(net)
    built = [block_params(kinds.block(b), pops, profile, spec) for b, pops in sp.by_block.items()]
    dense_groups, d_idx, d_w, d_fan, d_post, d_pop, hist_depth = _dense(net, sp)
    conv_groups, c_w, c_nz = _conv(net, sp)
    gather_a, gather_b, identity_a = _gather(dense_groups, d_post, conv_groups, sp.n_all - sp.n_in)

    is_input = {id(p): kinds.get(p.neuron_model).is_input for p in net.populations}
    has_out = {id(p.pre) for p in net.projections}
    pops = sp.pops
    layout = Layout(
        names=tuple(p.name for p in pops), net_names=tuple(p.name for p in net.populations),
        net_sizes=tuple(0 if is_input[id(p)] else p.size for p in net.populations),
        models=tuple(p.neuron_model for p in pops), sizes=tuple(p.size for p in pops),
        starts=tuple(sp.starts), n_in=sp.n_in,
        blocks=tuple((b, sum(p.size for p in ps)) for b, ps in sp.by_block.items()),
        block_defs=tuple(kinds.block(b) for b in sp.by_block),
        hist_depth=hist_depth, dense=tuple(dense_groups), conv=tuple(conv_groups), profile=profile,
        numerics=numerics, cuba_order=spec.cuba_current_order,
        record_spikes=tuple(p.name for p in pops if record == "all" or "spikes" in p.record),
        record_v=tuple(p.name for p in pops if not is_input[id(p)] and (record == "all" or "v" in p.record)),
        sinks=tuple(p.name for p in pops if not is_input[id(p)] and id(p) not in has_out),
        v_frac_bits=spec.fixed_v_frac_bits, identity_a=identity_a,
    )
    return ChipProgram(tuple(b[0] for b in built), tuple(b[1] for b in built), tuple(d_idx), tuple(d_w),
                       tuple(d_fan), tuple(d_pop), tuple(c_w), tuple(c_nz), gather_a, gather_b, layout)
