"""NIR import: :func:`from_nir` checks a graph, then rebuilds it from s2jax metadata
(``_restore``) or converts its NIR parameters (``_convert``); the conventions are in
:mod:`s2jax.export.nir`."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from s2jax import qnet
from s2jax.export.nir._common import _P, FORMAT_VERSION, INTEGRATORS, RESETS, _check_dt, _md, _need_int, _text
from s2jax.export.nir._convert import _convert_model, _convert_qnet, _Settings
from s2jax.export.nir._read import _check_structure, _load, _trace
from s2jax.export.nir._restore import _check_digest, _restore_model, _restore_qnet
from s2jax.spec import SPINNAKER2, ChipSpec, Rounding


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
    py-spinnaker2's ``astype(int8)``), ``spec``. The formulas are in :mod:`s2jax.export.nir`.

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
    :data:`~s2jax.export.nir.MAX_NIR_ARRAY_BYTES` raises :class:`NIRFileError` naming it.
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
