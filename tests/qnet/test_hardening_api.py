"""Issue 11, the qnet API and sizes: every bad input is a ValueError naming the thing, the value
and the limit, raised before anything proportional to a size is allocated; the design rules and
the fixed-point profile agree on the decays the chip can run."""

import json
import time
import tracemalloc

import jax.numpy as jnp
import numpy as np
import pytest

from s2jax import SPINNAKER2, hwmodel
from s2jax import qnet as snn
from s2jax.export import rules
from s2jax.export.image import NETWORK, PE, ROUTING, SPEC, ImageError, load_image, save_image, spec_json
from s2jax.export.image._format import _block, _pack
from s2jax.hwmodel.mapping import MAX_MAPPED_PES, MappingSizeError, map_to_cores
from s2jax.hwmodel.program import compile_network
from s2jax.hwmodel.simulator import MAX_RUN_BYTES, check_run_size, spike_list_inputs
from s2jax.spec import Rounding

HUGE = 2**32 - 1


def small_net(alpha=0.9, **cuba):
    stim = snn.Population(3, "spike_list", {0: [0, 2], 2: [1]}, name="in")
    hid = snn.Population(4, "lif_curr_exp" if cuba else "lif", {"threshold": 5.0, "alpha_decay": alpha, **cuba},
                         name="hid", record=["spikes", "v"])
    return snn.Network("small").add(stim, hid, snn.Projection(stim, hid, [[0, 0, 6, 0], [2, 3, -2, 1]]))


def measured(fn, seconds=5.0, megabytes=64):
    """``fn()``, checked to be quick and to allocate little (Python and NumPy allocations)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert time.perf_counter() - t0 < seconds
        assert peak < megabytes * 2**20, f"peak {peak:,} bytes"


def bounded(fn, seconds=5.0, megabytes=64):
    """The message of the ValueError ``fn`` raises, quickly and without allocating much."""
    with pytest.raises(ValueError) as info:
        measured(fn, seconds, megabytes)
    return str(info.value)


# --- qnet: sizes, models, names, record ----------------------------------------------------------------

BAD_SIZES = [0, -1, 1.5, "3", True, None, [3], 3.0, 2**24 + 1, 10**11, HUGE]


@pytest.mark.parametrize("size", BAD_SIZES, ids=repr)
def test_population_size_is_a_positive_integer_within_the_limit(size):
    msg = bounded(lambda: snn.Population(size, "spike_list", name="p"))
    assert "population 'p'" in msg and "size" in msg
    if isinstance(size, int) and size > 2**24:
        assert f"{size:,}" in msg and "16,777,216" in msg


@pytest.mark.parametrize("model", ["LIF", "", 3, None, ["lif"], {"lif": 1}, np.array(["lif", "lif"])], ids=repr)
def test_unknown_or_non_string_neuron_model(model):
    with pytest.raises(ValueError, match=r"population 'p': unknown neuron model"):
        snn.Population(2, model, name="p")


@pytest.mark.parametrize("name", [["a"], {"a": 1}, 3, b"p", ("a",), 1.5], ids=repr)
def test_population_and_network_names_are_strings_or_none(name):
    with pytest.raises(ValueError, match=r"population name must be a string or None, got"):
        snn.Population(2, "lif", name=name)
    with pytest.raises(ValueError, match=r"network name must be a string or None, got"):
        snn.Network(name)


def test_string_and_none_names_are_accepted():
    assert snn.Network().name is None and snn.Network("n").name == "n"
    net = snn.Network("n").add(snn.Population(2, "lif"))
    assert net.populations[0].name == "pop0"


@pytest.mark.parametrize("record", [5, [1], {"spikes": 1}, ["spikes", None], [["v"]]], ids=repr)
def test_record_must_be_a_list_of_names(record):
    with pytest.raises(ValueError, match=r"population 'p'.*record"):
        snn.Population(2, "lif", name="p", record=record)


# --- qnet: parameters ----------------------------------------------------------------------------------

LIF_KEYS = ("threshold", "alpha_decay", "i_offset", "v_init", "v_reset")
BAD_VALUES = ["1.0", b"1", True, np.bool_(False), None, 1 + 2j, [1.0, "2"], np.array(["1", "2"]),
              {"a": 1}, [[1.0], [2.0, 3.0]], np.array([True, False]), object()]


@pytest.mark.parametrize("key", LIF_KEYS)
@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__ + repr(v)[:12])
def test_every_parameter_of_a_bad_type_is_refused_by_name(key, value):
    with pytest.raises(ValueError) as info:
        snn.Population(2, "lif", {key: value}, name="p")
    msg = str(info.value)
    assert "population 'p'" in msg and repr(key) in msg
    assert "could not convert" not in msg


@pytest.mark.parametrize("key", ["exc_decay", "inh_decay", "t_refrac"])
@pytest.mark.parametrize("value", ["1", True, None, [0, "1"]], ids=repr)
def test_current_based_parameters_of_a_bad_type(key, value):
    with pytest.raises(ValueError, match=rf"population 'c': parameter '{key}'"):
        snn.Population(2, "lif_curr_exp", {key: value}, name="c")


@pytest.mark.parametrize("reset", [1, None, ["reset_by_subtraction"], np.array(["reset_to_v_reset"]), "subtract"],
                         ids=repr)
def test_reset_mode_must_be_one_of_the_names(reset):
    with pytest.raises(ValueError, match=r"population 'p': reset must be one of"):
        snn.Population(2, "lif", {"reset": reset}, name="p")


@pytest.mark.parametrize("params", [{1: 2.0}, {1: 2.0, "x": 3.0}, {None: 1}], ids=repr)
def test_unknown_parameter_keys_of_any_type(params):
    with pytest.raises(ValueError, match=r"population 'p': unknown parameter"):
        snn.Population(2, "lif", params, name="p")


@pytest.mark.parametrize("value", [1.0, 3, np.float32(0.5), np.int64(2), [1.0, 2.0], (1, 2), np.array([1.0, 2.0]),
                                   jnp.array([1.0, 2.0]), np.array([1, 2], np.int8)], ids=repr)
def test_numbers_and_arrays_of_numbers_are_accepted(value):
    pop = snn.Population(2, "lif", {"threshold": value}, name="p")
    assert pop.param_array("threshold").shape == (2,)


def test_wrong_number_of_values_names_the_parameter():
    with pytest.raises(ValueError, match=r"population 'p': parameter 'i_offset' must be a scalar or have 2 values"):
        snn.Population(2, "lif", {"i_offset": [1.0, 2.0, 3.0]}, name="p")


# --- qnet: spike lists --------------------------------------------------------------------------------

BAD_SPIKES = [{0: ["3"]}, {0: 3}, {0: "3"}, {0: [True]}, {0: [1.5]}, {0: [-1]}, {0: [2**31]}, {0: [None]},
              {0: [[1]]}, {0: np.array([[1, 2]])}, {0: [float("nan")]}, {0: [float("inf")]}, {0: {1, 2}}, {0: None}]


@pytest.mark.parametrize("spikes", BAD_SPIKES, ids=repr)
def test_bad_spike_ticks_name_the_population_and_neuron(spikes):
    with pytest.raises(ValueError, match=r"population 's': spike ticks of neuron 0 must be"):
        snn.Population(2, "spike_list", spikes, name="s")
    pop = snn.Population(2, "spike_list", name="s")
    with pytest.raises(ValueError, match=r"population 's': spike ticks of neuron 0 must be"):
        pop.set_spike_times(spikes)


@pytest.mark.parametrize("spikes", [{"0": [1]}, {True: [1]}, {2: [1]}, {-1: [0]}, {0.0: [1]}], ids=repr)
def test_bad_spike_neuron_index(spikes):
    with pytest.raises(ValueError, match=r"population 's': spike_list neuron index .* outside \[0, 1\]"):
        snn.Population(2, "spike_list", spikes, name="s")


@pytest.mark.parametrize("params", [[1, 2], "0:1", np.array([1])], ids=repr)
def test_spike_list_params_must_be_a_dict(params):
    with pytest.raises(ValueError, match=r"population 's': spike_list params must be a dict"):
        snn.Population(2, "spike_list", params, name="s")


def test_good_spike_lists_of_every_container():
    pop = snn.Population(4, "spike_list", {0: [3, 1, 3], 1: (2,), 2: np.array([4, 0]), 3: range(2)}, name="s")
    assert pop.params == {0: [1, 3], 1: [2], 2: [0, 4], 3: [0, 1]}
    assert snn.Population(1, "spike_list", {np.int64(0): [1.0, np.int32(2)]}).params == {0: [1, 2]}


# --- qnet: projections ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a", None, 3, {"size": 2}, ["p"]], ids=repr)
@pytest.mark.parametrize("end", ["pre", "post"])
def test_projection_endpoints_must_be_populations(bad, end):
    pop = snn.Population(2, "lif", name="p")
    args = {"pre": pop, "post": pop, end: bad}
    with pytest.raises(ValueError, match=rf"^projection: {end} must be a qnet.Population, got"):
        snn.Projection(args["pre"], args["post"], [[0, 0, 1, 0]])
    conv = snn.Population(4, "lif_conv2d", name="c")
    args = {"pre": conv, "post": conv, end: bad}
    with pytest.raises(ValueError, match=rf"^conv projection: {end} must be a qnet.Population, got"):
        snn.Conv2DProjection(args["pre"], args["post"], np.ones((1, 1, 1, 1)), {"in_height": 2, "in_width": 2})


@pytest.mark.parametrize("conns", [[[0, 0, "3", 0]], [["0", 0, 1, 0]], [[0, 0, True, 0]], "0 0 1 0", None,
                                   [[0, 0, 1 + 1j, 0]], [[0, 0, 1, 0], [1, 1]], np.array([["0", "0", "1", "0"]]),
                                   [[0, 0, None, 0]]], ids=repr)
def test_connections_must_be_numbers(conns):
    a, b = snn.Population(2, "spike_list", name="a"), snn.Population(2, "lif", name="b")
    with pytest.raises(ValueError, match=r"^projection 'a' -> 'b': connections"):
        snn.Projection(a, b, conns)


@pytest.mark.parametrize("row, what", [([1e300, 0, 1, 0], r"pre index 1e\+300 out of range"),
                                       ([0, -5, 1, 0], "post index -5 out of range"),
                                       ([0, 0, 1, 1e20], r"delay 1e\+20 outside \[0, 7\]")])
def test_huge_indices_and_delays_are_named_as_given(row, what):
    a, b = snn.Population(2, "spike_list", name="a"), snn.Population(2, "lif", name="b")
    with pytest.raises(ValueError, match=what):
        snn.Projection(a, b, [row])


def test_projection_rounding_and_spec_types():
    a, b = snn.Population(2, "spike_list", name="a"), snn.Population(2, "lif", name="b")
    with pytest.raises(ValueError, match=r"'a' -> 'b': rounding must be a Rounding or None"):
        snn.Projection(a, b, [[0, 0, 1.5, 0]], rounding="half_even")
    with pytest.raises(ValueError, match=r"'a' -> 'b': spec must be a ChipSpec"):
        snn.Projection(a, b, [[0, 0, 1, 0]], spec="spinnaker2")
    assert snn.Projection(a, b, [[0, 0, 1.5, 0]], rounding=Rounding.HALF_EVEN).weights.tolist() == [2]


@pytest.mark.parametrize("weights, conv_params, what", [
    (np.array([[[["1"]]]]), {"in_height": 2, "in_width": 2}, "weights must be numbers"),
    ([[[[True]]]], {"in_height": 2, "in_width": 2}, "weights must be numbers"),
    (np.ones((1, 1, 1, 1)), [("in_height", 2)], "conv_params must be a dict"),
    (np.ones((1, 1, 1, 1)), {"in_height": 2, "in_width": "2"}, r"conv_params\['in_width'\] must be an integer"),
    (np.ones((1, 1, 1, 1)), {"in_height": 2, "in_width": 2, 3: 1}, "unknown conv_params key"),
], ids=["str-weights", "bool-weights", "list-params", "str-width", "int-key"])
def test_conv_projection_inputs(weights, conv_params, what):
    a, c = snn.Population(4, "spike_list", name="a"), snn.Population(4, "lif_conv2d", name="c")
    with pytest.raises(ValueError, match=rf"conv projection 'a' -> 'c': {what}"):
        snn.Conv2DProjection(a, c, weights, conv_params)


# --- decays: one rule for the design rules and the fixed profile ----------------------------------------


@pytest.mark.parametrize("params, key, value", [({"alpha_decay": 1.5}, "alpha_decay", 1.5),
                                                ({"alpha_decay": -0.5}, "alpha_decay", -0.5),
                                                ({"alpha_decay": 1e30}, "alpha_decay", 1e30),
                                                ({"exc_decay": -1.0}, "exc_decay", -1.0),
                                                ({"exc_decay": 2.0}, "exc_decay", 2.0),
                                                ({"inh_decay": 1.0000001}, "inh_decay", 1.0000001)])
def test_out_of_range_decays_are_design_rule_violations(params, key, value):
    net = small_net(**({"alpha": params.pop("alpha_decay")} if "alpha_decay" in params else {}), **params)
    found = [v for v in rules.check(net) if v.rule == "decay_range"]
    assert len(found) == 1
    v = found[0]
    assert v.where == "population 'hid'" and v.limit == (0.0, 1.0) and v.value == float(np.float32(value))
    assert f"population 'hid': {key} = " in v.message and "outside [0, 1]" in v.message
    with pytest.raises(rules.DesignRuleError, match=r"decay_range"):
        rules.require_deployable(net)
    with pytest.raises(ValueError, match=rf"population 'hid': {key} = .* outside \[0, 1\]"):
        compile_network(net, "fixed")


def test_decay_rule_and_fixed_profile_agree_on_random_values():
    """Property: rules.check reports a decay violation iff compiling in the fixed profile refuses."""
    rng = np.random.default_rng(11)
    one = np.float32(1)
    special = [0.0, 1.0, -0.0, 1 + 2**-25, 1 + 2**-23, float(np.nextafter(one, np.float32(2))),
               float(np.nextafter(np.float32(0), np.float32(-1))), 1e30, -1e-45, 0.5, 3.4e38]
    values = special + list(rng.uniform(-1.5, 2.5, 40)) + list(rng.uniform(0, 1, 20))
    for k, value in enumerate(values):
        key = ("alpha_decay", "exc_decay", "inh_decay")[k % 3]
        net = small_net(alpha=value, exc_decay=0.5) if key == "alpha_decay" else small_net(**{key: value})
        reported = any(v.rule == "decay_range" for v in rules.check(net))
        try:
            compile_network(net, "fixed")
            refused = False
        except ValueError as e:
            assert "outside [0, 1]" in str(e)
            refused = True
        assert reported == refused, (key, value)
        assert reported == (not 0 <= np.float32(value) <= 1), (key, value)


def test_a_decay_edited_after_construction_is_reported_not_crashed():
    net = small_net()
    hid = net.population("hid")
    for bad in (float("nan"), "0.5", [0.5, 0.5]):
        hid.params["alpha_decay"] = bad
        found = [v for v in rules.check(net) if v.rule == "decay_range"]
        assert found and "population 'hid': alpha_decay" in found[0].message
        with pytest.raises(ValueError, match=r"population 'hid'"):
            compile_network(net, "fixed")


def test_in_range_decays_pass_both():
    net = small_net(alpha=1.0, exc_decay=0.0, inh_decay=np.float32(0.25))
    assert rules.check(net) == []
    compile_network(net, "fixed")


# --- sizes: images, mapping, design rules -----------------------------------------------------------


def huge_image(path, size=HUGE, name="huge"):
    """A board image with valid CRCs declaring one spike_list population of ``size`` neurons."""
    doc = {"name": name, "populations": [{"name": "in", "model": "spike_list", "size": size, "record": ["spikes"],
                                          "max_atoms_per_core": None}], "projections": []}
    pe = _block("slice", np.array([0, 0, size, 0, 0], "<u4")) + _block("spikes", np.zeros((0, 2), "<u4"))
    routing = _block("routes", np.zeros((0, 3), "<u4")) + _block("targets", np.zeros(0, "<u4"))
    sections = [(NETWORK, 0, json.dumps(doc).encode()), (SPEC, 0, spec_json(SPINNAKER2)), (PE, 0, pe),
                (ROUTING, 0, routing)]
    path.write_bytes(_pack(sections, SPINNAKER2))
    return path


def test_an_image_declaring_a_huge_population_is_refused_before_allocation(tmp_path):
    path = huge_image(tmp_path / "huge.s2img")
    msg = bounded(lambda: load_image(path))
    assert "size 4,294,967,295" in msg and "16,777,216" in msg and "population 0 ('in')" in msg
    with pytest.raises(ImageError):
        load_image(path)


def test_the_crafted_image_format_is_the_real_one(tmp_path):
    """The same crafting with a valid size loads: the huge image fails on its size, nothing else."""
    net = load_image(huge_image(tmp_path / "ok.s2img", size=3))
    assert [(p.name, p.size, p.neuron_model) for p in net.populations] == [("in", 3, "spike_list")]


@pytest.mark.parametrize("name", [["a"], {"a": 1}, 3])
def test_an_image_with_a_non_string_network_name_is_refused(tmp_path, name):
    path = huge_image(tmp_path / "n.s2img", size=3, name=name)
    with pytest.raises(ImageError, match=r"network name is .*; expected a string or null"):
        load_image(path)


def test_round_trip_still_works(tmp_path):
    save_image(small_net(), tmp_path / "s.s2img")
    assert [p.size for p in load_image(tmp_path / "s.s2img").populations] == [3, 4]


@pytest.mark.parametrize("size", [10**11, HUGE, 0, -3, 2.5, "10"], ids=repr)
def test_check_reports_a_mutated_population_size_without_mapping(size):
    net = small_net()
    net.population("in").size = size
    found = measured(lambda: rules.check(net))
    assert [v.rule for v in found] == ["population_size"]
    v = found[0]
    assert v.value == size and v.limit == (1, snn.MAX_POPULATION_SIZE) and "population 'in'" in v.message
    msg = bounded(lambda: map_to_cores(net))
    assert "population 'in': size" in msg
    bounded(lambda: compile_network(net))
    bounded(lambda: check_run_size(net, 1, 10))


def test_map_to_cores_refuses_more_pes_than_it_places_before_placing():
    pop = snn.Population(snn.MAX_POPULATION_SIZE, "lif", name="wide")
    pop.set_max_atoms_per_core(1)
    net = snn.Network("wide").add(pop)
    msg = bounded(lambda: map_to_cores(net))
    assert f"{snn.MAX_POPULATION_SIZE:,} PEs" in msg and f"{MAX_MAPPED_PES:,}" in msg
    found = [v for v in rules.check(net) if v.rule == "chips"]
    assert found and found[0].value == snn.MAX_POPULATION_SIZE and found[0].limit == MAX_MAPPED_PES


@pytest.mark.parametrize("cap", [0, -1, "4", 2.5])
def test_a_mutated_max_atoms_per_core_is_an_error_not_a_hang(cap):
    net = small_net()
    net.population("hid").max_atoms_per_core = cap
    with pytest.raises(MappingSizeError, match=r"population 'hid': max atoms per core must be a positive integer"):
        map_to_cores(net)
    assert [v.rule for v in rules.check(net)] == ["atoms_per_core"]


def test_mapping_a_large_population_allocates_per_synapse_not_per_neuron():
    stim = snn.Population(2**20, "spike_list", {5: [1, 2]}, name="in")
    hid = snn.Population(2**20, "lif", name="hid")
    net = snn.Network().add(stim, hid, snn.Projection(stim, hid, [[5, 2**20 - 1, 3, 0]]))
    tracemalloc.start()
    m = map_to_cores(net)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert m.pes == 1024 + 4195 and peak < 16 * 2**20
    assert rules.check(net, chips_available=48) == []


def test_tall_conv_maps_without_an_input_by_output_matrix():
    """A 65536 x 1 input with a 1 x 1 kernel: the old receptive-field matrices were 2^32 entries."""
    h = 2**16
    inp = snn.Population(h, "spike_list", name="img")
    out = snn.Population(h, "lif_conv2d", name="conv")
    net = snn.Network().add(inp, out, snn.Conv2DProjection(inp, out, np.ones((1, 1, 1, 1)),
                                                          {"in_height": h, "in_width": 1}))
    tracemalloc.start()
    m = map_to_cores(net)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20
    # input slice s (1024 rows) reaches exactly output slice s
    assert len(m.routes) == 64 and all(r.targets == (64 + r.source,) for r in m.routes)


def test_compile_refuses_a_dense_matrix_beyond_the_memory_limit():
    a = snn.Population(2**20, "spike_list", name="a")
    b = snn.Population(2**20, "lif", name="b")
    net = snn.Network("big").add(a, b, snn.Projection(a, b, [[0, 0, 1, 0]]))
    msg = bounded(lambda: compile_network(net))
    assert "projection 'a' -> 'b'" in msg and "1,048,576 x 1,048,576" in msg and f"{4 * 2**30:,}" in msg
    msg = bounded(lambda: compile_network(small_net(), max_bytes=100))
    assert "over the limit of 100 bytes" in msg


# --- sizes: runs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("timesteps", [10**9, 10**12, 2**63])
def test_run_with_huge_timesteps_is_refused_before_allocation(timesteps):
    net = small_net()
    expect = rf"a run of {timesteps:,} timesteps x batch 1 needs about [\d,]+ bytes .* over the limit of " \
             rf"{MAX_RUN_BYTES:,} bytes"
    for call in (lambda: hwmodel.run(net, None, timesteps=timesteps),
                 lambda: spike_list_inputs(net, timesteps),
                 lambda: hwmodel.Simulator().run(net, timesteps),
                 lambda: check_run_size(net, 1, timesteps)):
        msg = bounded(call)
        assert __import__("re").search(expect, msg), msg


def test_run_without_inputs_and_huge_timesteps():
    pop = snn.Population(3, "lif", {"i_offset": 0.5}, name="free", record=["v"])
    net = snn.Network().add(pop)
    msg = bounded(lambda: hwmodel.run(net, timesteps=10**10))
    assert "10,000,000,000 timesteps" in msg
    prog = compile_network(net)
    msg = bounded(lambda: hwmodel.run(prog, timesteps=10**10))
    assert "10,000,000,000 timesteps" in msg


def test_the_run_limit_can_be_set_per_call():
    net = small_net()
    estimate = check_run_size(net, 2, 50)
    assert estimate == 2 * 2 * 50 * (3 + 3 + 4 + 4 * 4 + 4 * 2)  # inputs, spikes of both, v of hid, 2 counters
    x = np.zeros((2, 50, 3), bool)
    with pytest.raises(ValueError, match=rf"needs about {estimate:,} bytes .* limit of {estimate - 1:,} bytes"):
        hwmodel.run(net, {"in": x}, max_bytes=estimate - 1)
    _, trace = hwmodel.run(net, {"in": x}, max_bytes=estimate)
    assert trace.spikes["hid"].shape == (2, 50, 4)


@pytest.mark.parametrize("batch, timesteps", [(0, 5), (1, 0), (1, True), (1, "10"), (1.0, 5), (1, -2), (1, 2.5)],
                         ids=repr)
def test_check_run_size_arguments(batch, timesteps):
    with pytest.raises(ValueError, match=r"(batch|timesteps) must be a positive integer"):
        check_run_size(small_net(), batch, timesteps)


@pytest.mark.parametrize("timesteps", [0, True, "5", 2.0])
def test_run_timesteps_must_be_a_positive_integer(timesteps):
    with pytest.raises(ValueError, match=r"timesteps must be a positive integer"):
        hwmodel.run(small_net(), None, timesteps=timesteps)
    with pytest.raises(ValueError, match=r"timesteps must be a positive integer"):
        spike_list_inputs(small_net(), timesteps)


def test_normal_runs_are_unchanged():
    net = small_net()
    inputs = spike_list_inputs(net, 10)
    assert inputs["in"].shape == (1, 10, 3) and inputs["in"][0, 2, 0] and inputs["in"][0, 1, 2]
    _, trace = hwmodel.run(net, inputs)
    assert trace.voltages["hid"].shape == (1, 10, 4)
    assert hwmodel.Simulator().run(net, 10).spikes["hid"].shape == (1, 10, 4)
    with pytest.raises(ValueError, match=r"run needs a qnet.Network or a ChipProgram, got str"):
        hwmodel.run("net", timesteps=3)


def test_parameters_edited_after_construction_are_checked_by_compile_and_rules():
    net = small_net()
    net.population("hid").params["threshold"] = "1.0"
    with pytest.raises(ValueError, match=r"population 'hid': parameter 'threshold' must be"):
        compile_network(net)
    found = [v for v in rules.check(net) if v.rule == "parameters"]
    assert len(found) == 1 and "parameter 'threshold'" in found[0].message
    net = small_net()
    net.population("in").params[0] = ["3"]
    assert [v.rule for v in rules.check(net)] == ["parameters"]
    with pytest.raises(ValueError, match=r"population 'in': spike ticks of neuron 0"):
        compile_network(net)


def test_cost_estimate_of_a_mutated_size_is_a_clear_error():
    net = small_net()
    net.population("hid").size = HUGE
    msg = bounded(lambda: hwmodel.estimate_cost(net))
    assert "population 'hid': size 4,294,967,295 exceeds the limit of 16,777,216" in msg


# --- synapse, spike and name limits of the qnet constructors -------------------------------------------


def test_a_projection_with_more_rows_than_max_synapses_is_refused_before_copying():
    stim, hid = small_net().populations
    rows = np.broadcast_to(np.zeros(4, np.int8), (snn.MAX_SYNAPSES + 1, 4))  # no memory behind it
    msg = bounded(lambda: snn.Projection(stim, hid, rows))
    assert "projection 'in' -> 'hid'" in msg and "16,777,217 synapses exceed the limit of 16,777,216" in msg
    assert "MAX_SYNAPSES" in msg


def test_a_conv_kernel_with_more_weights_than_max_synapses_is_refused_before_copying():
    pre = snn.Population(4, "spike_list", name="pre")
    post = snn.Population(4, "lif_conv2d", name="post")
    kernel = np.broadcast_to(np.zeros(1, np.int8), (1, snn.MAX_SYNAPSES + 1, 1, 1))
    msg = bounded(lambda: snn.Conv2DProjection(pre, post, kernel, {"in_height": 2, "in_width": 2}))
    assert "conv projection 'pre' -> 'post': kernel: 16,777,217 synapses" in msg and "MAX_SYNAPSES" in msg


@pytest.mark.parametrize("ticks", [range(2**23 + 1), range(10**15), np.zeros(2**23 + 1, np.int32)],
                         ids=["range", "huge range", "array"])
def test_a_spike_list_with_more_entries_than_max_spikes_is_refused_before_looping(ticks):
    msg = bounded(lambda: snn.Population(2, "spike_list", {0: ticks}, name="src"))
    assert "population 'src': spike_list:" in msg and f"exceed the limit of {snn.MAX_SPIKES:,}" in msg
    assert "MAX_SPIKES" in msg


def test_set_spike_times_and_set_params_check_the_spike_count():
    src = snn.Population(3, "spike_list", {0: [1]}, name="src")
    half = range(snn.MAX_SPIKES // 2 + 1)
    for change in (lambda: src.set_spike_times({0: half, 1: half}), lambda: src.set_params({0: half, 2: half})):
        assert "exceed the limit of 8,388,608 per spike_list population (MAX_SPIKES)" in bounded(change)
    assert src.params == {0: [1]}


def test_integer_tick_arrays_are_checked_without_a_loop_per_tick():
    ticks = np.arange(300_000, 0, -1, dtype=np.int64)
    t0 = time.perf_counter()
    src = snn.Population(1, "spike_list", {0: np.concatenate([ticks, ticks])}, name="src")
    assert time.perf_counter() - t0 < 5 and src.params[0][:3] == [1, 2, 3] and len(src.params[0]) == 300_000
    for bad in (np.array([3, -1]), np.array([2**31], np.int64)):
        with pytest.raises(ValueError, match=r"spike ticks of neuron 0 must be non-negative integers"):
            snn.Population(1, "spike_list", {0: bad}, name="src")


def test_a_50mb_name_is_refused_quickly_and_shown_cut():
    name = "n" * 50_000_000
    for make in (lambda: snn.Network(name), lambda: snn.Population(2, "lif", name=name)):
        msg = bounded(make)
        assert "50,000,000 characters, over the limit of 256 (MAX_NAME_LENGTH)" in msg and len(msg) < 300
    stim, hid = small_net().populations
    assert "MAX_NAME_LENGTH" in bounded(lambda: snn.Projection(stim, hid, [], name=name))
    assert snn.Network("x" * snn.MAX_NAME_LENGTH).name == "x" * 256


@pytest.mark.parametrize("name", ["bad\udc80", "\ud800"], ids=repr)
def test_a_name_that_is_not_utf8_encodable_is_refused(name):
    for make in (lambda: snn.Network(name), lambda: snn.Population(2, "spike_list", name=name)):
        msg = bounded(make)
        assert "cannot be encoded as UTF-8" in msg and "surrogate" in msg
    assert snn.Network("Ünïcødé ✓ 🧠").name == "Ünïcødé ✓ 🧠"
