"""Data-driven PTQ threshold scaling (``calibration="search"``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from s2jax import hwmodel, quant
from s2jax import layers as L


def outlier_model():
    """Layer 0 has one huge weight: at the 4-bit range, absmax scaling rounds every other weight
    to zero, so the hidden layer goes silent; clipping the outlier keeps it alive."""
    model = L.SNN([(L.Linear(10, 16, rngs=nnx.Rngs(0)), L.LIF(16, alpha=0.9, threshold=0.5)),
                   (L.Linear(16, 3, rngs=nnx.Rngs(1)), L.LI(3, alpha=0.9))])
    k = np.asarray(model.synapses[0].kernel[...])
    k = np.abs(k) * 0.6
    k[0, 0] = 40.0
    model.synapses[0].kernel[...] = jnp.asarray(k, jnp.float32)
    return model


def inputs(seed=0, n=16, t=25):
    return (jax.random.uniform(jax.random.key(seed), (n, t, 10)) < 0.3).astype(jnp.float32)


def test_search_clips_the_outlier_and_beats_absmax():
    model, x = outlier_model(), inputs()
    config = quant.QuantConfig(target="lif", calibration="search", search_percentiles=(90.0, 99.0, 100.0))
    result = quant.search_scales(model, x, config)
    assert result.percentiles[0] < 100.0
    # the pick is the minimum of its row, and strictly better than absmax (100) for layer 0
    for k, p in enumerate(result.percentiles):
        row = result.errors[k]
        assert row[config.search_percentiles.index(p)] == row.min()
    assert result.errors[0, 2] > result.errors[0, config.search_percentiles.index(result.percentiles[0])]
    expected = quant.calibrate(model, config.__class__(target="lif"), percentile=result.percentiles[0])[0]
    np.testing.assert_array_equal(result.scales[0], expected)


def test_quantize_with_search_uses_the_searched_scales_and_stays_exact():
    model, x = outlier_model(), inputs()
    config = quant.QuantConfig(target="lif", calibration="search", search_percentiles=(90.0, 100.0))
    scales = quant.search_scales(model, x, config).scales
    q = quant.qat(model, config, calibration_inputs=x)
    for syn, s in zip(q.synapses, scales):
        np.testing.assert_array_equal(np.asarray(syn.quant_scale[...]), s)
    net = quant.quantize(model, config, calibration_inputs=x)
    out = q(x)
    _, trace = hwmodel.run(net, {"input": np.asarray(x).astype(bool)})
    np.testing.assert_array_equal(np.asarray(trace.spikes["layer0"]), np.asarray(out.spikes[0]).astype(bool))
    np.testing.assert_array_equal(np.asarray(trace.voltages["layer1"]), np.asarray(out.voltages[1]))


def test_search_needs_data():
    config = quant.QuantConfig(calibration="search")
    with pytest.raises(ValueError, match="needs data"):
        quant.calibrate(outlier_model(), config)
    with pytest.raises(ValueError, match="calibration_inputs"):
        quant.qat(outlier_model(), config)
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\]"):
        quant.QuantConfig(calibration="search", search_percentiles=(0.0,))
