"""NIR import and export: :func:`to_nir` and :func:`from_nir`.

**Export** (:func:`to_nir`) writes a ``qnet.Network`` (chip units: integer weights) or a float
``layers.SNN`` (float units) as a NIR graph. A population of ``alpha_decay = a``, threshold
``theta``, ``i_offset = c`` becomes, with the stored tick ``dt`` and forward Euler::

    LIF      tau = dt / (1 - a)   r = tau / dt   v_leak = c r   v_threshold = theta   v_reset
    LI       the same without threshold (a readout: threshold = ChipSpec.readout_threshold)
    CubaLIF  tau_mem, r as LIF;  tau_syn = dt / (1 - exc_decay),  w_in = tau_syn / dt

so that ``dt / tau * r = 1`` and ``dt / tau_syn * w_in = 1``: py-spinnaker2's forward-Euler import
(below, without weight scaling) gives back ``a``, ``theta`` and ``c`` up to float64 rounding.
``a = 1`` (no leak) is written as ``tau = 2^26 dt``, whose forward-Euler decay ``1 - 2^-26`` rounds
to exactly 1.0 in float32. When a LIF / LI population has one dense input and a non-zero
``i_offset``, the constant travels as the bias of an ``Affine`` node (``v_leak = 0``); otherwise
weights are ``Linear`` nodes. Convolutions are ``Conv2d`` (NIR layout ``(C_out, C_in, kH, kW)``,
symmetric padding only), preceded by a ``SumPool2d`` (kernel = stride) for the chip's fused
pooling; a ``Flatten`` precedes a dense layer fed by a ``(C, H, W)`` population. Every population
with no synapses into another population feeds an ``Output`` node.

Everything the NIR primitives cannot say travels in node ``metadata`` under ``s2jax_*`` keys
(flat; values are strings, numbers and NumPy arrays, all of which survive ``nir.write`` /
``nir.read``): the chip neuron model, reset mode, every parameter as the population holds it
(float64; the chip stores its float32 rounding: ``alpha_decay``, ``threshold``, ``i_offset``,
``v_init``, ``v_reset``, ``exc_decay``, ``inh_decay``, ``t_refrac``), the integer synapse rows
with their delays (NIR has no per-synapse delay) and the weight range of each projection, the
conv parameters, spike-source times, population names, order and recording, atoms per core;
and in the graph metadata the format, ``dt``, the integrator of the convention above, the
one-tick-per-layer latency and the integer formats. :func:`from_nir` uses that metadata, when the
graph carries it, to rebuild the network exactly (``use_metadata=False`` converts the NIR
parameters instead, like any foreign graph).

**Import** (:func:`from_nir`) reproduces py-spinnaker2's NIR conversion (``ConversionConfig``
settings under their own names). Per neuron node, with the one-tick decay and gain of a time
constant ``tau``::

    forward:      decay = 1 - dt/tau        gain = dt/tau
    exponential:  decay = exp(-dt/tau)      gain = 1 - exp(-dt/tau)

    w_scale = 127 / max|W_in|  (or / percentile(|W_in|, p)), over every weight node into the
              population (1 without scale_weights)
    LIF:     alpha_decay = decay;  scale = (1 / (gain r)) w_scale
             threshold = v_threshold scale;  i_offset = gain v_leak scale + bias w_scale
    IF:      alpha_decay = 1;  threshold = v_threshold ((1 / r) w_scale);  i_offset = bias w_scale
    CubaLIF: lif_curr_exp_no_delay;  exc_decay = inh_decay = decay(tau_syn);  alpha_decay = decay(tau_mem)
             scale = (1 / (gain_mem r)) (1 / (gain_syn w_in)) w_scale   (the input gains folded into
             the threshold);  threshold = v_threshold scale
             i_offset = gain_mem v_leak scale + bias w_in (1 / (gain_syn w_in)) w_scale;  t_refrac = 0
    LI (ours, a readout): as LIF with threshold = ChipSpec.readout_threshold, voltage recorded
    weights: W^T w_scale rounded to integers (``rounding``, default toward zero)

``bias`` sums the biases of the ``Affine`` / ``Conv2d`` nodes into the population (a conv bias is
per output channel). LIF and IF populations fed by a ``Conv2d`` become ``lif_conv2d``, the others
``lif_no_delay``. Reset "subtract" is ``reset_by_subtraction``, "zero" is ``reset_to_v_reset`` with
``v_reset = 0`` (NIR's ``v_reset`` is not used, as in py-spinnaker2).

Provenance. The formulas above, the choice of population model, the weight-scale rules, the
conv layout (``weight.swapaxes(0, 1)``, ``pad_top = pad_bottom = padding[0]``, pooling fused into
``Conv2DProjection`` only for kernel = stride and no padding), the rejection of two consecutive
weight nodes, of weightless edges into neurons and of CubaLIF after Conv2d, and the option names
were read in py-spinnaker2's NIR converter ``s2_nir`` (the package ``spinnaker2`` of
gitlab.com/spinnaker2/py-spinnaker2, whose NIR support NIR's SpiNNaker2 example places on the
branch ``py-spinnaker2_nir``), as stored in the public code index, which names no repository for
it: ``ConversionConfig``, ``IntegratorMethod``, ``ResetMethod``, ``convert_LIF``,
``convert_CubaLIF``, ``convert_IF``, ``create_populations``, ``get_conv2d_params``,
``create_sumpool2d_conv2d_projection``; and in a University of Manchester port of the same file
(package ``spinnirker``) that adds ``weight_scale_percentile`` (``get_percentile_abs_weight``:
``np.percentile`` of all incoming ``|W|``, used unless the percentile is 100). Our own choices,
where py-spinnaker2 differs or is silent: integer weights by a *named* rounding (py-spinnaker2
truncates conv kernels with ``astype(int8)`` and hands dense weights to ``Projection`` as floats);
percentile scaling saturates the outliers at +-127 on purpose (``astype(int8)`` would wrap them);
an all-zero input gets ``w_scale = 1`` (py-spinnaker2 divides by zero); zero weights make no
synapse (they only count as events); stride and pooling index 0 are the height (NIR / PyTorch
order; py-spinnaker2 names index 0 ``x``, the same for square windows); connection delay 0 (our
``*_no_delay`` models take none); ``LI`` readouts; and the defaults ``dt = 1e-3``,
``integrator = "forward"`` and ``scale_weights = True`` (py-spinnaker2: 1.0, exponential, False).
Not taken: ``conn_delay`` (from_nir emits only ``*_no_delay`` models, whose spikes arrive after one
tick; the keyword is rejected), and the ``AvgPool2d`` / ``Conv1d`` nodes of some py-spinnaker2
versions (a ``ValueError`` naming the node); a ``SumPool2d`` straight into a neuron node (which
py-spinnaker2 turns into weight-1 synapses) is rejected as a weightless edge.

Example::

    >>> import nir, numpy as np
    >>> g = nir.NIRGraph.from_list(nir.Linear(np.array([[0.5, -0.25]])),
    ...                            nir.LIF(tau=np.array([0.01]), r=np.array([1.0]),
    ...                                    v_leak=np.array([0.0]), v_threshold=np.array([1.0])))
    >>> net = from_nir(g)                      # w_scale = 127 / 0.5 = 254
    >>> net.population("lif").params["threshold"].tolist(), net.projections[0].weights.tolist()
    ([2540.0], [127, -63])
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from s2jax import qnet
from s2jax.export.nir_common import (_P, FORMAT_VERSION, INTEGRATORS, RESETS, NIRFileError, _check_dt, _md,
                                     _need_int, _text, graph_digest)
from s2jax.export.nir_common import NEURON_NODES, QNET_PARAMS, SHAPE_NODES, SUPPORTED_NODES, WEIGHT_NODES  # noqa: F401
from s2jax.export.nir_convert import WeightQuantization, _convert_model, _convert_qnet, _Settings, format_weight_report
from s2jax.export.nir_export import NO_LEAK_TAU_TICKS, to_nir  # noqa: F401
from s2jax.export.nir_read import MAX_NIR_ARRAY_BYTES, _check_structure, _load, _trace  # noqa: F401
from s2jax.export.nir_restore import _check_digest, _restore_model, _restore_qnet
from s2jax.spec import SPINNAKER2, ChipSpec, Rounding

__all__ = ["to_nir", "from_nir", "NIRFileError", "FORMAT_VERSION", "WeightQuantization", "format_weight_report",
           "graph_digest"]


def from_nir(graph_or_path, *, dt: float = 1e-3, integrator: str = "forward", reset: str = "subtract",
             scale_weights: bool = True, weight_scale_percentile: float | None = None, output: str = "qnet",
             output_record=("spikes",), rounding: Rounding = Rounding.TO_ZERO, use_metadata: bool = True,
             spec: ChipSpec = SPINNAKER2):
    """A ``qnet.Network`` (``output="qnet"``) or a float ``layers.SNN`` (``output="model"``) of a NIR graph.

    ``graph_or_path``: a ``nir.NIRGraph`` or the path of a file written by ``nir.write`` (read
    without pickling; a missing, non-HDF5 or non-NIR file raises :class:`NIRFileError`).

    py-spinnaker2's settings, under their names: ``dt`` (seconds per tick), ``integrator``
    ("forward": ``alpha_decay = 1 - dt/tau``; "exponential": ``exp(-dt/tau)``), ``reset``
    ("subtract" or "zero"), ``scale_weights`` (``w_scale = 127 / max|W_in|`` per target population,
    thresholds and ``i_offset`` scaled alike), ``weight_scale_percentile`` (``p`` in (0, 100]:
    ``127 / percentile(|W_in|, p)``, the outliers saturating at +-127; ``None`` or 100 is the max)
    and ``output_record`` (what populations feeding an ``Output`` record; ``LI`` readouts always
    record ``"v"``). Our own: ``rounding`` of the scaled weights (default toward zero, as
    py-spinnaker2's ``astype(int8)``), ``spec``. The formulas are in the module docstring.

    ``output="qnet"``: one ``spike_list`` population per ``Input``, then one population per neuron
    node, named after the nodes, in topological order; each carries py-spinnaker2's
    ``nir_w_scale`` / ``nir_v_scale`` (divide a recorded voltage by ``nir_v_scale`` for NIR units).
    ``output="model"``: a feed-forward ``layers.SNN(latency=True)`` in float units (the same
    formulas with ``w_scale = 1``; quantize it later with ``s2jax.quant``), for chain graphs only;
    ``weight_scale_percentile`` belongs to ``quant.QuantConfig`` there.

    ``use_metadata``: a graph written by :func:`to_nir` is rebuilt exactly from its metadata when
    it holds the requested kind (a qnet graph for "qnet", a model graph for "model"); the
    conversion settings then play no part. Otherwise the NIR parameters are converted.

    The returned ``qnet.Network`` is named after the graph's ``s2jax_network_name`` or, read from a
    file, the file's stem. Its attribute ``nir_weight_report`` is a tuple of
    :class:`WeightQuantization`, one per weight node whose float weights were quantized (scale, max
    and mean absolute error, clipped count; :func:`format_weight_report` prints it); it is empty
    when the network was rebuilt from s2jax metadata (integer weights, nothing quantized).

    Raises ``ValueError`` naming the node and value for: unsupported node types, two consecutive
    weight nodes, a weightless edge into a neuron node, loops without a neuron, shape mismatches,
    shapes over :data:`s2jax.qnet.MAX_POPULATION_SIZE` (checked before allocating), values that are
    not real finite numbers (bool, complex, text), weights out of range, bad settings, and s2jax
    metadata that does not fit the graph (a node of the wrong kind, a repeated index, ends that
    differ from the edges, a content digest that does not match). Every node is either rebuilt or
    refused; none is skipped. A file that is missing, not HDF5, corrupt, truncated or over
    :data:`~s2jax.export.nir_read.MAX_NIR_ARRAY_BYTES` raises :class:`NIRFileError` naming it.
    """
    dt = _check_dt(dt)
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {tuple(RESETS)}, got {reset!r}")
    if output not in ("qnet", "model"):
        raise ValueError(f"output must be 'qnet' or 'model', got {output!r}")
    if weight_scale_percentile is not None:
        if not (isinstance(weight_scale_percentile, (int, float)) and 0 < weight_scale_percentile <= 100):
            raise ValueError(f"weight_scale_percentile must be in (0, 100], got {weight_scale_percentile!r}")
        if output == "model":
            raise ValueError("weight_scale_percentile scales integer weights; output='model' keeps float weights "
                             "(use quant.QuantConfig(calibration='percentile', percentile=p) when quantizing)")
        if not scale_weights:
            raise ValueError("weight_scale_percentile needs scale_weights=True")
    if not isinstance(rounding, Rounding):
        raise ValueError(f"rounding must be an s2jax.Rounding, got {rounding!r}")
    record = (output_record,) if isinstance(output_record, str) else tuple(output_record)
    for r in record:
        if r not in qnet.RECORDABLE:
            raise ValueError(f"output_record entry {r!r} is not recordable; choose from {list(qnet.RECORDABLE)}")
    graph = _load(graph_or_path)
    _check_structure(graph)
    syns, outputs = _trace(graph)
    fmt = _text(graph.metadata.get(_P + "format", "")) if isinstance(graph.metadata, dict) else ""
    stem = pathlib.Path(graph_or_path).stem if isinstance(graph_or_path, (str, os.PathLike)) else None
    if use_metadata and fmt == output:
        version = (_need_int(graph.metadata, "format_version", "graph metadata", -2**31, 2**31)
                   if _P + "format_version" in graph.metadata else -1)
        if version != FORMAT_VERSION:
            raise ValueError(f"s2jax metadata format version {version}; this s2jax reads version {FORMAT_VERSION} "
                             f"(pass use_metadata=False to convert the NIR parameters)")
        result = _restore_qnet(graph, syns, spec) if output == "qnet" else _restore_model(graph)
        _check_digest(graph)
        if output == "qnet":
            result.name = stem if result.name is None else result.name
            result.nir_weight_report = ()
        return result
    if output == "model" and fmt == "qnet":
        delayed = [n for n, v in graph.nodes.items() if _has_delays(_md(v).get(_P + "connections"))]
        if delayed:
            raise ValueError(f"weight nodes {delayed} carry synaptic delays, which a layers.SNN cannot express")
    cfg = _Settings(dt, integrator, reset, bool(scale_weights), weight_scale_percentile, rounding, record, spec)
    if output == "model":
        return _convert_model(graph, syns, cfg)
    net = _convert_qnet(graph, syns, outputs, cfg)
    name = graph.metadata.get(_P + "network_name") if isinstance(graph.metadata, dict) else None
    net.name = _text(name) if isinstance(name, (str, bytes)) else stem
    return net


def _has_delays(connections) -> bool:
    """Whether s2jax ``connections`` metadata (``(n, 4)`` integer rows) holds a non-zero delay."""
    c = np.asarray(connections) if connections is not None else np.zeros((0, 4), np.int64)
    return c.ndim == 2 and c.shape[1] == 4 and c.dtype.kind in "iu" and bool(np.any(c[:, 3] != 0))
