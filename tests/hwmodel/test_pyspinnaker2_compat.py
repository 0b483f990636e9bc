"""py-spinnaker2 scripts run on the chip model with only their imports changed (issue 11).

The scripts below are written the way py-spinnaker2 users write them (spike_list dicts, float
weights, ``record`` lists with ``"time_done"``, ``pop.params = ...`` after construction,
``set_max_atoms_per_core``, ``SpiNNcloud48NodeBoard``, ``helpers``); each is executed after the
one import line is swapped. Whatever the model does not support is refused by name.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from s2jax import helpers
from s2jax import hwmodel as hardware
from s2jax import qnet as snn
from s2jax.hwmodel import hardware as front_door
from s2jax.hwmodel.cost import estimate_cost
from s2jax.hwmodel.mapping import Mapping, map_to_cores

ROOT = Path(__file__).resolve().parents[2]

S2JAX_IMPORTS = ("from s2jax import qnet as snn\nfrom s2jax import hwmodel as hardware\n"
                 "from s2jax import helpers\n")


def run_unchanged(script: str) -> dict:
    """Execute a py-spinnaker2 script after replacing only its ``from spinnaker2 import ...`` line."""
    pattern = r"^from spinnaker2 import (hardware|helpers|snn)(, (hardware|helpers|snn))*\n"
    assert len(re.findall(pattern, script, re.M)) == 1
    namespace: dict = {}
    exec(compile(re.sub(pattern, S2JAX_IMPORTS, script, flags=re.M), "<script>", "exec"), namespace)
    return namespace


LIF_SCRIPT = """
import numpy as np
from spinnaker2 import hardware, helpers, snn

hw = hardware.SpiNNcloud48NodeBoard()

input_spikes = {0: [1, 4, 9, 11], 1: [20, 30]}
stim = snn.Population(size=2, neuron_model="spike_list", params=input_spikes, name="stim")
params = {
    "threshold": 10.0,
    "alpha_decay": 0.9,
    "i_offset": 0.0,
    "v_init": 0.0,
    "v_reset": 0.0,
    "reset": "reset_by_subtraction",
}
pop1 = snn.Population(size=1, neuron_model="lif", params=params, name="pop1", record=["spikes", "v"])
conns = []
conns.append([0, 0, 4, 1])
conns.append([1, 0, -3, 2])
proj = snn.Projection(pre=stim, post=pop1, connections=conns)
net = snn.Network("my network")
net.add(stim, pop1, proj)
timesteps = 50
hw.run(net, timesteps)

spike_times = pop1.get_spikes()
voltages = pop1.get_voltages()
in_indices, in_times = helpers.spike_times_dict_to_arrays(input_spikes)
indices, times = helpers.spike_times_dict_to_arrays(spike_times)
"""


def test_lif_example_runs_unchanged_on_the_48_node_board():
    ns = run_unchanged(LIF_SCRIPT)
    assert ns["in_indices"].tolist() == [0, 0, 0, 0, 1, 1]
    assert ns["in_times"].tolist() == [1, 4, 9, 11, 20, 30]
    v = ns["voltages"][0]
    assert v.shape == (50,)
    assert v[2] == 0.0 and v[3] == 4.0  # the delay-1 spike of tick 1 arrives at tick 3
    assert ns["indices"].size == ns["times"].size
    trace = ns["hw"].last_trace
    np.testing.assert_array_equal(np.nonzero(np.asarray(trace.spikes["pop1"][0, :, 0]))[0], ns["times"])


NIR_STYLE_SCRIPT = """
import numpy as np
from spinnaker2 import hardware, snn

inp = snn.Population(size=4, neuron_model="spike_list", params={}, name="input")
hidden = snn.Population(size=6, neuron_model="lif_curr_exp", params={"threshold": 3.0, "alpha_decay": 0.5,
                        "exc_decay": 0.5, "inh_decay": 0.5}, name="1", record=["spikes"])
out = snn.Population(size=2, neuron_model="lif_no_delay", params={"threshold": 1e9, "alpha_decay": 1.0},
                     name="output", record=["v", "spikes"])
w1 = [[i, j, 5.0, 0] for i in range(4) for j in range(6)]
w2 = [[j, k, 7.0, 0] for j in range(6) for k in range(2)]
net = snn.Network()
net.add(inp, hidden, out, snn.Projection(inp, hidden, w1), snn.Projection(hidden, out, w2))

for pop in net.populations:
    if pop.name == "1":
        pop.set_max_atoms_per_core(4)
        pop.record = ["time_done", "spikes"]
    if pop.name == "output":
        pop.record = ["v", "spikes", "time_done"]

sys_tick_in_s = 2.0e-3
x = np.zeros((12, 4), int)
x[[1, 2, 5], 0] = 1
x[[2, 3], 3] = 1
inp.params = {i: x[:, i].nonzero()[0].tolist() for i in range(4)}

hw = hardware.SpiNNaker2Chip(eth_ip="192.168.2.33")
hw.run(net, x.shape[0] + 1, sys_tick_in_s=sys_tick_in_s, debug=False)
voltages = out.get_voltages()
time_done_dict = {p.name: p.get_time_done_times() for p in net.populations if "time_done" in p.record}
"""


def test_nir_style_script_with_time_done_runs_unchanged():
    ns = run_unchanged(NIR_STYLE_SCRIPT)
    net, hw = ns["net"], ns["hw"]
    td = ns["time_done_dict"]
    assert set(td) == {"1", "output"}
    placements = map_to_cores(net).placements
    assert set(td["1"]) == {(p.chip, p.pe) for p in placements if p.population == "1"}
    assert len(td["1"]) == 2  # 6 neurons, at most 4 per core
    for per_pe in td.values():
        for times in per_pe.values():
            assert times.shape == (13,) and np.all(times > 0) and np.all(np.isfinite(times))
    # the output layer receives events only after the hidden layer fires: more work on those ticks
    events = np.asarray(hw.last_trace.synaptic_events[0, :, 2])
    (out_pe,) = td["output"].values()
    assert np.all(np.diff(out_pe)[np.diff(events) > 0] > 0)
    assert len(ns["voltages"][0]) == 13


QUBO_STYLE_SCRIPT = """
import numpy as np
from spinnaker2 import hardware, helpers, snn

Q = np.array([[0, -2, 1], [-2, 0, -1], [1, -1, 0]])
indices = np.nonzero(Q)
conns = np.column_stack((indices[0], indices[1], Q[indices], np.zeros_like(Q[indices])))
neuron_params = {"threshold": 0.5, "alpha_decay": 0.75, "reset": "reset_to_v_reset", "v_reset": 0.0,
                 "i_offset": [0.3, 0.2, 0.6]}
qubo_pop = snn.Population(size=Q.shape[0], neuron_model="lif_no_delay", params=neuron_params,
                          record=["spikes"])
proj_qubo = snn.Projection(pre=qubo_pop, post=qubo_pop, connections=conns)
net = snn.Network("QUBO Network")
net.add(qubo_pop, proj_qubo)

hw = hardware.SpiNNcloud48NodeBoard(eth_ip="192.168.1.17", stm_ip="192.168.1.2")
timesteps = 30
hw.run(net, timesteps, debug=False, reset_board=True)
spike_times = qubo_pop.get_spikes()
spike_matrix = helpers.spike_times_to_matrix(spike_times, n_timesteps=timesteps)
energy_per_time = [spike_matrix.T[i] @ Q @ spike_matrix.T[i] for i in range(spike_matrix.T.shape[0])]
"""


def test_qubo_style_script_without_inputs_runs_unchanged():
    ns = run_unchanged(QUBO_STYLE_SCRIPT)
    m = ns["spike_matrix"]
    assert m.shape == (3, 30)  # every neuron has a row, silent ones too
    np.testing.assert_array_equal(m.T.astype(bool), np.asarray(ns["hw"].last_trace.spikes["pop0"][0]))
    assert len(ns["energy_per_time"]) == 30


def test_readme_script_runs_as_written(capsys):
    text = (ROOT / "README.md").read_text()
    section = text.split("## From a py-spinnaker2 script to the chip model", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    ns: dict = {}
    exec(compile(code, "<README>", "exec"), ns)
    out = capsys.readouterr().out
    assert "{0: [2, 5]}" in out
    (values,) = ns["pop"].get_time_done_times().values()
    np.testing.assert_allclose(values[:3], [0.0006, 0.0006, 0.00066])  # the numbers the README prints
    assert ns["indices"].tolist() == [0, 0] and ns["times"].tolist() == [2, 5]


# --- hardware classes and run() keywords --------------------------------------------------------

def small_net(record=("spikes",)):
    stim = snn.Population(size=2, neuron_model="spike_list", params={0: [1, 4], 1: [2]}, name="in")
    pop = snn.Population(size=3, neuron_model="lif", params={"threshold": 10.0, "alpha_decay": 0.9},
                         name="lif", record=list(record))
    proj = snn.Projection(pre=stim, post=pop, connections=[[0, 0, 12, 0], [1, 2, -3, 5]])
    return snn.Network("demo").add(stim, pop, proj), pop


@pytest.mark.parametrize("cls", [hardware.Simulator, hardware.SpiNNaker2Chip, hardware.SpiNNcloud48NodeBoard])
@pytest.mark.parametrize("kwargs,named", [
    ({"ip": "192.168.1.2"}, "'ip'"),
    ({"eth": "192.168.1.2"}, "'eth'"),
    ({"board_ip": "x", "n_chips": 2}, "'board_ip', 'n_chips'"),
    ({"quantize_weights": True}, "'quantize_weights'"),
])
def test_unknown_hardware_keywords_are_refused_by_name(cls, kwargs, named):
    with pytest.raises(ValueError, match=f"unknown keyword argument.*{named}"):
        cls(**kwargs)


def test_pyspinnaker2_hardware_keywords_are_accepted_and_checked():
    hardware.SpiNNaker2Chip("192.168.1.2")
    hardware.SpiNNaker2Chip(eth_ip="192.168.1.2", experiment_backend_type=object(), profile="fixed")
    hardware.SpiNNcloud48NodeBoard(stm_ip="192.168.4.2", eth_ip="192.168.2.33")
    with pytest.raises(ValueError, match="eth_ip must be an address string"):
        hardware.SpiNNaker2Chip(eth_ip=1921681)
    with pytest.raises(ValueError, match="stm_ip must be an address string"):
        hardware.SpiNNcloud48NodeBoard(stm_ip=["x"])
    with pytest.raises(ValueError, match="spec must be a ChipSpec"):
        hardware.Simulator(spec="spinnaker2")
    assert (hardware.Simulator.chips, hardware.SpiNNaker2Chip.chips, hardware.SpiNNcloud48NodeBoard.chips) == (
        None, 1, 48)


@pytest.mark.parametrize("kwargs,named", [
    ({"quantize_weights": True}, "'quantize_weights'"),
    ({"mappingonly": True}, "'mappingonly'"),
    ({"time_steps": 5}, "'time_steps'"),
    ({"make_clean": True, "sys_tick": 1e-3}, "'make_clean', 'sys_tick'"),
])
def test_unknown_run_keywords_are_refused_by_name_before_running(kwargs, named, monkeypatch):
    monkeypatch.setattr(front_door, "run", lambda *a, **k: pytest.fail("simulated despite a bad keyword"))
    net, _ = small_net()
    with pytest.raises(ValueError, match=f"unknown keyword argument.*{named}"):
        hardware.SpiNNaker2Chip().run(net, 5, **kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"mapping_only": "yes"}, "mapping_only must be True or False, got 'yes'"),
    ({"debug": 1}, "debug must be True or False"),
    ({"reset_board": None}, "reset_board must be True or False"),
    ({"sys_tick_in_s": 0.0}, "sys_tick_in_s must be a tick length"),
    ({"sys_tick_in_s": float("nan")}, "sys_tick_in_s must be a tick length"),
    ({"sys_tick_in_s": "1e-3"}, "sys_tick_in_s must be a tick length"),
    ({"sys_tick_in_s": True}, "sys_tick_in_s must be a tick length"),
    ({"record_power": True}, "record_power=True is not supported: the chip model measures no power"),
    ({"live_power": True}, "live_power=True is not supported"),
])
def test_run_keyword_values_are_checked(kwargs, message):
    net, _ = small_net()
    with pytest.raises(ValueError, match=re.escape(message)):
        hardware.SpiNNcloud48NodeBoard().run(net, 5, **kwargs)


def test_run_refuses_what_is_not_a_network():
    with pytest.raises(ValueError, match="takes a qnet.Network, got dict"):
        hardware.Simulator().run({"populations": []}, 5)


def test_mapping_only_maps_and_does_not_simulate(monkeypatch, capsys):
    net, pop = small_net(record=["spikes", "v", "time_done"])
    hw = hardware.SpiNNaker2Chip(eth_ip="192.168.1.2")
    hw.run(net, 5)
    assert pop.get_spikes() == {0: [2]}  # a real run first: its results must not survive
    monkeypatch.setattr(front_door, "run", lambda *a, **k: pytest.fail("mapping_only simulated"))
    monkeypatch.setattr(front_door, "compile_network", lambda *a, **k: pytest.fail("mapping_only compiled"))
    mapping = hw.run(net, 5, mapping_only=True)
    assert isinstance(mapping, Mapping) and hw.last_mapping is mapping
    assert (mapping.pes, mapping.chips) == (2, 1)
    out = capsys.readouterr().out
    assert "mapping_only=True: network 'demo' mapped onto 2 PE(s) on 1 chip(s); nothing was simulated" in out
    for get in (pop.get_spikes, pop.get_voltages, pop.get_time_done_times):
        with pytest.raises(RuntimeError, match="has not been run yet"):
            get()
    hw.run(net, 5, mapping_only=True, debug=False)
    assert capsys.readouterr().out == ""


def test_chip_count_of_the_hardware_class_is_checked():
    pops = [snn.Population(1, "lif_no_delay", name=f"p{i}") for i in range(153)]  # 153 PEs: 2 chips
    net = snn.Network("big").add(*pops)
    with pytest.raises(ValueError, match=r"needs 153 PEs on 2 chips, but a SpiNNaker2Chip has 1 chip"):
        hardware.SpiNNaker2Chip().run(net, 3, mapping_only=True)
    assert hardware.SpiNNcloud48NodeBoard().run(net, 3, mapping_only=True, debug=False).chips == 2


# --- time_done ----------------------------------------------------------------------------------

def test_time_done_is_the_cost_model_tick_by_tick():
    net, pop = small_net(record=["spikes", "time_done"])
    pop.set_max_atoms_per_core(2)
    hw = hardware.SpiNNaker2Chip()
    trace = hw.run(net, 20, sys_tick_in_s=1e-3)
    td = pop.get_time_done_times()
    assert set(td) == {(0, 1), (0, 2)}
    spec = hw.spec
    for (chip, pe), times in td.items():
        assert times.shape == (20,) and times.dtype == np.float64 and np.all(times > 0)
    # no event: neuron updates only; (0, 1) holds 2 neurons, (0, 2) one
    assert td[(0, 1)][0] == pytest.approx(2 * spec.cycles_per_neuron_update / spec.pe_clock_hz / 1e-3)
    assert td[(0, 2)][0] == pytest.approx(1 * spec.cycles_per_neuron_update / spec.pe_clock_hz / 1e-3)
    # averaged over ticks, the busiest PE is the cost model's latency per tick
    cost = estimate_cost(net, trace)
    busiest = max(times.mean() for times in td.values())
    assert busiest * 1e-3 == pytest.approx(cost.latency_per_tick_s, rel=1e-12)
    # the unit is the tick: a longer sys_tick gives proportionally smaller values
    hw.run(net, 20, sys_tick_in_s=4e-3)
    np.testing.assert_allclose(pop.get_time_done_times()[(0, 1)], td[(0, 1)] / 4)


def test_time_done_of_a_conv_population_matches_the_cost_model():
    stim = snn.Population(16, "spike_list", params={i: [i % 3, 4] for i in range(16)}, name="img")
    conv = snn.Population(8, "lif_conv2d", params={"threshold": 5.0}, name="conv", record=["time_done"])
    kernel = np.ones((1, 2, 3, 3), int)
    net = snn.Network("c").add(stim, conv, snn.Conv2DProjection(stim, conv, kernel, {"in_height": 4,
                                                                                       "in_width": 4}))
    trace = hardware.Simulator().run(net, 6)
    (times,) = conv.get_time_done_times().values()
    assert np.all(times == times[0])  # the MAC array computes the whole convolution every tick
    assert times[0] * 1e-3 == pytest.approx(estimate_cost(net, trace).latency_per_tick_s, rel=1e-12)


def test_time_done_needs_recording_and_is_refused_on_spike_sources():
    net, pop = small_net(record=["spikes"])
    hardware.Simulator().run(net, 4)
    with pytest.raises(RuntimeError, match="does not record time_done"):
        pop.get_time_done_times()
    net.population("in").record = ["spikes", "time_done"]
    with pytest.raises(ValueError, match="population 'in': a spike_list population cannot record 'time_done'"):
        hardware.Simulator().run(net, 4)


def test_records_assigned_after_construction_are_checked_at_run():
    net, pop = small_net()
    pop.record = ["spikes", "n_packets"]
    with pytest.raises(ValueError, match="population 'lif': cannot record 'n_packets'"):
        hardware.Simulator().run(net, 4)
    pop.record = "spikes"
    hardware.Simulator().run(net, 4)
    assert pop.record == ["spikes"]
    with pytest.raises(ValueError, match="cannot record 'n_packets'"):
        snn.Population(2, "lif", record=["n_packets"])
    assert "time_done" in snn.Population(2, "lif", record=["time_done"]).record


def test_params_assigned_after_construction_are_checked_at_run():
    net, pop = small_net()
    pop.params = {"threshold": float("nan")}
    with pytest.raises(ValueError, match="'threshold'"):
        hardware.Simulator().run(net, 4)
    pop.params = {"threshold": 10.0, "alpha_decay": 0.9}  # partial: the defaults fill the rest
    hardware.Simulator().run(net, 4)
    assert pop.params["reset"] == "reset_by_subtraction"
    stim = net.population("in")
    stim.params = {0: [1, -4]}
    with pytest.raises(ValueError, match="spike ticks of neuron 0"):
        hardware.Simulator().run(net, 4)
    stim.params = {0: range(1, 3)}
    hardware.Simulator().run(net, 4)
    assert stim.params == {0: [1, 2]}


# --- set_params -----------------------------------------------------------------------------------

def test_set_params_merges_and_changes_the_run():
    net, pop = small_net()
    hardware.Simulator().run(net, 10)
    assert pop.get_spikes() == {0: [2, 5]}
    pop.set_params({"threshold": 12.0}, alpha_decay=0.5)  # strict threshold: 12 alone no longer fires
    assert pop.params["threshold"] == 12.0 and pop.params["alpha_decay"] == 0.5
    assert pop.params["reset"] == "reset_by_subtraction"  # untouched parameters stay
    hardware.Simulator().run(net, 10)
    assert pop.get_spikes() == {0: [5]}
    stim = net.population("in")
    stim.set_params({0: [1], 1: []})
    assert stim.params == {0: [1], 1: []}


@pytest.mark.parametrize("args,kwargs,message", [
    ((), {}, "set_params needs parameters"),
    (([("threshold", 1.0)],), {}, "set_params takes a dict, got list"),
    (({"threshold": 1.0},), {"threshold": 2.0}, "given both in the dict and as keywords"),
    (({"tau_m": 20.0},), {}, "unknown parameter"),
    ((), {"threshold": float("nan")}, "'threshold'"),
    ((), {"alpha_decay": [0.5, 0.5]}, "'alpha_decay' must be a scalar or have 3 values"),
    ((), {"i_offset": "1.0"}, "'i_offset'"),
    ((), {"v_init": 1e39}, "'v_init'"),
    ((), {"reset": "reset_to_zero"}, "reset must be one of"),
])
def test_set_params_validates_like_construction_and_changes_nothing_on_error(args, kwargs, message):
    _, pop = small_net()
    before = dict(pop.params)
    with pytest.raises(ValueError, match=re.escape(message)):
        pop.set_params(*args, **kwargs)
    assert pop.params == before


def test_set_params_of_a_spike_source_checks_ticks():
    net, _ = small_net()
    stim = net.population("in")
    with pytest.raises(ValueError, match="spike_list neuron index 5 outside"):
        stim.set_params({5: [1]})
    with pytest.raises(ValueError, match="spike ticks of neuron 0"):
        stim.set_params({0: [0.5]})
    assert stim.params == {0: [1, 4], 1: [2]}


# --- helpers --------------------------------------------------------------------------------------

def test_spike_times_dict_to_arrays():
    idx, t = helpers.spike_times_dict_to_arrays({3: [5, 7], 0: range(2), 1: []})
    assert idx.tolist() == [3, 3, 0, 0] and t.tolist() == [5, 7, 0, 1]
    idx, t = helpers.spike_times_dict_to_arrays({})
    assert idx.shape == t.shape == (0,)
    for bad, message in [([[0, 1]], "must be a dict"), ({-1: [1]}, "neuron index -1"), ({"a": [1]}, "'a'"),
                         ({0: [1.5]}, "neuron 0: ticks must be non-negative integers"),
                         ({0: [-2]}, "neuron 0: ticks must be non-negative integers"),
                         ({0: "12"}, "neuron 0: ticks must be a list"), ({0: 3}, "neuron 0: ticks must be a list")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            helpers.spike_times_dict_to_arrays(bad)


def test_spike_times_to_matrix():
    m = helpers.spike_times_to_matrix({0: [1], 2: [0, 3]}, n_timesteps=4)
    assert m.shape == (3, 4) and m.dtype == np.int32
    assert m.tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]]
    assert helpers.spike_times_to_matrix({0: [1]}, 2, n_neurons=3).shape == (3, 2)
    with pytest.raises(ValueError, match="neuron 2 spikes at tick 3, at or beyond n_timesteps=3"):
        helpers.spike_times_to_matrix({2: [0, 3]}, n_timesteps=3)
    with pytest.raises(ValueError, match="neuron 2 outside the 2 rows"):
        helpers.spike_times_to_matrix({2: [0]}, 3, n_neurons=2)
    with pytest.raises(ValueError, match="n_timesteps must be a positive integer"):
        helpers.spike_times_to_matrix({0: [0]}, 0)
    with pytest.raises(ValueError, match="over the limit of"):
        helpers.spike_times_to_matrix({}, n_timesteps=2**20, n_neurons=2**20)


def test_spike_matrix_of_get_spikes_has_a_row_per_neuron():
    net, pop = small_net()
    hardware.Simulator().run(net, 8)
    assert pop.get_spikes() == {0: [2, 5]} and pop.get_spikes().n_neurons == 3
    assert helpers.spike_times_to_matrix(pop.get_spikes(), 8).shape == (3, 8)


def test_unsupported_helpers_are_refused_by_name():
    with pytest.raises(NotImplementedError, match="plot_times_done_multiple_pes_one_plot_vertical is not supported"):
        helpers.plot_times_done_multiple_pes_one_plot_vertical("time_done_1.npz", 1e-3)
    with pytest.raises(AttributeError, match="s2jax.helpers has no 'save_spikes'"):
        helpers.save_spikes  # noqa: B018


# --- sizes ------------------------------------------------------------------------------------------

def test_huge_runs_are_refused_before_anything_is_allocated(monkeypatch):
    monkeypatch.setattr(front_door, "compile_network", lambda *a, **k: pytest.fail("compiled a refused run"))
    net, _ = small_net(record=["spikes", "v"])
    with pytest.raises(ValueError, match="a run of 1,000,000,000 timesteps .* over the limit"):
        hardware.SpiNNaker2Chip().run(net, 10**9)
    stim = snn.Population(1, "spike_list", params={0: [0]}, name="in")
    wide = snn.Population(100, "lif_no_delay", name="wide", record=["time_done"])
    wide.set_max_atoms_per_core(1)  # 100 PEs
    net = snn.Network("w").add(stim, wide, snn.Projection(stim, wide, [[0, 0, 1, 0]]))
    with pytest.raises(ValueError, match=r"time_done of 100 PEs over 8,388,608 timesteps needs about .* over the"):
        hardware.SpiNNcloud48NodeBoard().run(net, 2**23)
    assert hardware.SpiNNcloud48NodeBoard().run(net, 10**9, mapping_only=True, debug=False).pes == 101


def test_network_reset_clears_recordings_and_projections_keep_their_name():
    net, pop = small_net(record=("spikes", "v"))
    named = snn.Projection(net.populations[0], pop, [[1, 1, 4, 0]], name="extra")
    assert named.name == "extra" and net.projections[0].name is None
    net.add(named)
    hw = hardware.SpiNNaker2Chip()
    hw.run(net, 8)
    first = pop.get_spikes()
    assert net.reset() is net
    with pytest.raises(RuntimeError, match="has not been run"):
        pop.get_spikes()
    hw.run(net, 8)
    assert pop.get_spikes() == first  # every run starts from the initial state
    with pytest.raises(ValueError, match="projection name must be a string"):
        snn.Projection(net.populations[0], pop, [], name=["p"])
