"""A learning test that can fail: float training, PTQ at the 4-bit ``lif`` range and QAT fine-tuning,
both evaluated on the chip model, on a synthetic temporal task generated here (fixed seeds).

Task: 3 classes of 12-channel spike trains over 20 ticks. Class 0: channels 0-3 fire early and
4-7 late; class 1: the reverse; class 2: both groups in the middle ticks. Signal rate 0.3 over
background 0.12, so the task is noisy and accuracies sit well below 100%.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from s2jax import hwmodel, quant
from s2jax import layers as L

T, C, G = 20, 12, 4


def make_data(key, n):
    k1, k2 = jax.random.split(key)
    y = jax.random.randint(k1, (n,), 0, 3)
    t = jnp.arange(T)[None, :, None]
    ch = jnp.arange(C)[None, None, :]
    early, late, mid = t < T // 2, t >= T // 2, (t >= 5) & (t < 15)
    ga, gb = ch < G, (ch >= G) & (ch < 2 * G)
    yy = y[:, None, None]
    on = jnp.where(yy == 0, (ga & early) | (gb & late), jnp.where(yy == 1, (gb & early) | (ga & late), (ga | gb) & mid))
    x = (jax.random.uniform(k2, (n, T, C)) < jnp.where(on, 0.3, 0.12)).astype(jnp.float32)
    return x, y


def train(model, x, y, steps, lr, seed):
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(m, opt, xb, yb):
        loss, grads = nnx.value_and_grad(lambda m: L.losses.mean_membrane_cross_entropy(m(xb).output, yb))(m)
        opt.update(m, grads)
        return loss

    rng = np.random.default_rng(seed)
    # optax's Adam mixes its int32 step count with floats, which strict promotion rejects
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(steps):
            idx = rng.integers(0, x.shape[0], 64)
            step(model, opt, x[idx], y[idx])


def chip_accuracy(model, config, x, y):
    """Accuracy of quantize(model) run on the chip model (mean readout membrane)."""
    net = quant.quantize(model, config)
    prog = hwmodel.compile_network(net, config.profile)
    _, trace = jax.jit(hwmodel.run)(prog, {"input": np.asarray(x).astype(bool)})
    scores = np.asarray(trace.voltages["layer1"]).mean(axis=1)
    return float(np.mean(np.argmax(scores, axis=-1) == np.asarray(y)))


def test_float_ptq_qat_on_the_chip_model():
    xtr, ytr = make_data(jax.random.key(0), 512)
    xva, yva = make_data(jax.random.key(2), 500)
    xte, yte = make_data(jax.random.key(1), 1000)
    model = L.SNN([(L.Linear(C, 48, rngs=nnx.Rngs(0)), L.LIF(48, alpha=0.9, threshold=1.0)),
                   (L.Linear(48, 3, rngs=nnx.Rngs(1)), L.LI(3, alpha=0.9))])
    train(model, xtr, ytr, 300, 1e-2, 0)
    float_acc = float(L.losses.accuracy(model(xte).output.mean(axis=1), yte))

    config = quant.QuantConfig(target="lif")  # 4-bit weights in [-15, 15]
    ptq_acc = chip_accuracy(model, config, xte, yte)

    q = quant.qat(model, config)
    best, best_state = chip_accuracy(q, config, xva, yva), nnx.state(q)  # round 0 is the PTQ network
    for r in range(4):  # fine-tune against the chip numerics, keep the best on validation data
        train(q, xtr, ytr, 25, 1e-3, 10 + r)
        acc = chip_accuracy(q, config, xva, yva)
        if acc > best:
            best, best_state = acc, nnx.state(q)
    nnx.update(q, best_state)
    qat_acc = chip_accuracy(q, config, xte, yte)

    print(f"float {float_acc:.3f}  PTQ (chip model) {ptq_acc:.3f}  QAT (chip model) {qat_acc:.3f}")
    assert float_acc >= 0.70  # chance is 0.33; measured 0.767
    assert qat_acc >= float_acc - 0.02  # measured 0.756
    assert qat_acc >= ptq_acc  # measured 0.755
