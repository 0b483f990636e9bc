"""int8 DNNs on the MAC arrays (issue 14, first slice): a Flax NNX MLP or CNN lowered to
``mla_dense`` / ``mla_conv2d`` layers, quantized with power-of-two scales, and a QAT twin whose
forward pass is the chip's integer pipeline.

- :mod:`s2jax.dnn.lowering`: ``nnx.Sequential`` of ``nnx.Linear``, ``nnx.Conv``, ``nnx.relu``,
  :class:`MaxPool` and :class:`Flatten` -> :class:`Op` list (NCHW / OIHW);
- :mod:`s2jax.dnn.ptq`: calibration (percentile) -> :class:`Plan` -> ``qnet.Network``;
- :mod:`s2jax.dnn.qat`: :func:`qat_forward`, equal to ``hwmodel.run`` of the built network.

Example::

    >>> import numpy as np
    >>> from flax import nnx
    >>> from s2jax import hwmodel
    >>> from s2jax.dnn import quantize, quantize_inputs
    >>> rngs = nnx.Rngs(0)
    >>> model = nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), nnx.relu, nnx.Linear(8, 2, rngs=rngs))
    >>> x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    >>> net, plan = quantize(model, x)
    >>> [layer.kind.name for layer in net.layers]
    ['mla_dense', 'mla_dense']
    >>> outputs, _ = hwmodel.run(net, quantize_inputs(x, plan)[:, None])
    >>> outputs["dense1"].shape, outputs["dense1"].dtype
    ((16, 1, 2), dtype('int8'))

Not done yet (issue 14): average pooling, residual adds, attention, layer norm, softmax, GELU, MSE
calibration, cross-layer equalization, the scheduler and cost model, export, ONNX import.
"""

from s2jax.dnn.lowering import Flatten, MaxPool, Op, float_forward, lower, to_chip_layout
from s2jax.dnn.ptq import (MAX_EXPONENT, LayerPlan, Plan, bias_range, build_network, calibrate, dequantize_outputs,
                           exponent_for, params_of, quantize, quantize_inputs, to_grid)
from s2jax.dnn.qat import qat_forward, qat_layer

__all__ = ["Flatten", "MaxPool", "Op", "float_forward", "lower", "to_chip_layout", "MAX_EXPONENT", "LayerPlan", "Plan",
           "bias_range", "build_network", "calibrate", "dequantize_outputs", "exponent_for", "params_of", "quantize",
           "quantize_inputs", "to_grid", "qat_forward", "qat_layer"]
