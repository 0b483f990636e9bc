"""qnet: the py-spinnaker2 front door accepts what py-spinnaker2 accepts and rejects bad input clearly."""

import numpy as np
import pytest

from s2jax import Rounding
from s2jax import qnet as snn


def pops(model="lif", n_pre=3, n_post=2):
    return (snn.Population(n_pre, "spike_list", name="stim"),
            snn.Population(n_post, model, {"threshold": 5.0}, name="hidden"))


@pytest.mark.parametrize("model,lo,hi", [("lif", -15, 15), ("lif_no_delay", -127, 127),
                                         ("lif_curr_exp", -15, 15), ("lif_curr_exp_no_delay", -127, 127)])
def test_weight_range_per_model(model, lo, hi):
    pre, post = pops(model)
    snn.Projection(pre, post, [[0, 0, lo, 0], [1, 1, hi, 0]])
    for bad in (lo - 1, hi + 1):
        with pytest.raises(ValueError, match=rf"'stim' -> 'hidden'.*weight {bad} outside \[{lo}, {hi}\].*{model}"):
            snn.Projection(pre, post, [[0, 0, bad, 0]])


def test_integral_floats_accepted_fractional_rejected_unless_rounding_named():
    pre, post = pops("lif_no_delay")
    proj = snn.Projection(pre, post, [[0.0, 1.0, 5.0, 0.0]])
    assert proj.connections.tolist() == [[0, 1, 5, 0]]
    with pytest.raises(ValueError, match=r"weight 102.02 is not an integer.*rounding="):
        snn.Projection(pre, post, [[0, 0, 102.02, 0]])
    proj = snn.Projection(pre, post, [[0, 0, 102.5, 0], [1, 0, 101.5, 0], [2, 1, -2.5, 0]],
                          rounding=Rounding.HALF_EVEN)
    assert proj.weights.tolist() == [102, 102, -2]
    with pytest.raises(ValueError, match=r"weight 128 outside \[-127, 127\]"):
        snn.Projection(pre, post, [[0, 0, 127.6, 0]], rounding=Rounding.HALF_UP)


def test_delays():
    pre, post = pops("lif")
    snn.Projection(pre, post, [[0, 0, 1, 7], [0, 1, 1, 0]])
    with pytest.raises(ValueError, match=r"delay 8 outside \[0, 7\]"):
        snn.Projection(pre, post, [[0, 0, 1, 8]])
    with pytest.raises(ValueError, match=r"delay -1 outside"):
        snn.Projection(pre, post, [[0, 0, 1, -1]])
    for model in ("lif_no_delay", "lif_curr_exp_no_delay"):
        pre, post = pops(model)
        with pytest.raises(ValueError, match=rf"delay 3 on model '{model}', which has no delays"):
            snn.Projection(pre, post, [[0, 0, 1, 3]])
    with pytest.raises(ValueError, match="delay must be an integer"):
        snn.Projection(*pops("lif"), [[0, 0, 1, 1.5]])


def test_connection_indices_in_range():
    pre, post = pops()
    with pytest.raises(ValueError, match=r"pre index 3 out of range for population 'stim' of size 3"):
        snn.Projection(pre, post, [[3, 0, 1, 0]])
    with pytest.raises(ValueError, match=r"post index 2 out of range for population 'hidden' of size 2"):
        snn.Projection(pre, post, [[0, 2, 1, 0]])
    with pytest.raises(ValueError, match=r"pre index -1"):
        snn.Projection(pre, post, [[-1, 0, 1, 0]])
    with pytest.raises(ValueError, match=r"rows \[pre, post, weight, delay\]"):
        snn.Projection(pre, post, [[0, 0, 1]])
    with pytest.raises(ValueError, match="cannot receive synapses"):
        snn.Projection(post, pre, [[0, 0, 1, 0]])
    assert snn.Projection(pre, post, []).connections.shape == (0, 4)


def test_unknown_model_and_parameter_names():
    with pytest.raises(ValueError, match=r"unknown neuron model 'izhikevich'"):
        snn.Population(2, "izhikevich", name="x")
    with pytest.raises(ValueError, match=r"'x': unknown parameter\(s\) \['treshold'\].*'threshold'"):
        snn.Population(2, "lif", {"treshold": 1.0}, name="x")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['t_refrac'\]"):
        snn.Population(2, "lif", {"t_refrac": 2}, name="x")
    snn.Population(2, "lif_curr_exp", {"t_refrac": 2, "exc_decay": 0.5, "inh_decay": 0.5}, name="x")
    with pytest.raises(ValueError, match=r"reset must be one of"):
        snn.Population(2, "lif", {"reset": "reset_to_zero"}, name="x")
    with pytest.raises(ValueError, match=r"'threshold' must be a scalar or have 2 values"):
        snn.Population(2, "lif", {"threshold": [1.0, 2.0, 3.0]}, name="x")
    with pytest.raises(ValueError, match="cannot record 'current'"):
        snn.Population(2, "lif", name="x", record=["current"])
    with pytest.raises(ValueError, match="size must be a positive integer"):
        snn.Population(0, "lif", name="x")
    with pytest.raises(ValueError, match=r"neuron index 5 outside \[0, 1\]"):
        snn.Population(2, "spike_list", {5: [1]}, name="x")
    with pytest.raises(ValueError, match="non-negative integers"):
        snn.Population(2, "spike_list", {0: [1.5]}, name="x")


def conv_pops(n_in=2 * 8 * 8, n_out=3 * 6 * 6):
    return (snn.Population(n_in, "spike_list", name="img"),
            snn.Population(n_out, "lif_conv2d", {"threshold": 9.0}, name="conv"))


def test_conv_shapes():
    pre, post = conv_pops()
    w = np.ones((2, 3, 3, 3))
    proj = snn.Conv2DProjection(pre, post, w, {"in_height": 8, "in_width": 8})
    assert (proj.out_height, proj.out_width) == (6, 6)
    pre2, post2 = conv_pops(n_out=3 * 2 * 2)
    proj = snn.Conv2DProjection(pre2, post2, w, {"in_height": 8, "in_width": 8, "pool_x": 2, "pool_y": 2,
                                                 "stride_x": 2, "stride_y": 2, "pad_top": 1, "pad_left": 1})
    assert (proj.out_height, proj.out_width) == (2, 2)
    with pytest.raises(ValueError, match=r"'conv' has 108 neurons but the conv output is .* 3 x 4 x 4 = 48"):
        snn.Conv2DProjection(pre, post, np.ones((2, 3, 5, 5)), {"in_height": 8, "in_width": 8})
    with pytest.raises(ValueError, match=r"'img' has 128 neurons but C_in x in_height x in_width = 2 x 4 x 8"):
        snn.Conv2DProjection(pre, post, w, {"in_height": 4, "in_width": 8})
    with pytest.raises(ValueError, match=r"kernel 9x9 does not fit the pooled, padded input 8x8"):
        snn.Conv2DProjection(pre, post, np.ones((2, 3, 9, 9)), {"in_height": 8, "in_width": 8})
    with pytest.raises(ValueError, match=r"unknown conv_params key\(s\) \['stride'\]"):
        snn.Conv2DProjection(pre, post, w, {"in_height": 8, "in_width": 8, "stride": 2})
    with pytest.raises(ValueError, match=r"needs 'in_width'"):
        snn.Conv2DProjection(pre, post, w, {"in_height": 8})
    with pytest.raises(ValueError, match=r"weight 200 outside \[-128, 127\]"):
        snn.Conv2DProjection(pre, post, np.full((2, 3, 3, 3), 200), {"in_height": 8, "in_width": 8})
    with pytest.raises(ValueError, match=r"must target a 'lif_conv2d' population"):
        snn.Conv2DProjection(pre, snn.Population(108, "lif", name="l"), w, {"in_height": 8, "in_width": 8})
    with pytest.raises(ValueError, match=r"\(C_in, C_out, kH, kW\)"):
        snn.Conv2DProjection(pre, post, np.ones((3, 3)), {"in_height": 8, "in_width": 8})


def test_network_names_and_membership():
    pre, post = pops()
    net = snn.Network("n").add(pre, post, snn.Projection(pre, post, [[0, 0, 1, 0]]))
    assert net.population("stim") is pre
    with pytest.raises(ValueError, match="two populations are named 'stim'"):
        net.add(snn.Population(1, "lif", name="stim"))
    orphan = snn.Population(1, "lif", name="orphan")
    net.add(snn.Projection(pre, orphan, [[0, 0, 1, 0]]))
    with pytest.raises(ValueError, match="uses population 'orphan', which was not added"):
        net.validate()
    anonymous = snn.Network().add(snn.Population(1, "lif"), snn.Population(1, "lif"))
    assert [p.name for p in anonymous.populations] == ["pop0", "pop1"]


def test_results_before_run_and_without_recording():
    pop = snn.Population(2, "lif", name="p", record=["spikes"])
    with pytest.raises(RuntimeError, match="has not been run"):
        pop.get_spikes()
    with pytest.raises(RuntimeError, match="does not record voltages"):
        pop.get_voltages()


def test_parameters_beyond_float32_are_rejected():
    with pytest.raises(ValueError, match=r"'i_offset' = 1e\+39 exceeds the float32 range"):
        snn.Population(2, "lif", {"i_offset": 1e39}, name="x")
    snn.Population(2, "lif", {"threshold": float("inf")}, name="unreachable")


def test_dense_weights_into_conv_population_use_the_no_delay_range():
    pre, post = conv_pops()
    with pytest.raises(ValueError, match=r"weight -128 outside \[-127, 127\]"):
        snn.Projection(pre, post, [[0, 0, -128, 0]])


def test_set_spike_times_validates_like_construction():
    import pytest

    from s2jax import qnet as snn

    inp = snn.Population(3, "spike_list", name="in")
    inp.set_spike_times({0: [2, 1], 2: [5]})
    assert inp.params == {0: [1, 2], 2: [5]}
    with pytest.raises(ValueError, match="outside"):
        inp.set_spike_times({3: [1]})
    lif = snn.Population(2, "lif", name="h")
    with pytest.raises(ValueError, match="only spike_list"):
        lif.set_spike_times({0: [1]})
