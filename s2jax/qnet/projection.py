"""``Projection`` (synapse rows, projection kind ``dense``) and ``Conv2DProjection`` (a kernel,
projection kind ``conv2d``, into a population whose kind takes it, e.g. ``lif_conv2d``)."""

from __future__ import annotations

import numpy as np

from s2jax.fixedpoint import round_host
from s2jax.qnet.checks import CONV_KEYS, _check_name, _describe, _is_int, _real_array, synapse_count_error
from s2jax.qnet.population import Population
from s2jax import kinds
from s2jax.kinds.projections import targets_text
from s2jax.spec import SPINNAKER2, ChipSpec, Rounding

__all__ = ["Projection", "Conv2DProjection"]


def _check_endpoints(kind: str, pre, post, rounding, spec) -> str:
    """``pre`` and ``post`` are Populations (else a ValueError naming the argument); returns the
    projection's name for messages."""
    for label, pop in (("pre", pre), ("post", post)):
        if not isinstance(pop, Population):
            raise ValueError(f"{kind}: {label} must be a qnet.Population, got {_describe(pop)}")
    where = f"{kind} {pre.name!r} -> {post.name!r}"
    if rounding is not None and not isinstance(rounding, Rounding):
        raise ValueError(f"{where}: rounding must be a Rounding or None, got {_describe(rounding)}")
    if not isinstance(spec, ChipSpec):
        raise ValueError(f"{where}: spec must be a ChipSpec, got {_describe(spec)}")
    return where


def _check_target(projection: str, post: Population, where: str):
    """``post``'s kind declares projection kind ``projection`` (else a ValueError naming the model
    and the kinds that would be accepted)."""
    if post.neuron_model not in kinds.neuron_names():
        raise ValueError(f"{where}: population {post.name!r} of model {post.neuron_model!r} cannot receive synapses")
    takes = kinds.get(post.neuron_model).projections
    if projection not in takes:
        raise ValueError(f"{where}: population {post.name!r} of model {post.neuron_model!r} cannot receive "
                         f"synapses of a {projection!r} projection (it takes {', '.join(map(repr, takes)) or 'none'}); "
                         f"kinds that do: {', '.join(map(repr, kinds.projection_targets(projection)))}")


def _integral_weights(values, where: str, rounding: Rounding | None) -> np.ndarray:
    w = _real_array(values, f"{where}: weights")
    if not np.all(np.isfinite(w)):
        bad = w[~np.isfinite(w)][0]
        raise ValueError(f"{where}: weight {bad} is not finite")
    frac = np.mod(w, 1) != 0
    if np.any(frac):
        if rounding is None:
            bad = w[frac][0]
            raise ValueError(
                f"{where}: weight {bad} is not an integer; the chip takes integer weights. Quantize it "
                f"yourself or pass rounding=Rounding.HALF_EVEN (or another Rounding) to round explicitly"
            )
        w = round_host(w, rounding)
    return w


def _check_range(w: np.ndarray, where: str, lo: int, hi: int, model: str):
    if w.size and (w.min() < lo or w.max() > hi):
        bad = w.min() if w.min() < lo else w.max()
        raise ValueError(f"{where}: weight {bad:g} outside [{lo}, {hi}], the range of model {model!r}")


class Projection:
    """Synapses between two populations (py-spinnaker2's ``snn.Projection``).

    ``connections``: rows ``[pre_index, post_index, weight, delay]``. Weights must be integers in
    the range of the post population's model (:meth:`ChipSpec.weight_range`); integral floats such
    as ``5.0`` are accepted. A non-integral weight raises unless ``rounding`` names how to round it.
    Delays are 0..``spec.max_delay`` for ``lif`` and ``lif_curr_exp`` and must be 0 otherwise; a
    spike emitted at tick t arrives at tick t + 1 + delay. At most :data:`~s2jax.qnet.MAX_SYNAPSES`
    rows (counted before the rows are copied).
    """

    def __init__(self, pre: Population, post: Population, connections, *, rounding: Rounding | None = None,
                 spec: ChipSpec = SPINNAKER2, name: str | None = None):
        where = _check_endpoints("projection", pre, post, rounding, spec)
        self.pre, self.post = pre, post
        self.name = _check_name(name, "projection")
        _check_target("dense", post, where)
        rows = len(connections) if isinstance(connections, (list, tuple)) else (
            connections.shape[0] if getattr(connections, "ndim", 0) >= 1 else 0)
        error = synapse_count_error(rows, f"{where}: connections")  # before any copy of the rows
        if error:
            raise ValueError(error)
        conn = _real_array(connections, f"{where}: connections")
        if conn.size == 0:
            conn = conn.reshape(0, 4)
        if conn.ndim != 2 or conn.shape[1] != 4:
            raise ValueError(f"{where}: connections must be rows [pre, post, weight, delay], got shape {conn.shape}")
        for col, name in ((0, "pre index"), (1, "post index"), (3, "delay")):
            if np.any(np.mod(conn[:, col], 1) != 0) or not np.all(np.isfinite(conn[:, col])):
                bad = conn[np.mod(conn[:, col], 1) != 0, col]
                raise ValueError(f"{where}: {name} must be an integer, got {bad[0] if bad.size else 'non-finite'}")
        pre_idx, post_idx, delay = (conn[:, c] for c in (0, 1, 3))  # float64 until range-checked
        for idx, pop, label in ((pre_idx, pre, "pre"), (post_idx, post, "post")):
            if idx.size and (idx.min() < 0 or idx.max() >= pop.size):
                bad = idx.min() if idx.min() < 0 else idx.max()
                raise ValueError(
                    f"{where}: {label} index {bad:.15g} out of range for population {pop.name!r} of size {pop.size}"
                )
        weight = _integral_weights(conn[:, 2], where, rounding)
        lo, hi = spec.weight_range(post.neuron_model)
        _check_range(weight, where, lo, hi, post.neuron_model)
        if spec.has_delays(post.neuron_model):
            if delay.size and (delay.min() < 0 or delay.max() > spec.max_delay):
                bad = delay.min() if delay.min() < 0 else delay.max()
                raise ValueError(f"{where}: delay {bad:.15g} outside [0, {spec.max_delay}] of model "
                                 f"{post.neuron_model!r}")
        elif delay.size and np.any(delay != 0):
            raise ValueError(
                f"{where}: delay {delay[delay != 0][0]:.15g} on model {post.neuron_model!r}, which has no delays "
                f"(spikes arrive after one tick); use a delay model ({', '.join(spec.delay_models)}) or delay 0"
            )
        self.pre_idx = pre_idx.astype(np.int32)
        self.post_idx = post_idx.astype(np.int32)
        self.weights = weight.astype(np.int32)
        self.delays = delay.astype(np.int32)

    @property
    def kind(self) -> kinds.ProjectionKind:
        """The projection kind, ``dense`` (:mod:`s2jax.kinds.projections`)."""
        return kinds.get_projection("dense")

    @property
    def connections(self) -> np.ndarray:
        """The validated rows ``[pre, post, weight, delay]`` as int32."""
        return np.stack([self.pre_idx, self.post_idx, self.weights, self.delays], axis=1)

    def __repr__(self):
        return f"Projection({self.pre.name!r} -> {self.post.name!r}, {len(self.weights)} synapses)"


class Conv2DProjection:
    """A convolution into a ``lif_conv2d`` population (py-spinnaker2's ``snn.Conv2DProjection``), or
    into any population whose kind declares the projection kind ``conv2d``.

    ``weights``: integer kernel ``(C_in, C_out, kH, kW)``. ``conv_params``: ``in_height``,
    ``in_width`` (required), ``stride_x``, ``stride_y``, ``pool_x``, ``pool_y`` (default 1),
    ``pad_top``, ``pad_bottom``, ``pad_left``, ``pad_right`` (default 0). Neurons are indexed
    C, H, W (NCHW flatten). The input is first sum-pooled over non-overlapping ``pool_y x pool_x``
    windows (trailing rows / columns that do not fill a window are dropped), then zero-padded and
    cross-correlated with the kernel at the given strides (a kernel holds at most
    :data:`~s2jax.qnet.MAX_SYNAPSES` weights)::

        H_out = (in_height // pool_y + pad_top + pad_bottom - kH) // stride_y + 1   (same for W)
    """

    def __init__(self, pre: Population, post: Population, weights, conv_params: dict, *,
                 rounding: Rounding | None = None, spec: ChipSpec = SPINNAKER2, name: str | None = None):
        where = _check_endpoints("conv projection", pre, post, rounding, spec)
        self.pre, self.post = pre, post
        self.name = _check_name(name, "conv projection")
        if post.neuron_model not in kinds.projection_targets("conv2d"):
            raise ValueError(f"{where}: a Conv2DProjection must target a {targets_text('conv2d')} population "
                             f"(a kind that declares the 'conv2d' projection kind), got {post.neuron_model!r}")
        if not isinstance(conv_params, dict):
            raise ValueError(f"{where}: conv_params must be a dict, got {_describe(conv_params)}")
        unknown = sorted(set(conv_params) - set(CONV_KEYS), key=repr)
        if unknown:
            raise ValueError(f"{where}: unknown conv_params key(s) {unknown}; known: {list(CONV_KEYS)}")
        for key in ("in_height", "in_width"):
            if key not in conv_params:
                raise ValueError(f"{where}: conv_params needs {key!r}")
        cp = {"stride_x": 1, "stride_y": 1, "pool_x": 1, "pool_y": 1,
              "pad_top": 0, "pad_bottom": 0, "pad_left": 0, "pad_right": 0, **conv_params}
        for key, value in cp.items():
            low = 0 if key.startswith("pad") else 1
            if not _is_int(value) or value < low:
                raise ValueError(f"{where}: conv_params[{key!r}] must be an integer >= {low}, got {value!r}")
        self.conv_params = {k: int(cp[k]) for k in CONV_KEYS}
        size = getattr(weights, "size", None)  # an array's size, checked before it is copied
        error = synapse_count_error(size if _is_int(size) else 0, f"{where}: kernel")
        if error:
            raise ValueError(error)
        w = _real_array(weights, f"{where}: weights")
        error = synapse_count_error(w.size, f"{where}: kernel")
        if error:
            raise ValueError(error)
        if w.ndim != 4:
            raise ValueError(f"{where}: weights must have shape (C_in, C_out, kH, kW), got {w.shape}")
        w = _integral_weights(w, where, rounding)
        lo, hi = spec.conv_weight_range
        _check_range(w, where, lo, hi, post.neuron_model)
        c_in, c_out, kh, kw = w.shape
        cp = self.conv_params
        if pre.size != c_in * cp["in_height"] * cp["in_width"]:
            raise ValueError(
                f"{where}: population {pre.name!r} has {pre.size} neurons but C_in x in_height x in_width = "
                f"{c_in} x {cp['in_height']} x {cp['in_width']} = {c_in * cp['in_height'] * cp['in_width']}"
            )
        if cp["pool_x"] * cp["pool_y"] > 127:
            raise ValueError(f"{where}: pooling window {cp['pool_y']}x{cp['pool_x']} exceeds 127 inputs")
        hp, wp = cp["in_height"] // cp["pool_y"], cp["in_width"] // cp["pool_x"]
        h_span = hp + cp["pad_top"] + cp["pad_bottom"]
        w_span = wp + cp["pad_left"] + cp["pad_right"]
        if hp < 1 or wp < 1 or h_span < kh or w_span < kw:
            raise ValueError(
                f"{where}: kernel {kh}x{kw} does not fit the pooled, padded input {h_span}x{w_span} "
                f"(input {cp['in_height']}x{cp['in_width']}, pool {cp['pool_y']}x{cp['pool_x']})"
            )
        self.out_height = (h_span - kh) // cp["stride_y"] + 1
        self.out_width = (w_span - kw) // cp["stride_x"] + 1
        n_out = c_out * self.out_height * self.out_width
        if post.size != n_out:
            raise ValueError(
                f"{where}: population {post.name!r} has {post.size} neurons but the conv output is "
                f"C_out x H_out x W_out = {c_out} x {self.out_height} x {self.out_width} = {n_out}"
            )
        self.weights = w.astype(np.int32)

    @property
    def kind(self) -> kinds.ProjectionKind:
        """The projection kind, ``conv2d`` (:mod:`s2jax.kinds.projections`)."""
        return kinds.get_projection("conv2d")

    def __repr__(self):
        return f"Conv2DProjection({self.pre.name!r} -> {self.post.name!r}, kernel {self.weights.shape})"
