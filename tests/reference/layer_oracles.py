"""The oracle of every layer kind, with an example network: ``LAYER_ORACLES[kind]`` is a
:class:`LayerOracle`: ``run(layer, x, spec) -> outputs`` (``x`` ``(B, T, ...)`` the layer's inputs, the
outputs ``(B, T, ...)`` as int64 for integer layers or float32, computed with the scalar references of
this folder), ``example(rng, profile) -> (network, inputs)`` and the ``profiles`` to test.
``tests/kinds/test_layer_kinds.py`` runs every registered layer kind through its entry here, and fails
for a kind without one: a kind shipped with the package adds its module, this entry and its docs row."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np
from flax import nnx

from s2jax import qnet, quant
from s2jax.egru import EGRULayer
from s2jax.layers.egru import EGRUStack
from s2jax.quant.egru import quantize_inputs
from tests.reference import egru_oracle, mla_oracle


class LayerOracle(NamedTuple):
    run: Callable
    example: Callable
    profiles: tuple = ("fixed",)


def egru_model(seed, sizes=(6, 5), n_in=4):
    model = EGRUStack(n_in, list(sizes), rngs=nnx.Rngs(seed))
    keys = iter(jax.random.split(jax.random.key(seed), 8))
    for cell in model.cells:
        cell.bias[...] = 0.5 * jax.random.normal(next(keys), cell.bias.shape)
        cell.theta[...] = jax.random.uniform(next(keys), cell.theta.shape, minval=0.0, maxval=0.3)
    return model


def egru_example(rng, profile):
    model = egru_model(int(rng.integers(1000)))
    x = rng.normal(size=(2, 9, 4)).astype(np.float32) * (rng.random((2, 9, 4)) < 0.6)
    net = quant.quantize(quant.qat(model, quant.QuantConfig(profile=profile)))
    return net, (np.asarray(quantize_inputs(x)) if profile == "fixed" else x)


def mla_dense_example(rng, profile):
    a = qnet.Layer("mla_dense", {"w": rng.integers(-128, 128, (5, 7)).astype(np.int8),
                                 "bias": rng.integers(-500, 500, 5).astype(np.int32)},
                   settings={"shift": 6, "relu": True}, name="fc0")
    b = qnet.Layer("mla_dense", {"w": rng.integers(-128, 128, (3, 5)).astype(np.int8)},
                   settings={"shift": 5, "out_range": [-100, 100]}, pre=a, name="fc1")
    return qnet.Network("dense").add(a, b), rng.integers(-128, 128, (2, 4, 7)).astype(np.int8)


def mla_conv2d_example(rng, profile):
    conv = qnet.Layer("mla_conv2d", {"w": rng.integers(-128, 128, (3, 2, 3, 2)).astype(np.int8),
                                     "bias": rng.integers(-900, 900, 3).astype(np.int32)},
                      settings={"shift": 7, "relu": True, "out_range": [0, 255], "signed_input": False,
                                "in_shape": [2, 6, 5], "stride": [2, 1], "padding": [[1, 0], [0, 1]]}, name="conv")
    return qnet.Network("conv").add(conv), rng.integers(0, 256, (2, 3, 2, 6, 5)).astype(np.uint8)


def _egru(layer, x, spec):
    a = layer.arrays
    data = EGRULayer(a["w_in"], a["w_rec"], a.get("e_in"), a.get("e_rec"), a["bias"], a["b_rg"], a["theta"])
    (y, _), = egru_oracle.run([data], np.asarray(x), "int" if layer.profile == "fixed" else "float32", spec)
    return y


def _mla(conv: bool):
    def run(layer, x, spec):
        s, a = layer.settings, layer.arrays
        b, t = x.shape[:2]
        flat = np.asarray(x).reshape(b * t, *x.shape[2:])
        common = dict(shift=s["shift"], rounding=spec.mla_shift_rounding, relu=s["relu"], lo=s["out_range"][0],
                      hi=s["out_range"][1])
        if conv:
            y = mla_oracle.conv2d(flat, a["w"], a.get("bias"), stride=s["stride"], pad=s["padding"], **common)
        else:
            y = mla_oracle.dense(flat.reshape(len(flat), -1), a["w"], a.get("bias"), **common)  # in_shape: flattened
        return y.reshape(b, t, *y.shape[1:])
    return run


def mla_maxpool_example(rng, profile):
    conv = qnet.Layer("mla_conv2d", {"w": rng.integers(-128, 128, (3, 2, 2, 2)).astype(np.int8)},
                      settings={"shift": 7, "in_shape": [2, 7, 6]}, name="conv")
    pool = qnet.Layer("arm_maxpool", {}, settings={"in_shape": [3, 6, 5], "window": [2, 2], "stride": [2, 1]},
                      pre=conv, name="pool")
    return qnet.Network("pool").add(conv, pool), rng.integers(-128, 128, (2, 3, 2, 7, 6)).astype(np.int8)


def _maxpool(layer, x, spec):
    """Max over each window with Python loops (no padding; windows that do not fit are dropped)."""
    s = layer.settings
    (kh, kw), (sy, sx) = s["window"], s["stride"] or s["window"]
    b, t, c, h, w = x.shape
    ho, wo = (h - kh) // sy + 1, (w - kw) // sx + 1
    out = np.zeros((b, t, c, ho, wo), np.int64)
    for i in np.ndindex(b, t, c, ho, wo):
        y0, x0 = i[3] * sy, i[4] * sx
        out[i] = max(int(x[i[0], i[1], i[2], y0 + dy, x0 + dx]) for dy in range(kh) for dx in range(kw))
    return out


LAYER_ORACLES = {
    "egru": LayerOracle(_egru, egru_example, ("fixed", "float32")),
    "mla_dense": LayerOracle(_mla(False), mla_dense_example),
    "mla_conv2d": LayerOracle(_mla(True), mla_conv2d_example),
    "arm_maxpool": LayerOracle(_maxpool, mla_maxpool_example),
}
