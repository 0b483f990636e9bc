"""Compile a :class:`~s2jax.qnet.Network` into a `ChipProgram`: flat arrays the chip model scans over.

Layout. Every neuron of the network gets one index in *spike space*: spike_list inputs first,
then all LIF-family neurons (``lif``, ``lif_no_delay``, ``lif_conv2d``), then all current-based
ones; each population is a contiguous slice. Neuron space is spike space minus the inputs.
Neurons of one family share one state vector and one vectorized step, whatever population they
belong to, so the cost per tick does not grow with the number of populations.

Synapses. A projection becomes one dense integer matrix per delay, stacked as ``(D * n_pre,
n_post)`` so one matmul sums every delay slot. Duplicate synapses add up (for current-based
targets positive and negative weights are summed into separate excitatory / inhibitory
matrices, as the chip routes them). Projections of equal shape are stacked into groups, one
batched matmul per group per tick. Matrices are int8 when every summed entry fits, else int32;
products are accumulated in int32, so the synaptic sum is exact in any order.

A ChipProgram is a pytree: its arrays are leaves and its layout is static, so a jitted run is
reused for every network of the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import numpy as np

from s2jax import dynamics
from s2jax.fixedpoint import INT32_MAX, INT32_MIN, round_host
from s2jax.hwmodel.mapping import check_population_sizes
from s2jax.qnet import Conv2DProjection, Network, Population, decay_violations, parameter_error
from s2jax.spec import CUBA_MODELS, INPUT_MODELS, LIF_MODELS, SPINNAKER2, ChipSpec


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
    n_lif: int
    n_cuba: int
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
        return self.n_in + self.n_lif + self.n_cuba

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n, m in zip(self.names, self.models) if m in INPUT_MODELS)

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

    lif_params: dynamics.LIFParams
    lif_v0: np.ndarray
    cuba_params: dynamics.CubaParams
    cuba_v0: np.ndarray
    dense_idx: tuple  # per group: (P, D * n_pre) int32 indices into the flattened spike history
    dense_w: tuple  # per group: (P, D * n_pre, n_post) int8 / int32
    dense_fanout: tuple  # per group: (P, D * n_pre) int32 synapses per history slot
    dense_pop: tuple  # per group: (P,) int32 post population id
    conv_w: tuple  # per conv: (C_out, C_in, kH, kW) int8
    conv_nz: tuple  # per conv: same shape, 1 where the weight is non-zero
    gather_a: np.ndarray  # (n_neurons, M) positions of each neuron's sums in the concatenated outputs
    gather_b: np.ndarray  # the same for the inhibitory channel (pads point one past the end)
    layout: Layout = field(metadata=dict(static=True))


jax.tree_util.register_dataclass(
    ChipProgram,
    data_fields=["lif_params", "lif_v0", "cuba_params", "cuba_v0", "dense_idx", "dense_w",
                 "dense_fanout", "dense_pop", "conv_w", "conv_nz", "gather_a", "gather_b"],
    meta_fields=["layout"],
)


def _order(net: Network) -> list[Population]:
    inputs = [p for p in net.populations if p.neuron_model in INPUT_MODELS]
    lifs = [p for p in net.populations if p.neuron_model in LIF_MODELS]
    cubas = [p for p in net.populations if p.neuron_model in CUBA_MODELS]
    return inputs + lifs + cubas


def _to_fixed(pop: Population, key: str, spec: ChipSpec) -> np.ndarray:
    """A float parameter on the s16.15 grid (host rounding named by the spec)."""
    x = pop.param_array(key).astype(np.float64) * 2.0**spec.fixed_v_frac_bits
    if key == "threshold":
        # A threshold above the int32 range can never be crossed: keep it unreachable.
        x = np.where(x >= INT32_MAX, INT32_MAX, x)
    q = round_host(np.where(np.isfinite(x), x, 0.0), spec.fixed_param_rounding)
    bad = ~np.isfinite(x) | (q < INT32_MIN) | (q > INT32_MAX)
    if key == "threshold":
        bad = bad & ~(x >= INT32_MAX)
    if np.any(bad):
        value = pop.param_array(key)[np.argmax(bad)]
        limit = 2.0 ** (31 - spec.fixed_v_frac_bits)
        raise ValueError(
            f"population {pop.name!r}: {key} = {value} does not fit the fixed-point profile's "
            f"s{31 - spec.fixed_v_frac_bits}.{spec.fixed_v_frac_bits} range [-{limit:g}, {limit:g})"
        )
    return q.astype(np.int32)


def _decay_fixed(pop: Population, key: str, spec: ChipSpec) -> np.ndarray:
    """A decay as unsigned 0.16 (``fixed_decay_frac_bits``). Values outside [0, 1] are refused by
    :func:`s2jax.qnet.decay_violations`, the same function the design rules report them with."""
    bad = [msg for k, _, msg in decay_violations(pop) if k == key]
    if bad:
        raise ValueError(f"{bad[0]}; the fixed-point profile stores decays as unsigned "
                         f"0.{spec.fixed_decay_frac_bits}")
    a = pop.param_array(key).astype(np.float64)
    return round_host(a * 2.0**spec.fixed_decay_frac_bits, spec.fixed_param_rounding).astype(np.int32)


def flush_subnormals(x: np.ndarray) -> np.ndarray:
    """float32 values below 2^-126 in magnitude become signed zeros (ChipSpec.flush_subnormals)."""
    x = np.asarray(x, np.float32)
    tiny = np.finfo(np.float32).tiny
    return np.where(np.abs(x) < tiny, np.copysign(np.float32(0), x), x).astype(np.float32)


def _neuron_params(pops: list[Population], cuba: bool, profile: str, spec: ChipSpec):
    def cat(arrays, dtype):
        return np.concatenate([np.asarray(a, dtype) for a in arrays]) if arrays else np.zeros(0, dtype)

    subtract = cat([np.full(p.size, p.params["reset"] == "reset_by_subtraction") for p in pops], bool)
    if profile == "float32":
        val = lambda k: flush_subnormals(cat([p.param_array(k) for p in pops], np.float32))  # noqa: E731
        dec = val
    else:
        val = lambda k: cat([_to_fixed(p, k, spec) for p in pops], np.int32)  # noqa: E731
        dec = lambda k: cat([_decay_fixed(p, k, spec) for p in pops], np.int32)  # noqa: E731
    common = (dec("alpha_decay"), val("threshold"), val("i_offset"), val("v_reset"), subtract)
    v0 = val("v_init")
    if not cuba:
        return dynamics.LIFParams(*common), v0
    t_refrac = cat([p.param_array("t_refrac", np.float64) for p in pops], np.int32)
    return dynamics.CubaParams(*common, dec("exc_decay"), dec("inh_decay"), t_refrac), v0


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
        channels = 2 if proj.post.neuron_model in CUBA_MODELS else 1
        nbytes = 16 * channels * slots * proj.pre.size * proj.post.size
        total += nbytes
        if nbytes > biggest:
            biggest = nbytes
            where = (f"projection {proj.pre.name!r} -> {proj.post.name!r} ({slots} delay slot(s) x "
                     f"{proj.pre.size:,} x {proj.post.size:,} weights, {nbytes:,} bytes)")
    return total, where


def compile_network(net: Network, profile: str = "float32", spec: ChipSpec = SPINNAKER2,
                    record: str = "flags", *, max_bytes: int | None = None) -> ChipProgram:
    """Turn a Network into a ChipProgram for :func:`s2jax.hwmodel.run`.

    ``profile``: "float32" (the stock ARM code) or "fixed" (int32 s16.15). ``record``: "flags"
    records what each population's ``record`` list asks for; "all" records every spike and voltage.
    Before allocating, the memory estimate :func:`program_bytes` must stay within ``max_bytes``
    (default :data:`MAX_PROGRAM_BYTES`), else a ``ValueError`` names the estimate, its largest part
    and the limit. The fixed profile refuses decays outside [0, 1] and parameters outside s16.15.
    """
    if record not in ("flags", "all"):
        raise ValueError(f"record must be 'flags' or 'all', got {record!r}")
    numerics = dynamics.numerics_for(profile, spec)
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
    pops = _order(net)
    if not any(p.neuron_model not in INPUT_MODELS for p in pops):
        raise ValueError(f"network {net.name!r} has no neuron population to simulate")
    names = tuple(p.name for p in pops)
    pop_id = {id(p): i for i, p in enumerate(pops)}
    net_id = {id(p): i for i, p in enumerate(net.populations)}  # order of the trace's counters
    starts, s = [], 0
    for p in pops:
        starts.append(s)
        s += p.size
    n_in = sum(p.size for p in pops if p.neuron_model in INPUT_MODELS)
    lif_pops = [p for p in pops if p.neuron_model in LIF_MODELS]
    cuba_pops = [p for p in pops if p.neuron_model in CUBA_MODELS]
    lif_params, lif_v0 = _neuron_params(lif_pops, False, profile, spec)
    cuba_params, cuba_v0 = _neuron_params(cuba_pops, True, profile, spec)

    dense = [proj for proj in net.projections if not isinstance(proj, Conv2DProjection)]
    hist_depth = max([int(p.delays.max()) + 1 for p in dense if p.delays.size] + [1])
    n_all = s

    groups: dict[tuple, list] = {}
    for proj in dense:
        pre_i, post_i = pop_id[id(proj.pre)], pop_id[id(proj.post)]
        n_pre, n_post = proj.pre.size, proj.post.size
        n_delay = int(proj.delays.max()) + 1 if proj.delays.size else 1
        cuba = proj.post.neuron_model in CUBA_MODELS
        idx = (np.arange(n_delay)[:, None] * n_all + starts[pre_i] + np.arange(n_pre)[None, :]).reshape(-1)
        post = np.arange(n_post) + starts[post_i] - n_in
        row = proj.delays.astype(np.int64) * n_pre + proj.pre_idx
        channels = [("a", proj.weights >= 0), ("b", proj.weights < 0)] if cuba else [("a", np.ones_like(proj.weights, bool))]
        for channel, sel in channels:
            w = np.zeros((n_delay * n_pre, n_post), np.int64)
            np.add.at(w, (row[sel], proj.post_idx[sel]), np.abs(proj.weights[sel]) if cuba else proj.weights[sel])
            fan = np.zeros(n_delay * n_pre, np.int64)
            np.add.at(fan, row[sel], 1)
            key = (n_pre, n_post, n_delay, channel)
            groups.setdefault(key, []).append((idx, w, fan, post, net_id[id(proj.post)], starts[pre_i]))

    dense_groups, d_idx, d_w, d_fan, d_post, d_pop = [], [], [], [], [], []
    for (n_pre, n_post, n_delay, channel), members in groups.items():
        w = np.stack([m[1] for m in members])
        if np.abs(w).max(initial=0) >= 2**31:
            raise ValueError(f"summed duplicate synapses exceed int32 in a projection into {n_post} neurons")
        pre_starts = np.array([m[5] for m in members])
        stride = int(pre_starts[1] - pre_starts[0]) if len(members) > 1 else n_pre
        strided = (stride >= n_pre and np.array_equal(pre_starts, pre_starts[0] + stride * np.arange(len(members)))
                   and pre_starts[0] + stride * len(members) <= n_all)
        dense_groups.append(DenseGroup(n_pre, n_post, n_delay, channel, len(members),
                                       int(pre_starts[0]) if strided else -1, stride if strided else 0))
        d_idx.append(np.stack([m[0] for m in members]).astype(np.int32))
        d_w.append(w.astype(np.int8 if np.abs(w).max(initial=0) <= 127 else np.int32))
        d_fan.append(np.stack([m[2] for m in members]).astype(np.int32))
        d_post.append(np.stack([m[3] for m in members]).astype(np.int32))
        d_pop.append(np.array([m[4] for m in members], np.int32))

    conv_groups, c_w, c_nz = [], [], []
    for proj in net.projections:
        if not isinstance(proj, Conv2DProjection):
            continue
        cp = proj.conv_params
        c_in, c_out = proj.weights.shape[:2]
        conv_groups.append(ConvGroup(
            pre_start=starts[pop_id[id(proj.pre)]], post_start=starts[pop_id[id(proj.post)]] - n_in,
            post_pop=net_id[id(proj.post)], c_in=c_in, in_height=cp["in_height"], in_width=cp["in_width"],
            pool_y=cp["pool_y"], pool_x=cp["pool_x"], stride_y=cp["stride_y"], stride_x=cp["stride_x"],
            padding=((cp["pad_top"], cp["pad_bottom"]), (cp["pad_left"], cp["pad_right"])),
            c_out=c_out, out_height=proj.out_height, out_width=proj.out_width))
        oihw = np.transpose(proj.weights, (1, 0, 2, 3))
        c_w.append(oihw.astype(np.int8))
        c_nz.append((oihw != 0).astype(np.int8))

    n_neur = n_all - n_in
    targets = {"a": [], "b": []}  # per channel: neuron-space target of every synaptic-sum output
    for g, post in zip(dense_groups, d_post):
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

    has_out = {id(p.pre) for p in net.projections}
    sinks = tuple(p.name for p in pops if p.neuron_model not in INPUT_MODELS and id(p) not in has_out)
    rec_s = tuple(p.name for p in pops if record == "all" or "spikes" in p.record)
    rec_v = tuple(p.name for p in pops if p.neuron_model not in INPUT_MODELS and (record == "all" or "v" in p.record))
    layout = Layout(
        names=names, net_names=tuple(p.name for p in net.populations),
        net_sizes=tuple(0 if p.neuron_model in INPUT_MODELS else p.size for p in net.populations), models=tuple(p.neuron_model for p in pops), sizes=tuple(p.size for p in pops),
        starts=tuple(starts), n_in=n_in, n_lif=sum(p.size for p in lif_pops),
        n_cuba=sum(p.size for p in cuba_pops), hist_depth=hist_depth, dense=tuple(dense_groups),
        conv=tuple(conv_groups), profile=profile, numerics=numerics, cuba_order=spec.cuba_current_order,
        record_spikes=rec_s, record_v=rec_v, sinks=sinks, v_frac_bits=spec.fixed_v_frac_bits,
        identity_a=bool(identity_a),
    )
    return ChipProgram(lif_params, lif_v0, cuba_params, cuba_v0, tuple(d_idx), tuple(d_w), tuple(d_fan),
                       tuple(d_pop), tuple(c_w), tuple(c_nz), gather[0], gather[1], layout)
