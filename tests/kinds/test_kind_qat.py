"""Oracle 1 for every kind: ``layers.Neuron`` of each registered neuron kind, after ``quant.qat``,
equals the chip model run on ``quant.quantize`` of it, exactly, in both profiles; and the toy kind of
tests/toy_kind.py trains and fine-tunes with no code outside its kind module."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from s2jax import hwmodel, kinds, quant
from s2jax import layers as L


def params_for(kind, rng):
    """Trainable-looking values of a kind's parameters (float units, before the weight scale)."""
    out = {}
    for key, cls in kind.param_classes.items():
        if cls == "decay":
            out[key] = float(rng.uniform(0.3, 0.95))
        elif cls == "ticks":
            out[key] = int(rng.integers(0, 3))
        elif cls == "reset":
            out[key] = str(rng.choice(["reset_by_subtraction", "reset_to_v_reset"]))
        elif key == "threshold":
            out[key] = float(rng.uniform(0.3, 0.8))
        else:
            out[key] = float(rng.uniform(-0.1, 0.1))
    return out


def build(model, seed):
    rng, r = np.random.default_rng(seed), nnx.Rngs(seed)
    kind = kinds.get(model)
    readout = L.Neuron("lif_no_delay", 3, params={"alpha_decay": 0.8}, readout=True)
    learn = [k for k, c in kind.param_classes.items() if c == "value" and k != "v_init"][:1]
    return L.SNN([(L.Linear(6, 8, rngs=r), L.Neuron(model, 8, params=params_for(kind, rng), learn=learn)),
                  (L.Linear(8, 3, rngs=r), readout)])


def assert_qat_equals_chip(model, profile, seed=0):
    q = quant.qat(build(model, seed), quant.QuantConfig(profile=profile))
    x = (jax.random.uniform(jax.random.key(seed + 1), (3, 30, 6)) < 0.4).astype(jnp.float32)
    out = nnx.jit(lambda q, x: q(x))(q, x)
    net = quant.quantize(q)
    assert net.population("layer0").neuron_model == model
    _, trace = hwmodel.run(net, {"input": np.asarray(x).astype(bool)}, profile=profile, record="all")
    for k in range(2):
        np.testing.assert_array_equal(np.asarray(out.voltages[k]).view(np.int32),
                                      np.asarray(trace.voltages[f"layer{k}"]).view(np.int32), err_msg=f"layer {k}")
    spikes = np.asarray(out.spikes[0]) > 0
    np.testing.assert_array_equal(spikes, np.asarray(trace.spikes["layer0"]))
    assert spikes.any(), "a parity test on a silent layer proves little"
    return q, x


@pytest.mark.parametrize("profile", ["float32", "fixed"])
@pytest.mark.parametrize("model", [m for m in kinds.neuron_names() if m != "lif_conv2d"])
def test_every_kind_qat_equals_the_chip_model(model, profile):
    assert_qat_equals_chip(model, profile)


def test_a_neuron_layer_after_conv_must_be_the_conv_kind():
    r = nnx.Rngs(0)
    model = L.SNN([(L.Conv(1, 2, 3, padding=1, rngs=r), L.Neuron("lif", (2, 4, 4)))])
    with pytest.raises(ValueError, match="Conv layer maps to lif_conv2d"):
        quant.qat(model)


def test_neuron_argument_errors_name_the_kind():
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) \\['tau'\\] for neuron model 'lif'"):
        L.Neuron("lif", 3, params={"tau": 2.0})
    with pytest.raises(ValueError, match="only 'value' and 'decay' parameters"):
        L.Neuron("lif_curr_exp", 3, learn=["t_refrac"])
    with pytest.raises(ValueError, match="unknown neuron model 'nope'"):
        L.Neuron("nope", 3)
    with pytest.raises(ValueError, match="input kind"):
        L.Neuron("spike_list", 3)
    with pytest.raises(ValueError, match="parameter 'threshold' must be a scalar or have the layer's shape \\(3,\\)"):
        L.Neuron("lif", 3, params={"threshold": [1.0, 2.0]})
    with pytest.raises(ValueError, match="parameter 'alpha_decay' must be finite numbers"):
        L.Neuron("lif", 3, params={"alpha_decay": float("nan")})
    with pytest.raises(ValueError, match="'t_refrac' must be finite numbers \\(non-negative integer ticks\\)"):
        L.Neuron("lif_curr_exp", 3, params={"t_refrac": 1.5})


@pytest.fixture
def toy():
    from tests import toy_kind

    kinds.register(toy_kind.KIND)
    yield toy_kind
    kinds.unregister(toy_kind.NAME)


@pytest.mark.parametrize("profile", ["float32", "fixed"])
def test_toy_kind_qat_equals_the_chip_model_and_fine_tunes(toy, profile):
    q, x = assert_qat_equals_chip(toy.NAME, profile, seed=4)
    y = jnp.array([0, 1, 2])
    opt = nnx.Optimizer(q, optax.adam(1e-2), wrt=nnx.Param)

    def loss(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(x).output.mean(axis=1), y).mean()

    grads = nnx.grad(loss)(q)
    leaves = jax.tree_util.tree_leaves(nnx.state(grads, nnx.Param))
    assert all(np.all(np.isfinite(g)) for g in leaves) and any(np.any(g != 0) for g in leaves)
    before = float(loss(q))
    with jax.numpy_dtype_promotion("standard"):  # optax's int32 step counter
        for _ in range(5):
            opt.update(q, nnx.grad(loss)(q))
    assert float(loss(q)) != before  # the toy kind's parameters and weights train
