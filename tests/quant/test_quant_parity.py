"""Oracle 1: the QAT forward pass equals the chip model run on quantize(model), exactly."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from s2jax import SPINNAKER2, Rounding, hwmodel
from s2jax import layers as L
from s2jax import quant


def build(kind, seed):
    r = nnx.Rngs(seed)
    if kind == "lif":
        return L.SNN([(L.Linear(6, 8, rngs=r), L.LIF(8, alpha=0.9, threshold=0.7, bias=True, learn_threshold=True)),
                      (L.Linear(8, 3, rngs=r), L.LI(3, alpha=0.8))]), (6,)
    if kind == "cuba":
        return L.SNN([(L.Linear(6, 8, rngs=r), L.CubaLIF(8, alpha=0.9, exc_decay=0.7, inh_decay=0.5, t_refrac=1,
                                                         threshold=0.5)),
                      (L.Linear(8, 3, rngs=r), L.LIF(3, threshold=0.3, reset="to_v_reset", v_reset=-0.1))]), (6,)
    return L.SNN([(L.Conv(2, 3, 3, pool=2, padding=1, rngs=r), L.LIF((3, 4, 4), threshold=0.5)),
                  (L.Linear(48, 4, rngs=r), L.LI(4))]), (2, 8, 8)


def perturb(model, seed):
    """Move every trainable parameter off its initial value, as training would."""
    state = nnx.state(model, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(seed), 64))
    state = jax.tree_util.tree_map(lambda p: p + 0.05 * jax.random.normal(next(keys), p.shape), state)
    nnx.update(model, state)


CONFIGS = [
    dict(profile="float32"),
    dict(profile="fixed"),
    dict(profile="float32", per_channel=True, adaptive_threshold=True),
    dict(profile="fixed", per_channel=True, power_of_two=True, adaptive_threshold=True),
    dict(profile="float32", target="lif", calibration="percentile", percentile=95.0),
    dict(profile="fixed", spec=dataclasses.replace(SPINNAKER2, fixed_param_rounding=Rounding.FLOOR,
                                                    fixed_decay_rounding=Rounding.TO_ZERO)),
]


@pytest.mark.parametrize("kind", ["lif", "cuba", "conv"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items() if k != "spec")
                         + ("-custom_spec" if "spec" in c else ""))
def test_qat_forward_equals_chip_model(kind, cfg):
    model, shape = build(kind, seed=len(str(cfg)))
    config = quant.QuantConfig(**cfg)
    q = quant.qat(model, config)
    perturb(q, 3)  # fine-tuned parameters: thresholds, biases, threshold scales off round values
    x = (jax.random.uniform(jax.random.key(1), (3, 30, *shape)) < 0.4).astype(jnp.float32)
    out = nnx.jit(lambda q, x: q(x))(q, x)
    net = quant.quantize(q, calibration_inputs=x)
    _, trace = hwmodel.run(net, {"input": np.asarray(x).reshape(3, 30, -1).astype(bool)}, profile=config.profile,
                           spec=config.spec, record="all")
    fired = 0
    for k, neuron in enumerate(q.neurons):
        got_v = np.asarray(out.voltages[k]).reshape(3, 30, -1)
        np.testing.assert_array_equal(got_v.view(np.int32), np.asarray(trace.voltages[f"layer{k}"]).view(np.int32),
                                      err_msg=f"layer {k} voltage bits")
        if not neuron.readout:
            spikes = np.asarray(out.spikes[k]).reshape(3, 30, -1) > 0
            np.testing.assert_array_equal(spikes, np.asarray(trace.spikes[f"layer{k}"]), err_msg=f"layer {k} spikes")
            fired += spikes.sum()
    assert fired > 0, "a parity test on a silent network proves little"


@pytest.mark.parametrize("profile", ["float32", "fixed"])
@pytest.mark.parametrize("kind", ["lif", "cuba", "conv"])
def test_gradients_through_qat_are_finite_and_non_zero(kind, profile):
    model, shape = build(kind, 0)
    q = quant.qat(model, quant.QuantConfig(profile=profile, adaptive_threshold=True))
    x = (jax.random.uniform(jax.random.key(1), (3, 30, *shape)) < 0.4).astype(jnp.float32)
    y = jnp.array([0, 1, 2])

    def loss(q):
        o = q(x).output
        if q.neurons[-1].readout:
            return L.losses.mean_membrane_cross_entropy(o, y)
        return L.losses.rate_cross_entropy(o, y)

    grads = nnx.to_flat_state(nnx.state(nnx.grad(loss)(q), nnx.Param))
    for path, g in grads:
        g = np.asarray(g[...])
        assert np.all(np.isfinite(g)), path
    kernels = [np.abs(np.asarray(g[...])).sum() for path, g in grads if "kernel" in map(str, path)]
    assert len(kernels) == 2 and all(k > 0 for k in kernels)


def test_quantize_refuses_a_model_without_chip_latency():
    model = L.SNN([(L.Linear(2, 2, rngs=nnx.Rngs(0)), L.LIF(2))], latency=False)
    with pytest.raises(ValueError, match="latency=True"):
        quant.quantize(model)


@pytest.mark.parametrize("profile,remat", [(None, True), ("float32", 30), ("fixed", 7)])
def test_remat_keeps_the_forward_exact_and_the_gradient(remat, profile):
    model, shape = build("cuba", seed=5)
    if profile:
        model = quant.qat(model, quant.QuantConfig(profile=profile))
    x = (jax.random.uniform(jax.random.key(4), (2, 23, *shape)) < 0.4).astype(jnp.float32)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    remat_model = nnx.merge(graphdef, params, rest)
    remat_model.remat = remat

    def loss(p, m):
        g, _, r = nnx.split(m, nnx.Param, ...)
        return jnp.sum(nnx.merge(g, p, r)(x).output)

    out, out_r = model(x), remat_model(x)
    for a, b in zip(out.voltages + out.spikes, out_r.voltages + out_r.spikes):
        if profile:  # chip numerics: integer weights on spikes, exact in any matmul blocking
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        else:  # float training mode: the chunked matmul may round differently
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    g = jax.grad(loss)(params, model)
    g_r = jax.grad(loss)(params, remat_model)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_r)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)  # float gradients, not chip values
    assert any(np.any(np.asarray(a) != 0) for a in jax.tree_util.tree_leaves(g))


def test_remat_rejects_a_bad_chunk_length():
    with pytest.raises(ValueError, match="remat must be"):
        L.SNN([(L.Linear(2, 2, rngs=nnx.Rngs(0)), L.LIF(2))], remat=0)


def test_float_readout_gradients_stay_finite_for_large_losses():
    """The LI readout's unreachable threshold (3.4e38) must not turn a large gradient into NaN."""
    model = L.SNN([(L.Linear(2, 3, rngs=nnx.Rngs(0)), L.LIF(3, threshold=0.5)),
                   (L.Linear(3, 1, rngs=nnx.Rngs(1)), L.LI(1, alpha=0.5))])
    x = jnp.ones((1, 4, 2))
    for c in (0.5, 2.0, 100.0):
        grads = nnx.grad(lambda m: c * jnp.sum(m(x).output ** 2))(model)
        for leaf in jax.tree_util.tree_leaves(nnx.state(grads, nnx.Param)):
            assert np.all(np.isfinite(np.asarray(leaf))), c
