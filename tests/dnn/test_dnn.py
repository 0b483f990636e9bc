"""Flax NNX MLPs and CNNs -> int8 MAC-array networks: the chip model (``hwmodel.run``), the scalar
oracle (``tests/reference/mla_oracle.py``) and the QAT twin agree exactly; PTQ stays near float."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from s2jax import SPINNAKER2, Rounding, hwmodel
from s2jax.dnn import (Flatten, MaxPool, build_network, calibrate, dequantize_outputs, float_forward, lower, params_of,
                       qat_forward, quantize, quantize_inputs, to_chip_layout)
from tests.reference import mla_oracle
from tests.reference.layer_oracles import LAYER_ORACLES

SPECS = {r.name: dataclasses.replace(SPINNAKER2, mla_shift_rounding=r) for r in (Rounding.FLOOR, Rounding.HALF_UP)}


def mlp(seed):
    rngs = nnx.Rngs(seed)
    return nnx.Sequential(nnx.Linear(6, 16, rngs=rngs), nnx.relu, nnx.Linear(16, 8, rngs=rngs), jax.nn.relu,
                          nnx.Linear(8, 3, rngs=rngs)), (6,)


def cnn(seed):
    rngs = nnx.Rngs(seed)
    return nnx.Sequential(nnx.Conv(2, 4, (3, 3), padding="SAME", rngs=rngs), nnx.relu,
                          nnx.Conv(4, 3, (3, 3), strides=2, padding=((1, 0), (0, 1)), rngs=rngs), nnx.relu,
                          nnx.Conv(3, 3, (2, 2), padding="VALID", use_bias=False, rngs=rngs),
                          Flatten(), nnx.Linear(3 * 2 * 2, 5, rngs=rngs), nnx.relu, nnx.Linear(5, 3, rngs=rngs)), (6, 6, 2)


def cnn_pool(seed):
    rngs = nnx.Rngs(seed)
    return nnx.Sequential(nnx.Conv(2, 4, (3, 3), padding="SAME", rngs=rngs), nnx.relu, MaxPool((2, 2)),
                          nnx.Conv(4, 3, (3, 3), padding="VALID", rngs=rngs), MaxPool((2, 1), (1, 1)),
                          Flatten(), nnx.Linear(3 * 1 * 2, 3, rngs=rngs)), (8, 8, 2)


MODELS = {"mlp": mlp, "cnn": cnn, "cnn_pool": cnn_pool}


def data(shape, seed, n=8):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def oracle(net, x, rounding):
    """The network layer by layer through the scalar loops of the reference."""
    y = np.asarray(x, np.int64)
    for layer in net.layers:
        if layer.kind.name == "arm_maxpool":
            y = LAYER_ORACLES["arm_maxpool"].run(layer, y[:, None], SPINNAKER2)[:, 0]
            continue
        s, (lo, hi) = layer.settings, layer.settings["out_range"]
        w, b = layer.arrays["w"], layer.arrays["bias"]
        if layer.kind.name == "mla_conv2d":
            y = mla_oracle.conv2d(y, w, b, s["shift"], tuple(s["stride"]), tuple(map(tuple, s["padding"])), rounding,
                                  s["relu"], lo, hi)
        else:
            y = mla_oracle.dense(y.reshape(len(y), -1), w, b, s["shift"], rounding, s["relu"], lo, hi)
    return y


@pytest.mark.parametrize("rounding", SPECS)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("arch", MODELS)
def test_chip_model_equals_oracle_equals_qat(arch, seed, rounding):
    spec = SPECS[rounding]
    model, shape = MODELS[arch](seed)
    x = data(shape, seed)
    net, plan = quantize(model, x, spec=spec)
    xq = quantize_inputs(x, plan)
    outputs, _ = hwmodel.run(net, xq[:, None], spec=spec)
    chip = np.asarray(outputs[net.layers[-1].name])[:, 0]
    ops = lower(model, xq.shape[1:])
    qat = np.asarray(jax.jit(qat_forward, static_argnums=(2, 3))(params_of(ops), xq, plan, spec))
    ref = oracle(net, xq, spec.mla_shift_rounding)
    assert chip.dtype == np.int8
    np.testing.assert_array_equal(chip.astype(np.int64), ref)
    np.testing.assert_array_equal(qat, ref.astype(np.float32))
    assert np.abs(ref).max() > 0  # the test would be vacuous on all-zero outputs


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("arch", MODELS)
def test_ptq_is_close_to_float(arch, seed):
    model, shape = MODELS[arch](seed)
    x = data(shape, seed, n=64)
    net, plan = quantize(model, x)
    ref = np.asarray(model(jnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(float_forward(lower(model, to_chip_layout(x).shape[1:]), to_chip_layout(x))),
                               ref, rtol=1e-4, atol=1e-5)  # the lowering (NHWC -> NCHW) is the Flax model
    outputs, _ = hwmodel.run(net, quantize_inputs(x, plan)[:, None])
    y = dequantize_outputs(np.asarray(outputs[net.layers[-1].name])[:, 0], plan)
    err = np.abs(y - ref).max() / np.abs(ref).max()
    assert err < 0.15, err  # float vs int8, not chip parity: a loose bound


def test_qat_gradient_step_changes_the_loss():
    model, shape = cnn(0)
    x = data(shape, 0, n=16)
    ops = lower(model, to_chip_layout(x).shape[1:])
    plan = calibrate(ops, to_chip_layout(x))
    xq, target = quantize_inputs(x, plan), jnp.asarray(model(jnp.asarray(x))) * 0.5

    def loss(params):
        y = qat_forward(params, xq, plan) * jnp.float32(2.0**-plan.output_exp)
        return jnp.mean((y - target) ** 2)

    params = params_of(ops)
    value, grads = jax.value_and_grad(loss)(params)
    assert all(float(jnp.abs(g["w"]).sum()) > 0 for g in grads)
    step = [{k: p[k] - jnp.float32(2.0**-lp.w_exp) * jnp.sign(g[k]) for k in p}
            for p, g, lp in zip(params, grads, plan.layers)]  # one weight LSB against the gradient
    assert float(loss(step)) < float(value)
    # the trained parameters build a network that still equals the twin
    net = build_network(step, plan)
    outputs, _ = hwmodel.run(net, xq[:, None])
    np.testing.assert_array_equal(np.asarray(outputs[net.layers[-1].name])[:, 0].astype(np.float32),
                                  np.asarray(qat_forward(step, xq, plan)))


def test_lowering_layouts_and_padding():
    rngs = nnx.Rngs(0)
    conv = nnx.Conv(2, 3, (3, 2), strides=(2, 1), padding="SAME", rngs=rngs)
    (op,) = lower([conv], (2, 5, 4))
    np.testing.assert_array_equal(op.w, np.transpose(np.asarray(conv.kernel[...]), (3, 2, 0, 1)))
    assert op.padding == ((1, 1), (0, 1)) and op.stride == (2, 1) and op.out_shape == (3, 3, 4)


@pytest.mark.parametrize("bad, name", [(lambda r: nnx.Dropout(0.5, rngs=r), "Dropout"),
                                       (lambda r: nnx.BatchNorm(4, rngs=r), "BatchNorm"),
                                       (lambda r: jnp.tanh, "tanh")])
def test_unsupported_module_is_named(bad, name):
    rngs = nnx.Rngs(0)
    model = nnx.Sequential(nnx.Linear(3, 4, rngs=rngs), bad(rngs), nnx.Linear(4, 2, rngs=rngs))
    with pytest.raises(ValueError, match=rf"layers\[1\] \({name}\) is not supported"):
        lower(model, (3,))


def test_linear_on_an_image_needs_flatten():
    rngs = nnx.Rngs(0)
    with pytest.raises(ValueError, match=r"layers\[1\] \(Linear\).*Flatten"):
        lower(nnx.Sequential(nnx.Conv(1, 2, (3, 3), rngs=rngs), nnx.Linear(2, 2, rngs=rngs)), (1, 4, 4))


def test_accumulator_overflow_names_the_layer():
    rngs = nnx.Rngs(0)
    model = nnx.Sequential(nnx.Linear(8, 4, rngs=rngs), nnx.Linear(4, 2000, rngs=rngs), nnx.relu,
                           nnx.Linear(2000, 2, rngs=rngs))
    model.layers[3].kernel[...] = jnp.ones((2000, 2), jnp.float32)  # int8 weights 64 (exponent 6)
    with pytest.raises(ValueError, match=r"layer 'dense2' \(layers\[3\] \(Linear\)\): accumulator bound .* = "
                                         r"16,384,000 exceeds the 24-bit MAC accumulator \(8,388,607\)"):
        quantize(model, data((8,), 0))


def test_shift_beyond_31_names_the_layer():
    rngs = nnx.Rngs(0)
    model = nnx.Sequential(nnx.Linear(4, 2, rngs=rngs))
    model.layers[0].kernel[...] = jnp.full((4, 2), 2.0**-30, jnp.float32)  # weight exponent 36
    model.layers[0].bias[...] = jnp.full((2,), 100.0, jnp.float32)  # output exponent 0
    with pytest.raises(ValueError, match=r"layer 'dense0' .*shift 56 .* exceeds 31"):
        quantize(model, data((4,), 0), input_scale_exp=20)


@pytest.mark.parametrize("arch", MODELS)
def test_the_lowered_float_model_is_the_flax_model(arch):
    model, shape = MODELS[arch](3)
    x = data(shape, 3)
    want = np.asarray(model(jnp.asarray(x)))
    got = np.asarray(float_forward(lower(model, to_chip_layout(x).shape[1:]), to_chip_layout(x)))
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-5)  # float vs float, reordered sums
