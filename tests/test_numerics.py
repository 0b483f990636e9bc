"""One numerics protocol, one float-to-fixed conversion, one straight-through helper.

The conversions of before (the QAT layers', the chip model's host side, the EGRU quantizer's) are
written out below as references; :func:`s2jax.fixedpoint.to_fixed` and the call sites built on it
must give the same integers, bit for bit.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from s2jax import SPINNAKER2, Rounding, dynamics, egru, numerics, qnet
from s2jax import layers as L
from s2jax import quant
from s2jax.egru import EGRUChipFloat32, EGRUFloat, EGRUInt, EGRUParams, egru_numerics, egru_step, zero_state
from s2jax.fixedpoint import INT32_MAX, INT32_MIN, to_fixed
from s2jax.hwmodel.params import param_values
from s2jax.numerics import ChipFixed, ChipFloat32, FloatNumerics, Numerics, numerics_for, straight_through
from s2jax.quant.egru import EGRUQuantizer
from s2jax.quant.quantizers import WeightQuantizer, ste_clip, ste_round
from s2jax.surrogates import Triangle

ROUNDINGS = list(Rounding)
F32 = np.float32


def bits(a):
    return np.asarray(a, np.float32).view(np.int32)


# --- the protocol ----------------------------------------------------------------------------------


@pytest.mark.parametrize("num", [FloatNumerics(), ChipFloat32(), ChipFixed(), *(numerics_for(p) for p in numerics.PROFILES)],
                         ids=lambda n: f"{type(n).__name__}-{n.name}")
def test_every_numerics_satisfies_the_protocol(num):
    assert isinstance(num, Numerics)
    assert num.name in numerics.PROFILES
    hash(num)  # static under jax.jit


def test_an_object_missing_an_operation_is_not_numerics():
    class NoEvent:
        name, state_dtype = "float", jnp.float32

        def __getattr__(self, op):
            if op == "event":
                raise AttributeError(op)
            return getattr(FloatNumerics(), op)

    assert not isinstance(NoEvent(), Numerics)


def test_the_protocol_lists_every_operation_of_both_step_families():
    ops = {"input", "decay", "add", "sub", "spike", "reset_subtract", "reset_to",  # neurons
           "linear", "mul", "one_minus", "sigmoid", "tanh", "narrow", "event", "select"}  # EGRU
    members = {k for k in vars(Numerics) if not k.startswith("_")} | set(Numerics.__annotations__)
    assert members == ops | {"name", "state_dtype"}


def test_numerics_for_reads_the_spec():
    spec = dataclasses.replace(SPINNAKER2, threshold_strict=False, fixed_v_frac_bits=12,
                               fixed_param_rounding=Rounding.FLOOR, egru_frac_bits=10,
                               egru_product_rounding=Rounding.TO_ZERO, egru_lut_input_range=(-4.0, 4.0))
    fixed = numerics_for("fixed", spec)
    assert (fixed.strict_threshold, fixed.v_frac_bits, fixed.param_rounding) == (False, 12, Rounding.FLOOR)
    assert (fixed.egru_frac_bits, fixed.product_rounding, fixed.lut_range) == (10, Rounding.TO_ZERO, (-4.0, 4.0))
    f32 = numerics_for("float32", spec, Triangle(), gamma=0.3, slope=2.0)
    assert f32 == ChipFloat32(False, Triangle(), 0.3, 2.0)
    assert numerics_for("int") == numerics_for("fixed")
    with pytest.raises(ValueError, match="profile must be one of"):
        numerics_for("double")


# --- the earlier names -----------------------------------------------------------------------------


def test_earlier_names_are_the_same_objects_or_build_equal_numerics():
    for name in ("FloatNumerics", "ChipFloat32", "ChipFixed", "numerics_for", "PROFILES", "PROFILE_ALIASES",
                 "profile_name"):
        assert getattr(dynamics, name) is getattr(numerics, name), name
    assert EGRUFloat() == FloatNumerics() and EGRUFloat(0.5, 2.0) == FloatNumerics(gamma=0.5, slope=2.0)
    assert EGRUChipFloat32(0.5, 2.0) == ChipFloat32(gamma=0.5, slope=2.0)
    assert EGRUInt() == numerics_for("fixed") == ChipFixed()
    assert EGRUInt(10, Rounding.FLOOR, Rounding.HALF_EVEN, 256, 1024, (-4.0, 4.0)) == ChipFixed(
        egru_frac_bits=10, requant_rounding=Rounding.FLOOR, product_rounding=Rounding.HALF_EVEN, sigmoid_entries=256,
        tanh_entries=1024, lut_range=(-4.0, 4.0))
    for profile in ("float", "float32", "fixed", "int"):
        assert egru_numerics(profile, SPINNAKER2, 0.4, 3.0) == numerics_for(profile, gamma=0.4, slope=3.0)


def test_isinstance_with_an_earlier_name_asks_for_its_profiles():
    f, f32, fixed = (numerics_for(p) for p in ("float", "float32", "fixed"))
    assert isinstance(f, EGRUFloat) and isinstance(f32, EGRUFloat) and not isinstance(fixed, EGRUFloat)
    assert isinstance(f32, EGRUChipFloat32) and not isinstance(f, EGRUChipFloat32)
    assert isinstance(fixed, EGRUInt) and not isinstance(f32, EGRUInt)
    assert not isinstance(qnet.Population(2, "lif", name="fixed"), EGRUInt)  # a name alone is not numerics


@pytest.mark.parametrize("profile", ["float", "float32", "fixed"])
def test_earlier_names_step_the_egru_identically(profile):
    rng = np.random.default_rng(3)
    old = {"float": EGRUFloat(0.7, 1.0), "float32": EGRUChipFloat32(0.7, 1.0), "fixed": EGRUInt()}[profile]
    new = numerics_for(profile)
    if profile == "fixed":
        p = EGRUParams(*(jnp.asarray(a) for a in (
            rng.integers(-127, 128, (3, 6), dtype=np.int8), rng.integers(-127, 128, (2, 6), dtype=np.int8),
            rng.integers(5, 9, 6).astype(np.int8), rng.integers(5, 9, 6).astype(np.int8),
            rng.integers(-2000, 2000, 6).astype(np.int16), rng.integers(-2000, 2000, 2).astype(np.int16),
            np.int16([800, 1200]))))
        xs = jnp.asarray(rng.integers(-4096, 4096, (5, 4, 3)).astype(np.int16))
    else:
        p = EGRUParams(jnp.asarray(rng.normal(size=(3, 6)), jnp.float32), jnp.asarray(rng.normal(size=(2, 6)), jnp.float32),
                       None, None, jnp.asarray(rng.normal(size=6), jnp.float32), jnp.zeros(2, jnp.float32),
                       jnp.float32([0.2, 0.3]))
        xs = jnp.asarray(rng.normal(size=(5, 4, 3)), jnp.float32)
    for num in (old, new):
        s = zero_state((4, 2), num)
        ys = []
        for x in xs:
            s, y = egru_step(p, s, x, num)
            ys.append(np.asarray(y))
        if num is old:
            want = ys
        else:
            for a, b in zip(want, ys):
                np.testing.assert_array_equal(a, b)
                assert a.dtype == b.dtype


def test_zero_state_dtype_follows_the_numerics():
    assert zero_state((2, 3), numerics_for("fixed")).h.dtype == jnp.int16
    assert numerics_for("fixed").state_dtype == jnp.int32  # a neuron's state
    for profile in ("float", "float32"):
        s = zero_state((2, 3), numerics_for(profile))
        assert (s.y.dtype, s.h.dtype, s.h.shape) == (jnp.float32, jnp.float32, (2, 3))


def test_egru_cell_carry_comes_from_zero_state():
    cell = L.EGRU(2, 3, rngs=nnx.Rngs(0))
    assert cell.initialize_carry((4, 2)).h.dtype == jnp.float32
    cell.numerics = EGRUInt()
    exact, shadow = cell.initialize_carry((4, 2))
    assert (exact.h.dtype, shadow.h.dtype, exact.h.shape) == (jnp.int16, jnp.float32, (4, 3))


# --- one float-to-fixed conversion ------------------------------------------------------------------


def old_round_host(x, rounding):
    x = np.asarray(x, np.float64)
    return {Rounding.FLOOR: np.floor, Rounding.TO_ZERO: np.trunc, Rounding.HALF_EVEN: np.rint,
            Rounding.HALF_UP: lambda v: np.floor(v + 0.5)}[rounding](x)


def old_round_float(x, rounding):
    return {Rounding.FLOOR: jnp.floor, Rounding.TO_ZERO: jnp.trunc, Rounding.HALF_EVEN: jnp.round,
            Rounding.HALF_UP: lambda v: jnp.floor(v + 0.5)}[rounding](x)


def old_layers_fixed(x, frac_bits, rounding):
    """s2jax.layers.neurons._fixed before to_fixed."""
    y = old_round_float(x * jnp.float32(2.0**frac_bits), rounding)
    return jnp.clip(y, -(2.0**31), 2.0**31 - 1).astype(jnp.int32)


def old_egru_fixed(v, frac_bits, rounding):
    """EGRUQuantizer.fixed's integers before to_fixed."""
    one = jnp.float32(2.0**frac_bits)
    return jnp.clip(old_round_float(jnp.asarray(v, jnp.float32) * one, rounding), -32768.0, 32767.0).astype(jnp.int16)


def values(frac_bits, limit):
    """float32 values: random at several scales, halfway cases of the grid, the limits and beyond."""
    rng = np.random.default_rng(frac_bits)
    step = 2.0**-frac_bits
    top = limit * step  # the largest value in range
    random = np.concatenate([rng.normal(size=2000) * s for s in (1e-3, 1.0, 100.0, top / 3)])
    halfway = (np.arange(-600, 600) + 0.5) * step
    edges = [0.0, -0.0, step / 2, -step / 2, 1.5 * step, -1.5 * step, top, -top, top + step / 2, -top - step / 2,
             top + step, -top - step, np.nextafter(F32(top), F32(0)), np.nextafter(F32(-top), F32(0)), 2 * top,
             -2 * top, 1e30, -1e30, F32(0.5) - F32(2.0**-25), 2.0**23 + 1, -(2.0**23 + 1)]
    return np.concatenate([random, halfway, edges]).astype(np.float32)


def old_exact_rounding(x, rounding):
    """Where the old float32 HALF_UP (``floor(x + 0.5)``) was exact: it rounds ``x + 0.5``."""
    if rounding is not Rounding.HALF_UP:
        return np.ones(x.shape, bool)
    return np.asarray(x, np.float64) + 0.5 == (np.asarray(x, np.float32) + np.float32(0.5)).astype(np.float64)


@pytest.mark.parametrize("rounding", ROUNDINGS, ids=lambda r: r.name)
@pytest.mark.parametrize("jit", [False, True])
def test_to_fixed_equals_the_layers_conversion_at_the_int32_limits(rounding, jit):
    x = values(15, 2**31)
    x = np.concatenate([x, np.float32([np.inf, -np.inf, 65536.0, -65536.0])])
    convert = jax.jit(to_fixed, static_argnums=(1, 2, 3, 4)) if jit else to_fixed
    got = np.asarray(convert(jnp.asarray(x), 15, rounding, INT32_MIN, INT32_MAX).astype(jnp.int32))
    want = np.asarray(old_layers_fixed(jnp.asarray(x), 15, rounding))
    exact = old_exact_rounding(x * F32(2.0**15), rounding)
    np.testing.assert_array_equal(got[exact], want[exact])
    # and everywhere the exact host rounding, saturated to int32
    host = np.clip(old_round_host(x.astype(np.float64) * 2.0**15, rounding), INT32_MIN, INT32_MAX)
    np.testing.assert_array_equal(got, host.astype(np.int32))
    assert got.min() == INT32_MIN and got.max() == INT32_MAX
    assert np.asarray(to_fixed(jnp.float32(np.nan), 15, rounding, INT32_MIN, INT32_MAX).astype(jnp.int32)) == 0


@pytest.mark.parametrize("rounding", ROUNDINGS, ids=lambda r: r.name)
def test_to_fixed_equals_the_egru_conversion(rounding):
    x = values(12, 32768)
    spec = dataclasses.replace(SPINNAKER2, fixed_param_rounding=rounding)
    got, shadow = EGRUQuantizer(spec).fixed(x)
    want = np.asarray(old_egru_fixed(x, 12, rounding))
    exact = old_exact_rounding(x * F32(4096.0), rounding)
    np.testing.assert_array_equal(np.asarray(got)[exact], want[exact])
    host = np.clip(old_round_host(x.astype(np.float64) * 4096.0, rounding), -32768, 32767)
    np.testing.assert_array_equal(np.asarray(got), host.astype(np.int16))
    np.testing.assert_array_equal(np.asarray(shadow), np.asarray(got, np.float32) / F32(4096.0))


@pytest.mark.parametrize("rounding", ROUNDINGS, ids=lambda r: r.name)
def test_to_fixed_equals_the_host_conversion(rounding):
    x = values(15, 2**31)
    got = to_fixed(x, 15, rounding)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(got, old_round_host(x.astype(np.float64) * 2.0**15, rounding))
    decays = np.concatenate([np.linspace(0, 1, 4001), (np.arange(2**16) + 0.5) / 2**16]).astype(np.float32)
    np.testing.assert_array_equal(to_fixed(decays, 16, rounding),
                                  old_round_host(decays.astype(np.float64) * 2.0**16, rounding))


def test_half_up_is_exact_where_float32_x_plus_half_is_not():
    x = jnp.float32([0.49999997, 8388609.0, -8388609.0, 2.5, -2.5, 16777215.0])
    assert to_fixed(x, 0, Rounding.HALF_UP).tolist() == [0.0, 8388609.0, -8388609.0, 3.0, -2.0, 16777215.0]
    assert to_fixed(np.asarray(x), 0, Rounding.HALF_UP).tolist() == [0.0, 8388609.0, -8388609.0, 3.0, -2.0,
                                                                    16777215.0]


@pytest.mark.parametrize("rounding", ROUNDINGS, ids=lambda r: r.name)
def test_chip_model_and_qat_layers_store_the_same_parameters(rounding):
    """The host conversion (hwmodel.params) and the traced one (layers) give the same integers."""
    spec = dataclasses.replace(SPINNAKER2, fixed_param_rounding=rounding)
    rng = np.random.default_rng(7)
    thr = np.concatenate([rng.uniform(0, 300, 200), (np.arange(100) + 0.5) / 2**15, [65535.99, 1e30, 3.4e38]])
    n = thr.size
    alpha = np.concatenate([rng.uniform(0, 1, n - 3), [0.0, 1.0, 0.5 / 2**16]])
    i_off = rng.normal(size=n) * 10
    pop = qnet.Population(n, "lif_no_delay", {"threshold": thr, "alpha_decay": alpha, "i_offset": i_off,
                                              "v_reset": 0.0, "v_init": 0.0}, name="p")
    cell = L.LIF(n, alpha=0.5, threshold=1.0, bias=True)
    cell.alpha[...], cell.threshold[...], cell.bias[...] = (jnp.asarray(a, jnp.float32) for a in (alpha, thr, i_off))
    params = cell.params(numerics_for("fixed", spec))
    for key, got in (("threshold", params.threshold), ("alpha_decay", params.alpha), ("i_offset", params.i_offset)):
        np.testing.assert_array_equal(np.asarray(got), param_values(pop, key, "fixed", spec), err_msg=key)
    assert param_values(pop, "threshold", "fixed", spec)[-2:].tolist() == [INT32_MAX, INT32_MAX]  # unreachable


def test_host_conversion_still_names_the_population_value_and_range():
    pop = qnet.Population(2, "lif_no_delay", {"i_offset": [1.0, 70000.0]}, name="hidden")
    with pytest.raises(ValueError, match=r"population 'hidden': i_offset = 70000.0 does not fit .* s16.15 range"):
        param_values(pop, "i_offset", "fixed", SPINNAKER2)
    pop = qnet.Population(2, "lif_no_delay", {"threshold": [np.inf, -np.inf]}, name="inf")
    with pytest.raises(ValueError, match="population 'inf': threshold = -inf does not fit"):
        param_values(pop, "threshold", "fixed", SPINNAKER2)


def test_lookup_tables_are_built_with_to_fixed():
    from s2jax.fixedpoint import lut

    for kind, f in (("sigmoid", lambda c: 1.0 / (1.0 + np.exp(-c))), ("tanh", np.tanh)):
        centre = -8.0 + (np.arange(4096) + 0.5) * (16.0 / 4096)
        want = np.clip(np.rint(f(centre) * 4096.0), -32768, 32767).astype(np.int16)
        np.testing.assert_array_equal(lut(kind, 4096, -8.0, 8.0, 12), want)


# --- one straight-through helper ---------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_straight_through_forward_is_exact_and_its_gradient_the_shadows(jit):
    value = jnp.float32([-0.0, 1.0, 3.4e38, 5.0, -7.25])
    shadow = jnp.float32([5.0, np.inf, -2.0, 1e30, 0.1])
    fn = jax.jit(straight_through) if jit else straight_through
    np.testing.assert_array_equal(bits(fn(value, shadow)), bits(value))  # -0.0 and inf shadows included
    grad_shadow = jax.grad(lambda s: jnp.sum(fn(value, 3.0 * s) * jnp.arange(5.0)))(jnp.ones(5))
    np.testing.assert_array_equal(np.asarray(grad_shadow), 3.0 * np.arange(5.0))
    grad_value = jax.grad(lambda v: jnp.sum(fn(v, shadow)))(value)
    np.testing.assert_array_equal(np.asarray(grad_value), np.zeros(5))
    _, tangent = jax.jvp(lambda s: fn(value, s), (shadow,), (jnp.full(5, 2.0, jnp.float32),))
    np.testing.assert_array_equal(np.asarray(tangent), np.full(5, 2.0))


def test_straight_through_takes_integer_values_and_broadcasts():
    out = straight_through(jnp.int16([3, -4]), jnp.float32(0.5))
    assert out.dtype == jnp.float32 and out.tolist() == [3.0, -4.0]
    assert jax.grad(lambda s: jnp.sum(straight_through(jnp.int16([3, -4]), s)))(jnp.float32(0.5)) == 2.0


def test_quantizers_are_straight_through():
    x = jnp.float32([-2.5, -0.5, 0.5, 1.5, 2.6, 300.0])
    np.testing.assert_array_equal(np.asarray(ste_round(x)), np.round(np.asarray(x)))
    np.testing.assert_array_equal(np.asarray(ste_round(x, Rounding.HALF_UP)), [-2.0, 0.0, 1.0, 2.0, 3.0, 300.0])
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda x: jnp.sum(ste_round(x)))(x)), np.ones(6))
    np.testing.assert_array_equal(np.asarray(ste_clip(x, -1.0, 2.0)), np.clip(np.asarray(x), -1.0, 2.0))
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda x: jnp.sum(ste_clip(x, -1.0, 2.0)))(x)), np.ones(6))
    wq = WeightQuantizer(-127, 127)
    np.testing.assert_array_equal(np.asarray(wq.quantize(x, 1.0)), [-2.0, -0.0, 0.0, 2.0, 3.0, 127.0])
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda x: jnp.sum(wq.quantize(x, 1.0)))(x)),
                                  [1, 1, 1, 1, 1, 0])  # zero where clipped
    up = WeightQuantizer(-127, 127, Rounding.HALF_UP)
    np.testing.assert_array_equal(np.asarray(up.quantize(x, 1.0)), [-2.0, 0.0, 1.0, 2.0, 3.0, 127.0])


def test_qat_rounds_weights_with_the_spec():
    model = L.SNN([(L.Linear(3, 4, rngs=nnx.Rngs(0)), L.LIF(4)), (L.Linear(4, 2, rngs=nnx.Rngs(1)), L.LI(2))])
    spec = dataclasses.replace(SPINNAKER2, fixed_param_rounding=Rounding.FLOOR)
    for config, want in ((quant.QuantConfig(profile="fixed", spec=spec), Rounding.FLOOR),
                         (quant.QuantConfig(), Rounding.HALF_EVEN)):
        q = quant.qat(model, config)
        assert [syn.quantizer.rounding for syn in q.synapses] == [want, want]
        w = np.asarray(q.synapses[0].integer_kernel())
        raw = np.asarray(q.synapses[0].kernel[...] * q.synapses[0].quant_scale[...], np.float32)
        np.testing.assert_array_equal(w, np.asarray(to_fixed(jnp.asarray(raw), 0, want, -127, 127)))


def test_egru_module_re_exports():
    assert egru.straight_through is straight_through
    assert egru.EGRUState is type(zero_state((1,), numerics_for("float")))
