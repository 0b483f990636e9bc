"""py-spinnaker2 bundles: the generated script rebuilds the network exactly and runs it; results come back
in the chip model's Trace layout; the bundle round-trips; writing is atomic.

The script runs in a subprocess against tests/stub_spinnaker2, a stand-in for py-spinnaker2 that logs
every call, checks argument types and simulates with s2jax's chip model.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from s2jax import hwmodel
from s2jax import qnet as snn
from s2jax.export import pyspinnaker2 as bundle_io
from s2jax.export.pyspinnaker2 import Difference, compare, load_pyspinnaker2, load_results, to_pyspinnaker2

STUB = Path(__file__).parents[2] / "stub_spinnaker2"


def load_stub_calls(path):
    """Read the stand-in's JSON call log with its own decoder (loaded under another module name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_stub_log", STUB / "spinnaker2" / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_calls(path)
REPO = Path(__file__).parents[3]
T_BUNDLE, T_RUN = 16, 18  # the bundle's default ticks, and the --timesteps override the test runs with
F32_MAX = float(np.finfo(np.float32).max)


def example_network():
    """Every model and projection kind the bundle carries, small enough to run in a second."""
    rng = np.random.default_rng(7)
    img = snn.Population(42, "spike_list", {n: np.nonzero(rng.random(T_RUN) < 0.3)[0].tolist() for n in range(40)},
                         name="img", record=["spikes"])  # 1 x 7 x 6; neurons 40, 41 never fire
    img.params[41] = []
    hid = snn.Population(5, "lif", {"threshold": np.array([8.0, 9.0, 10.0, 11.0, 12.5]),
                                    "alpha_decay": [0.9, 0.8, 0.7, 0.95, 1.0], "i_offset": 0.5},
                         name="hid", record=["spikes", "v"])
    hid.set_max_atoms_per_core(3)
    conv = snn.Population(12, "lif_conv2d", {"threshold": 30.0, "alpha_decay": 0.75, "v_reset": -1.0,
                                             "reset": "reset_to_v_reset"}, name="conv", record=["spikes"])
    nd = snn.Population(4, "lif_no_delay", {"threshold": 50, "alpha_decay": 0.5,
                                            "i_offset": np.array([0.0, 1.5, -0.25, 3.0], np.float32),
                                            "v_init": [0.0, 10.0, 20.0, 49.0]}, name="nd", record=["spikes", "v"])
    cuba = snn.Population(3, "lif_curr_exp", {"threshold": 5.0, "alpha_decay": 0.9, "exc_decay": 0.5,
                                              "inh_decay": 0.25, "t_refrac": 2}, name="cuba", record=["spikes", "v"])
    cuba.set_max_atoms_per_core(2)
    readout = snn.Population(2, "lif_no_delay", {"threshold": F32_MAX, "alpha_decay": np.float32(0.95)},
                             name="readout", record=["v"])
    rows = lambda n_pre, n_post, m, lo, hi, d: [  # noqa: E731
        [int(rng.integers(n_pre)), int(rng.integers(n_post)), int(rng.integers(lo, hi + 1)), int(rng.integers(d + 1))]
        for _ in range(m)]
    projs = [
        snn.Projection(img, hid, rows(42, 5, 60, -4, 15, 7)),
        snn.Conv2DProjection(img, conv, rng.integers(-20, 41, (1, 2, 2, 3)),
                             {"in_height": 7, "in_width": 6, "pool_y": 2, "pool_x": 2, "stride_x": 2,
                              "pad_top": 1, "pad_left": 1, "pad_right": 1}),  # 3x3 pooled -> 4x5 padded -> 3x2
        snn.Projection(conv, nd, rows(12, 4, 30, -30, 127, 0)),
        snn.Projection(hid, cuba, rows(5, 3, 12, -15, 15, 7)),
        snn.Projection(cuba, readout, rows(3, 2, 6, -127, 127, 0)),
        snn.Projection(nd, readout, rows(4, 2, 6, -127, 127, 0)),
    ]
    return snn.Network("bundle-test").add(img, hid, conv, nd, cuba, readout, *projs)


def model_trace(net, timesteps):
    return hwmodel.run(net, hwmodel.spike_list_inputs(net, timesteps), timesteps=timesteps)[1]


def assert_same_network(a: snn.Network, b: snn.Network):
    assert a.name == b.name
    assert [p.name for p in a.populations] == [p.name for p in b.populations]
    for p, q in zip(a.populations, b.populations):
        where = p.name
        assert (p.size, p.neuron_model, p.record, p.max_atoms_per_core) == \
            (q.size, q.neuron_model, q.record, q.max_atoms_per_core), where
        assert list(p.params) == list(q.params), where
        for key, v in p.params.items():
            if isinstance(v, str) or p.neuron_model == "spike_list":
                assert v == q.params[key], (where, key)
            else:
                assert np.shape(v) == np.shape(q.params[key]), (where, key)
                np.testing.assert_array_equal(np.asarray(v, np.float64), np.asarray(q.params[key], np.float64),
                                              err_msg=f"{where}.{key}")
    assert len(a.projections) == len(b.projections)
    for p, q in zip(a.projections, b.projections):
        assert (type(p), p.pre.name, p.post.name) == (type(q), q.pre.name, q.post.name)
        if isinstance(p, snn.Conv2DProjection):
            assert p.conv_params == q.conv_params
            np.testing.assert_array_equal(p.weights, q.weights)
        else:
            np.testing.assert_array_equal(p.connections, q.connections)


def run_script(folder, *args, log=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STUB), str(REPO)])}
    if log is not None:
        env["SPINNAKER2_STUB_LOG"] = str(log)
    return subprocess.run([sys.executable, str(folder / "run_on_spinnaker2.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def chip_run(tmp_path_factory):
    """The example bundle, run once by its script on the stand-in chip: ``(net, folder, calls)``."""
    net = example_network()
    folder = to_pyspinnaker2(net, tmp_path_factory.mktemp("run") / "bundle", timesteps=T_BUNDLE)
    log = folder.parent / "calls.json"
    run_script(folder, "--eth-ip", "10.1.2.3", "--timesteps", str(T_RUN), log=log)
    calls = load_stub_calls(log)  # the stand-in's own call log, written by this test's subprocess
    return net, folder, calls


@pytest.fixture
def stub(monkeypatch):
    """The stand-in package imported in this process (removed from sys.modules afterwards)."""
    monkeypatch.syspath_prepend(str(STUB))
    for name in [m for m in sys.modules if m == "spinnaker2" or m.startswith("spinnaker2.")]:
        monkeypatch.delitem(sys.modules, name)
    import spinnaker2
    from spinnaker2 import hardware, snn as stub_snn
    yield spinnaker2, stub_snn, hardware
    for name in [m for m in sys.modules if m == "spinnaker2" or m.startswith("spinnaker2.")]:
        del sys.modules[name]


def test_script_rebuilds_the_network_exactly(chip_run, stub):
    net, _, calls = chip_run
    spinnaker2 = stub[0]
    assert_same_network(net, spinnaker2.network_from_calls(calls))
    names = [c[0] for c in calls]
    assert names.count("snn.Population") == 6 and names.count("Population.set_max_atoms_per_core") == 2
    (chip,) = [c for c in calls if c[0] == "hardware.SpiNNaker2Chip"]
    assert chip[3] == {"eth_ip": "10.1.2.3"}
    (run,) = [c for c in calls if c[0] == "SpiNNaker2Chip.run"]
    assert run[2][1] == T_RUN and run[3]["sys_tick_in_s"] == 1e-3
    readout = next(c[3] for c in calls if c[0] == "snn.Population" and c[3]["name"] == "readout")
    assert type(readout["params"]["threshold"]) is float and readout["params"]["threshold"] == F32_MAX
    cuba = next(c[3] for c in calls if c[0] == "snn.Population" and c[3]["name"] == "cuba")
    assert type(cuba["params"]["t_refrac"]) is int


def test_results_match_the_chip_model_in_trace_layout(chip_run):
    net, folder, _ = chip_run
    chip = load_results(folder, net)
    trace = model_trace(net, T_RUN)
    assert set(chip) == {p.name for p in net.populations}
    for name, rec in chip.items():
        assert set(rec) == {k for k, d in (("spikes", trace.spikes), ("voltages", trace.voltages)) if name in d}
        if "spikes" in rec:
            assert rec["spikes"].dtype == bool and rec["spikes"].shape == (T_RUN, net.population(name).size)
            np.testing.assert_array_equal(rec["spikes"], trace.spikes[name][0], err_msg=name)
        if "voltages" in rec:
            assert rec["voltages"].dtype == np.float32
            np.testing.assert_array_equal(rec["voltages"], trace.voltages[name][0], err_msg=name)
    for name in ("hid", "conv", "nd", "cuba"):  # not a vacuous comparison
        assert 0 < chip[name]["spikes"].sum() < chip[name]["spikes"].size, name
    assert np.all(chip["img"]["spikes"][:, 40:] == 0)


def test_bundle_round_trips_without_running_the_script(chip_run):
    net, folder, _ = chip_run
    loaded = load_pyspinnaker2(folder)
    assert_same_network(net, loaded)
    assert loaded.population("readout").params["threshold"] == F32_MAX
    assert type(loaded.population("cuba").params["t_refrac"]) is int
    a, b = model_trace(net, T_RUN), model_trace(loaded, T_RUN)
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name], b.spikes[name])
    for name in a.voltages:
        np.testing.assert_array_equal(a.voltages[name], b.voltages[name])
    assert compare(folder) == {p.name: None for p in net.populations}


def test_compare_reports_the_first_difference(chip_run, tmp_path):
    net, folder, _ = chip_run
    copy = Path(shutil.copytree(folder, tmp_path / "bundle"))
    with np.load(copy / "results.npz", allow_pickle=False) as f:
        res = {k: f[k] for k in f.files}
    cuba, conv = 4, 2  # positions in network.json
    res[f"pop{cuba}.v"][1, 9] += 1.0  # neuron 1 (rows are sorted neurons 0..2), tick 9
    res[f"pop{conv}.spikes"] = res[f"pop{conv}.spikes"][1:]  # drop the first reported spike
    with open(copy / "results.npz", "wb") as f:
        np.savez(f, **res)
    dropped = load_results(folder, net)["conv"]["spikes"] & ~load_results(copy, net)["conv"]["spikes"]
    diff = compare(copy, net)
    v = load_results(folder, net)["cuba"]["voltages"][9, 1]
    assert diff["cuba"] == Difference(9, 1, "voltages", float(np.float32(v + 1.0)), float(v))
    (t, n), = np.argwhere(dropped)
    assert diff["conv"] == Difference(int(t), int(n), "spikes", 0.0, 1.0)
    assert all(diff[name] is None for name in ("img", "hid", "nd", "readout"))


def test_files_are_strict_json_and_npz_without_pickle(chip_run):
    _, folder, _ = chip_run

    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name}")

    meta = json.loads((folder / "network.json").read_text(), parse_constant=no_constants)
    assert (meta["format"], meta["format_version"]) == (bundle_io.BUNDLE_FORMAT, bundle_io.BUNDLE_VERSION)
    assert meta["timesteps"] == T_BUNDLE and [p["name"] for p in meta["populations"]][-1] == "readout"
    assert meta["projections"][1]["conv_params"]["pool_x"] == 2
    with np.load(folder / "arrays.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert all(a.dtype != object for a in arrays.values())
    assert arrays["proj0.connections"].dtype == np.int32 and arrays["proj0.connections"].shape == (60, 4)
    assert arrays["proj1.kernel"].dtype == np.int8 and arrays["proj1.kernel"].shape == (1, 2, 2, 3)
    assert arrays["pop0.spike_times"].dtype == np.int32 and arrays["pop0.spike_times"].shape[1] == 2
    assert arrays["pop5.threshold"].dtype == np.float64 and arrays["pop5.threshold"] == F32_MAX
    assert arrays["pop1.threshold"].shape == (5,) and arrays["pop4.t_refrac"].dtype == np.int64
    with np.load(folder / "results.npz", allow_pickle=False) as f:
        assert int(f["timesteps"]) == T_RUN and f["pop0.spikes"].shape[1] == 2


def test_script_needs_only_numpy_and_spinnaker2_and_shows_its_defaults(chip_run):
    _, folder, _ = chip_run
    text = (folder / "run_on_spinnaker2.py").read_text()
    modules = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    assert modules == {"argparse", "json", "os", "pathlib", "numpy", "spinnaker2"}
    assert "snn.Conv2DProjection(pop[0], pop[2], arrays['proj1.kernel']" in text
    assert "pop[1].set_max_atoms_per_core(3)" in text
    help_text = run_script(folder, "--help").stdout
    assert f"default: {T_BUNDLE}" in help_text and "default: 192.168.1.17" in help_text


def test_stub_rejects_what_py_spinnaker2_does_not_take(stub):
    _, stub_snn, _ = stub
    with pytest.raises(TypeError, match="param 'threshold'"):
        stub_snn.Population(size=2, neuron_model="lif", params={"threshold": np.ones(2)}, name="a", record=[])
    pre = stub_snn.Population(size=2, neuron_model="spike_list", params={0: [1]}, name="s", record=[])
    post = stub_snn.Population(size=2, neuron_model="lif", params={"threshold": [1.0, 2.0]}, name="b", record=[])
    with pytest.raises(TypeError, match="connection must be a list of 4 ints"):
        stub_snn.Projection(pre=pre, post=post, connections=[np.array([0, 0, 1, 0])])


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    net = example_network()
    target = tmp_path / "b"
    target.mkdir()
    to_pyspinnaker2(net, target, timesteps=3)  # an empty folder is fine
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty; pass overwrite=True"):
        to_pyspinnaker2(net, target, timesteps=4)
    assert (target / "notes.txt").exists() and json.loads((target / "network.json").read_text())["timesteps"] == 3
    to_pyspinnaker2(net, target, timesteps=4, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["arrays.npz", "network.json", "run_on_spinnaker2.py"]
    assert json.loads((target / "network.json").read_text())["timesteps"] == 4
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError, match="not a folder"):
        to_pyspinnaker2(net, tmp_path / "f", timesteps=3, overwrite=True)
    with pytest.raises(ValueError, match="timesteps must be a positive integer"):
        to_pyspinnaker2(net, tmp_path / "c", timesteps=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "f"]


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    net = example_network()
    old = to_pyspinnaker2(net, tmp_path / "b", timesteps=3)
    before = {p.name: p.read_bytes() for p in old.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)  # fails after network.json is written
    for target, overwrite in ((tmp_path / "new", False), (old, True)):
        with pytest.raises(OSError, match="disk full"):
            to_pyspinnaker2(net, target, timesteps=5, overwrite=overwrite)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temp folders, no half bundle
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before


def test_a_tampered_bundle_names_the_file(tmp_path):
    net = snn.Network("t").add(snn.Population(2, "spike_list", {0: [1]}, name="in"))
    folder = to_pyspinnaker2(net, tmp_path / "b", timesteps=3)
    meta = json.loads((folder / "network.json").read_text())
    del meta["populations"][0]["size"]
    (folder / "network.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"network\.json: malformed bundle \(KeyError: 'size'\)"):
        load_pyspinnaker2(folder)
