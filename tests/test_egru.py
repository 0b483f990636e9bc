"""EGRU: QAT == chip model == independent oracle (exactly), edges, gradients, cells, pruning, statistics."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from s2jax import SPINNAKER2, ChipSpec, Rounding
from s2jax.egru import EGRUInt, EGRULayer, egru_numerics, event, lut, sigmoid_f32, tanh_f32
from s2jax.hwmodel.egru import run_egru
from s2jax.layers import EGRU, EGRUStack
from s2jax.layers.egru import from_csr, prune, to_csr
from s2jax.quant.egru import qat_egru, quantize_egru, quantize_inputs
from tests.reference import egru_oracle as oracle

RUN = jax.jit(run_egru, static_argnames=("profile", "spec"))
FORWARD = nnx.jit(lambda model, x: model(x))


def build(seed, sizes=(8, 8), in_features=6, **kwargs):
    """A stack with biases and thresholds moved off their initial values, as training would."""
    model = EGRUStack(in_features, sizes, rngs=nnx.Rngs(seed), **kwargs)
    keys = iter(jax.random.split(jax.random.key(seed), 16))
    for cell in model.cells:
        cell.bias[...] = 0.5 * jax.random.normal(next(keys), cell.bias.shape)
        cell.b_rg[...] = 0.3 * jax.random.normal(next(keys), cell.b_rg.shape)
        cell.theta[...] = jax.random.uniform(next(keys), cell.theta.shape, minval=-0.1, maxval=0.3)  # some clamp
    return model


def inputs(seed, shape=(3, 12, 6)):
    """Sparse float inputs: about 40 % of the entries are zero (units without an event)."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    return jnp.where(jax.random.uniform(k1, shape) < 0.6, jax.random.normal(k2, shape), 0.0)


def bits(a):
    a = np.asarray(a)
    return a.view(np.int32) if a.dtype == np.float32 else a.astype(np.int64)


def chip_inputs(x, profile):
    return quantize_inputs(x) if profile == "int" else x


# --- (1) QAT forward == chip model, exactly ------------------------------------------------------------


@pytest.mark.parametrize("profile", ["int", "float32"])
@pytest.mark.parametrize("seed,sparsity", [(0, 0.0), (1, 0.8)])
def test_qat_forward_equals_chip_model(profile, seed, sparsity):
    model = prune(build(seed), sparsity)
    q = qat_egru(model, profile)
    x = inputs(seed + 10)
    out = FORWARD(q, x)
    trace = RUN(quantize_egru(q), chip_inputs(x, profile), profile=profile)
    one = np.float32(2.0**SPINNAKER2.egru_frac_bits)
    for k, (y, carry) in enumerate(zip(out.outputs, out.carries)):
        chip_y = np.asarray(trace.outputs[k])
        got = np.asarray(y) * one if profile == "int" else np.asarray(y)
        np.testing.assert_array_equal(bits(got.astype(chip_y.dtype)), bits(chip_y), err_msg=f"layer {k} outputs")
        np.testing.assert_array_equal(np.asarray(y) > 0, np.asarray(trace.events[k]), err_msg=f"layer {k} events")
        final = carry[0] if profile == "int" else carry
        for name in ("y", "h"):
            np.testing.assert_array_equal(bits(getattr(final, name)), bits(getattr(trace.states[k], name)[:, -1]),
                                          err_msg=f"layer {k} final {name}")
        rate = np.asarray(trace.events[k]).mean()
        assert 0.05 < rate < 0.95, f"layer {k}: a parity test on a silent or saturated layer proves little ({rate})"
        np.testing.assert_allclose(float(out.event_rates[k]), rate, rtol=1e-6)


# --- (2) chip model == independent NumPy oracle, exactly ---------------------------------------------------


def assert_equals_oracle(layers, x, profile, spec=SPINNAKER2):
    trace = RUN(layers, x, profile=profile, spec=spec)
    ref = oracle.run(layers, np.asarray(x), profile, spec)
    for k, (y, h) in enumerate(ref):
        np.testing.assert_array_equal(bits(trace.outputs[k]), bits(y), err_msg=f"layer {k} outputs")
        np.testing.assert_array_equal(bits(trace.states[k].h), bits(h), err_msg=f"layer {k} state h")
        np.testing.assert_array_equal(np.asarray(trace.events[k]), y > 0, err_msg=f"layer {k} events")
    return trace


@pytest.mark.parametrize("profile", ["int", "float32"])
def test_chip_model_equals_oracle_jitted_or_not(profile):
    layers = quantize_egru(prune(build(4), 0.5), profile)
    x = chip_inputs(inputs(5), profile)
    trace = assert_equals_oracle(layers, x, profile)
    assert all(0 < np.asarray(e).mean() < 1 for e in trace.events)
    if profile == "float32":  # where XLA's fusion could differ between eager and jit
        for a, b in zip(jax.tree_util.tree_leaves(run_egru(layers, x, profile)), jax.tree_util.tree_leaves(trace)):
            np.testing.assert_array_equal(bits(a), bits(b))


def test_chip_model_equals_oracle_under_other_roundings():
    spec = dataclasses.replace(SPINNAKER2, egru_requant_rounding=Rounding.FLOOR, egru_product_rounding=Rounding.HALF_EVEN,
                               egru_sigmoid_lut_entries=256, egru_tanh_lut_entries=1024,
                               egru_lut_input_range=(-4.0, 4.0))
    layers = quantize_egru(build(6, sizes=(8,)), spec=spec)
    assert_equals_oracle(layers, quantize_inputs(inputs(7), spec), "int", spec)


def test_quantize_egru_equals_the_oracle_quantizer():
    model = prune(build(8), 0.3)
    for layer, cell in zip(quantize_egru(model), model.cells):
        p = cell.float_params()
        ref = oracle.quantize(p.w_in, p.w_rec, p.bias, p.b_rg, p.theta, SPINNAKER2)
        for name, got, want in zip(("w_in", "w_rec", "e_in", "e_rec", "bias", "b_rg", "theta"),
                                   (layer.w_in, layer.w_rec, layer.e_in, layer.e_rec, layer.bias, layer.b_rg,
                                    layer.theta), ref):
            np.testing.assert_array_equal(np.asarray(got, np.int64), want, err_msg=name)
        assert np.abs(layer.w_in).max(axis=0).min() >= 64, "per-row power-of-two scales use the int8 range"


def test_float32_activations_equal_the_oracle_and_are_accurate():
    a = np.concatenate([np.linspace(-40, 40, 3001, dtype=np.float32),
                        np.float32([0.0, -0.0, 1e-30, -1e-30, 86.9, -86.9, 87.0, -87.0, 88.0, -88.0, 1e30, -1e30,
                                    3.4e38, -3.4e38, 0.5, -0.5, 1e-4, -1e-4])])
    s, t = jax.jit(sigmoid_f32)(a), jax.jit(tanh_f32)(a)
    np.testing.assert_array_equal(bits(s), bits(np.float32([oracle.sigmoid_f32(v) for v in a])))
    np.testing.assert_array_equal(bits(t), bits(np.float32([oracle.tanh_f32(v) for v in a])))
    a64 = a.astype(np.float64)
    with np.errstate(over="ignore"):
        assert np.abs(np.asarray(s, np.float64) - 1.0 / (1.0 + np.exp(-a64))).max() < 2e-7
        assert np.abs(np.asarray(t, np.float64) - np.tanh(a64)).max() < 2e-7


def test_lookup_tables_equal_the_oracle_at_both_ends():
    num = egru_numerics("int")
    for kind, fn in (("sigmoid", num.sigmoid), ("tanh", num.tanh)):
        table = oracle.table(kind, 4096, -8.0, 8.0, 12)
        np.testing.assert_array_equal(lut(kind, 4096, -8.0, 8.0, 12), table)
        a = jnp.array([-(2**31), -40000, -32768, -32753, -32752, -1, 0, 15, 16, 32767, 40000, 2**31 - 1], jnp.int32)
        want = [table[0], table[0], table[0], table[0], table[1], table[2047], table[2048], table[2048],
                table[2049], table[4095], table[4095], table[4095]]
        assert np.asarray(fn(a)).tolist() == want, kind
        assert (table[0], table[-1]) == ((1, 4095) if kind == "sigmoid" else (-4096, 4096))
    assert (table[2047], table[2048]) == (-8, 8)


# --- (3) property tests at the edges: saturation, LUT ends, c == theta ---------------------------------------

INT16_EDGES = st.one_of(st.sampled_from([-32768, -32767, -4096, -1, 0, 1, 4095, 4096, 32767]),
                        st.integers(-32768, 32767))
B, T, I, H = 2, 4, 2, 3


def int_layer(draw):
    w = st.one_of(st.sampled_from([-127, -1, 0, 1, 127]), st.integers(-127, 127))
    e = st.one_of(st.sampled_from([0, 1, 12, 31]), st.integers(0, 31))
    arr = lambda s, n, dt: np.array(draw(st.lists(s, min_size=n, max_size=n)), dt)  # noqa: E731
    theta = st.one_of(st.sampled_from([0, 1, 4095, 4096]), st.integers(0, 4096))
    return EGRULayer(arr(w, I * 3 * H, np.int8).reshape(I, 3 * H), arr(w, H * 3 * H, np.int8).reshape(H, 3 * H),
                     arr(e, 3 * H, np.int8), arr(e, 3 * H, np.int8), arr(INT16_EDGES, 3 * H, np.int16),
                     arr(INT16_EDGES, H, np.int16), arr(theta, H, np.int16))


def float_layer(draw):
    edges = st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.5, 1e-3, 20.0, -20.0, 87.0, -87.0, 1e4, -1e4])
    f = st.one_of(edges, st.floats(-4.0, 4.0, width=32, allow_subnormal=False))
    arr = lambda s, n: np.array(draw(st.lists(s, min_size=n, max_size=n)), np.float32)  # noqa: E731
    theta = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0, width=32, allow_subnormal=False))
    return EGRULayer(arr(f, I * 3 * H).reshape(I, 3 * H), arr(f, H * 3 * H).reshape(H, 3 * H), None, None,
                     arr(f, 3 * H), arr(f, H), arr(theta, H))


@st.composite
def int_case(draw):
    x = np.array(draw(st.lists(INT16_EDGES, min_size=B * T * I, max_size=B * T * I)), np.int16).reshape(B, T, I)
    return int_layer(draw), x


@st.composite
def float_case(draw):
    f = st.one_of(st.just(0.0), st.sampled_from([1.0, -1.0, 8.0]), st.floats(-8.0, 8.0, width=32, allow_subnormal=False))
    x = np.array(draw(st.lists(f, min_size=B * T * I, max_size=B * T * I)), np.float32).reshape(B, T, I)
    return float_layer(draw), x


def with_threshold_at_c(layer, x, profile, offset):
    """``layer`` with theta = c (+ offset) of batch 0, step 0, where that is a legal threshold."""
    top = 2**12 if profile == "int" else 1.0
    probe = layer._replace(theta=np.full_like(layer.theta, top))  # c <= top: no event, so h == c
    c = np.asarray(RUN([probe], x, profile=profile).states[0].h)[0, 0]
    theta = np.clip(c.astype(np.float64) + offset, 0, top).astype(layer.theta.dtype)
    return layer._replace(theta=theta), c


@pytest.mark.parametrize("theta,fires", [(4095, False), (4094, True)])
def test_int_saturation_and_table_ends_by_hand(theta, fires):
    """x = 32767, |W| = 127, e = 0: |sum| = 2 * 32767 * 127 saturates the gates' pre-activations.
    W_z = -127 (and b_z = -32768): z = sigmoid table[0] = 1; W_g = +127: g = tanh table[-1] = 4096;
    c = mul(1, 0) + mul(4095, 4096) = 4095: theta = 4095 is c == theta (no event), 4094 fires."""
    w_in = np.tile(np.int8([-127] * H + [0] * H + [127] * H), (I, 1))
    bias = np.int16([-32768] * H + [0] * H + [32767] * H)
    layer = EGRULayer(w_in, np.zeros((H, 3 * H), np.int8), np.zeros(3 * H, np.int8), np.zeros(3 * H, np.int8), bias,
                      np.full(H, 32767, np.int16), np.full(H, theta, np.int16))
    trace = assert_equals_oracle([layer], np.full((B, T, I), 32767, np.int16), "int")
    assert np.asarray(trace.events[0])[:, 0].tolist() == [[fires] * H] * B  # step 0 (h_prev = 0)
    assert np.asarray(trace.states[0].h)[:, 0].tolist() == [[1 if fires else 4095] * H] * B


@given(int_case())
def test_int_profile_equals_oracle_at_the_edges(case):
    layer, x = case
    assert_equals_oracle([layer], x, "int")


@given(float_case())
def test_float32_profile_equals_oracle_at_the_edges(case):
    layer, x = case
    assert_equals_oracle([layer], x, "float32")


@pytest.mark.parametrize("profile,offset", [("int", 0), ("int", -1), ("float32", 0.0)])
@given(data=st.data())
def test_strict_threshold_at_c_equal_theta(profile, offset, data):
    layer, x = data.draw(int_case() if profile == "int" else float_case())
    layer, c = with_threshold_at_c(layer, x, profile, offset)
    trace = assert_equals_oracle([layer], x, profile)
    on_grid = (c + offset >= 0) & (c + offset <= (4096 if profile == "int" else 1.0))
    fired = np.asarray(trace.events[0])[0, 0]
    np.testing.assert_array_equal(fired[on_grid], np.full(on_grid.sum(), offset < 0))  # c == theta: no event


# --- (4) gradients and the pseudo-derivative ----------------------------------------------------------------


@pytest.mark.parametrize("profile", ["float", "int", "float32"])
def test_gradients_are_finite_and_non_zero(profile):
    model = prune(build(9, sizes=(8, 8)), 0.5)
    if profile != "float":
        model = qat_egru(model, profile)
    x = inputs(11, (2, 8, 6))
    target = jax.random.normal(jax.random.key(12), (2, 8, 8))

    def loss(m):
        return jnp.mean((m(x).output - target) ** 2)

    grads = nnx.to_flat_state(nnx.state(nnx.jit(nnx.grad(loss))(model), nnx.Param))
    assert len(grads) == 10
    masks = {(k, name): np.asarray(getattr(c, "mask_" + name[2:])[...]) for k, c in enumerate(model.cells)
             for name in ("w_in", "w_rec")}
    for path, g in grads:
        g = np.asarray(g[...])
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), path
        mask = masks.get((path[1], path[-1]))
        if mask is not None:
            assert np.all(g[mask == 0] == 0), f"{path}: pruned weights must get no gradient"


def test_pseudo_derivative_has_the_stated_shape():
    d = c = jnp.array([-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5], jnp.float32)
    theta = jnp.float32(0.3)
    for gamma, slope in ((0.7, 1.0), (0.3, 2.0)):
        dc = jax.vmap(jax.grad(lambda v: event(v + theta, theta, gamma, slope)))(c)
        dthr = jax.vmap(jax.grad(lambda t, v: event(v + 0.3, t, gamma, slope)), (None, 0))(theta, c)
        want = gamma * np.maximum(0.0, 1.0 - slope * np.abs(np.asarray(d)))
        np.testing.assert_allclose(np.asarray(dc), want, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.asarray(dthr), -want, rtol=1e-6, atol=1e-7)
    assert np.asarray(event(c + theta, theta, 0.7, 1.0)).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]


# --- (5) the Flax recurrent-cell contract -------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["float", "int"])
def test_cell_runs_inside_nnx_rnn_like_a_manual_loop(profile):
    cell = build(13, sizes=(8,)).cells[0]
    if profile == "int":
        cell = qat_egru(cell, "int")
    x = inputs(14, (3, 5, 6))
    y = nnx.RNN(cell)(x)
    carry = cell.initialize_carry(x[:, 0].shape)
    step = nnx.jit(lambda c, carry, x_t: c(carry, x_t))
    manual = []
    for t in range(x.shape[1]):
        carry, y_t = step(cell, carry, x[:, t])
        manual.append(y_t)
    assert y.shape == (3, 5, 8) and y.dtype == jnp.float32
    if profile == "int":  # integer forward: exact however XLA compiles it
        np.testing.assert_array_equal(np.asarray(y), np.asarray(jnp.stack(manual, axis=1)))
    else:  # float training numerics: XLA may fuse differently in a scan
        np.testing.assert_allclose(np.asarray(y), np.asarray(jnp.stack(manual, axis=1)), rtol=1e-6, atol=1e-6)


def test_dropout_and_zoneout_train_only():
    q = qat_egru(build(15, dropout=0.5, zoneout=0.5), "int")
    x = inputs(16)
    train = np.asarray(FORWARD(q, x).output)
    q.eval()  # no dropout, no zoneout: exactly the chip
    evaluated = np.asarray(FORWARD(q, x).output)
    np.testing.assert_array_equal(evaluated * 4096,
                                  np.asarray(RUN(quantize_egru(q), quantize_inputs(x), profile="int").outputs[-1]))
    assert np.any(train != evaluated)


# --- (6) pruning and CSR -----------------------------------------------------------------------------------


def test_prune_reaches_the_target_and_csr_round_trips():
    model = prune(build(17), 0.75)
    for cell in model.cells:
        p = cell.float_params()
        for w, raw, mask in ((p.w_in, cell.w_in, cell.mask_in), (p.w_rec, cell.w_rec, cell.mask_rec)):
            w, raw, mask = np.asarray(w), np.abs(np.asarray(raw[...])), np.asarray(mask[...])
            assert (w == 0).sum() == round(0.75 * w.size)
            assert raw[mask > 0].min() >= raw[mask == 0].max()  # the largest magnitudes are kept
            csr = to_csr(w)
            assert csr.indptr[-1] == len(csr.indices) == (w != 0).sum() and np.all(np.diff(csr.indptr) >= 0)
            np.testing.assert_array_equal(from_csr(csr), w)
    for layer in quantize_egru(qat_egru(model, "int")):
        for w in (layer.w_in, layer.w_rec):
            assert (w == 0).sum() >= round(0.75 * w.size)
            csr = to_csr(w)
            assert csr.values.dtype == np.int8
            np.testing.assert_array_equal(from_csr(csr), w)
            for i in range(w.shape[0]):  # row i: the synapses an event of unit i reaches
                np.testing.assert_array_equal(csr.indices[csr.indptr[i]:csr.indptr[i + 1]], np.nonzero(w[i])[0])
    prune(model, 0.9)  # pruning again only removes more
    assert all((np.asarray(c.float_params().w_in) == 0).sum() == round(0.9 * c.w_in.size) for c in model.cells)


# --- (7) event statistics ---------------------------------------------------------------------------------


def test_event_statistics_on_a_hand_made_stack():
    """Layer 0: unit 0 has z = 0, g = 1: c = 1 > 0.5 every step; unit 1 has g = -1: never. Layer 1:
    unit 0 has z = 1/2, g = 1, theta = 0.7: c = h/2 + 1/2 gives 0.5, 0.75 (event, h = 0.05),
    0.525, 0.7625 (event), ...: every second step; unit 1 never. Rates 1/2 and 1/4."""
    model = EGRUStack(2, [2, 2], rngs=nnx.Rngs(0))
    for cell, b, theta in zip(model.cells, ([-20.0, -20.0, 0, 0, 20.0, -20.0], [0.0, 0.0, 0, 0, 20.0, -20.0]),
                              ([0.5, 0.5], [0.7, 0.7])):
        cell.w_in[...] = jnp.zeros_like(cell.w_in[...])
        cell.w_rec[...] = jnp.zeros_like(cell.w_rec[...])
        cell.bias[...] = jnp.array(b, jnp.float32)
        cell.theta[...] = jnp.array(theta, jnp.float32)
    out = FORWARD(model, jnp.ones((2, 6, 2), jnp.float32))
    np.testing.assert_array_equal(np.asarray(out.outputs[0] > 0), np.tile([[[True, False]]], (2, 6, 1)))
    np.testing.assert_array_equal(np.asarray(out.outputs[1] > 0)[0, :, 0], [False, True] * 3)
    assert not np.any(np.asarray(out.outputs[1])[..., 1])
    np.testing.assert_allclose(np.asarray(out.outputs[1])[0, :, 0], [0, 0.75, 0, 0.7625, 0, 0.765625], rtol=1e-6)
    assert [float(r) for r in out.event_rates] == [0.5, 0.25]


# --- errors ----------------------------------------------------------------------------------------------------


def test_bad_inputs_are_named():
    layers = quantize_egru(build(20, sizes=(8,)))
    with pytest.raises(TypeError, match="int16"):
        run_egru(layers, np.zeros((1, 2, 6), np.float32), "int")
    with pytest.raises(ValueError, match="layer 0: expects 6 input features"):
        run_egru(layers, np.zeros((1, 2, 5), np.int16), "int")
    with pytest.raises(ValueError, match="float32 profile needs float32"):
        run_egru(layers, np.zeros((1, 2, 6), np.float32), "float32")
    big = build(21, sizes=(8,), in_features=600)
    cell = big.cells[0]
    cell.w_in[...] = jnp.full_like(cell.w_in[...], 0.99)  # 127 each
    with pytest.raises(ValueError, match="EGRU layer 0: input sum of gate z of unit 0 can reach"):
        quantize_egru(big)
    cell.w_in[...] = jnp.full_like(cell.w_in[...], 200.0)
    with pytest.raises(ValueError, match="beyond int8"):
        quantize_egru(big)
    with pytest.raises(ValueError, match="profile"):
        qat_egru(big, "double")  # "fixed" (and its old name "int") and "float32" are the profiles
    with pytest.raises(ValueError, match="integer numerics but no quantizer"):
        c = EGRU(2, 2, rngs=nnx.Rngs(0))
        c.numerics = EGRUInt()
        c(c.initialize_carry((1, 2)), jnp.zeros((1, 2)))


def test_spec_rejects_unusable_egru_formats():
    with pytest.raises(ValueError, match="power-of-two bins"):
        ChipSpec(egru_sigmoid_lut_entries=3000)
    with pytest.raises(ValueError, match="egru_weight_exponent_range"):
        ChipSpec(egru_weight_exponent_range=(0, 40))
    with pytest.raises(ValueError, match="not implemented"):
        ChipSpec(egru_layer_latency_ticks=1)
