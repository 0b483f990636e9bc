"""The kinds registry: every registered neuron kind has an oracle and matches it exactly on the chip
model, in both profiles; and a kind added from outside the package (the toy non-leaky IF of
tests/toy_kind.py) runs through the hand-off format, the chip model, the design rules and the mapper
with nothing but its kind module and its oracle."""

import numpy as np
import pytest

from s2jax import SPINNAKER2, export, hwmodel, kinds
from s2jax import qnet as snn
from tests.hwmodel.test_hwmodel_reference import T, _rows, assert_same
from tests.reference import oracle


def random_params(rng, kind, size):
    """Random values for every parameter of ``kind``, drawn by the parameter's class."""
    out = {}
    for key, cls in kind.param_classes.items():
        if cls == "reset":
            out[key] = str(rng.choice(["reset_by_subtraction", "reset_to_v_reset"]))
        elif cls == "decay":
            out[key] = float(rng.choice([0.0, 1.0, 0.5, np.float32(rng.uniform(0, 1))]))
        elif cls == "ticks":
            out[key] = int(rng.integers(0, 4))
        elif key == "threshold":
            out[key] = rng.uniform(1, 40, size).astype(np.float32) if rng.random() < 0.5 else float(rng.integers(1, 40))
        else:
            out[key] = float(np.float32(rng.uniform(-3, 3)))
    return out


def kind_net(seed, model):
    """Inputs -> 6 neurons of ``model`` (recurrent) -> 4 neurons of ``model``."""
    rng = np.random.default_rng(seed)
    kind = kinds.get(model)
    inp = snn.Population(5, "spike_list", name="in")
    a = snn.Population(6, model, random_params(rng, kind, 6), name="a", record=("spikes", "v"))
    b = snn.Population(4, model, random_params(rng, kind, 4), name="b", record=("spikes", "v"))
    net = snn.Network(f"kind_{model}").add(
        inp, a, b, snn.Projection(inp, a, _rows(rng, 5, 6, model, 0.7, 0.3)),
        snn.Projection(a, b, _rows(rng, 6, 4, model, 0.7, 0.3)), snn.Projection(a, a, _rows(rng, 6, 6, model, 0.3, 0.3)))
    return net, {"in": rng.random((T, 5)) < 0.4}


def check_kind_against_oracle(model, profile, seeds=range(4)):
    fired = 0
    for seed in seeds:
        net, inputs = kind_net(seed, model)
        _, spikes = assert_same(net, inputs, T, profile)
        fired += int(spikes["a"].sum() + spikes["b"].sum())
    assert fired > 0, f"{model}: no neuron ever fired, the comparison proves little"


def test_the_stock_kinds_are_registered_in_the_order_of_the_old_lists():
    assert kinds.names() == ("spike_list", "lif", "lif_no_delay", "lif_conv2d", "lif_curr_exp", "lif_curr_exp_no_delay")
    assert kinds.blocks()[:2] == ("lif", "cuba")
    assert [kinds.get(m).channels for m in kinds.neuron_names()] == [1, 1, 1, 2, 2]


def test_every_kind_has_an_oracle():
    missing = [m for m in kinds.neuron_names() if m not in oracle.STEPS]
    assert not missing, f"neuron kinds without an oracle step in tests/reference: {missing}"


@pytest.mark.parametrize("profile", ["float32", "fixed"])
@pytest.mark.parametrize("model", kinds.neuron_names())
def test_every_kind_matches_its_oracle(model, profile):
    check_kind_against_oracle(model, profile)


def test_every_kind_has_its_chip_numbers():
    for model in kinds.names():
        kind = kinds.get(model)
        assert SPINNAKER2.atoms_per_core(model) >= 1 and SPINNAKER2.state_bytes(model) >= 0
        if kind.is_input:
            with pytest.raises(ValueError, match="takes no synapses"):
                SPINNAKER2.weight_range(model)
        else:
            lo, hi = SPINNAKER2.weight_range(model)
            assert lo < 0 < hi and set(kind.block.params) <= set(kind.defaults)


def test_unknown_models_are_named_with_the_registry():
    with pytest.raises(ValueError, match=r"unknown neuron model 'lif_typo'; known models: \['spike_list', 'lif'"):
        snn.Population(3, "lif_typo")
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(kinds.get("lif"))
    with pytest.raises(ValueError, match="needs a 'v_init' parameter"):
        kinds.NeuronKind("bad", "no v_init", {"threshold": 1.0}, {"threshold": "value"}, block=kinds.block("lif"))


def test_the_guide_lists_every_kind_and_shows_the_toy_step():
    from pathlib import Path

    guide = (Path(__file__).parents[2] / "docs" / "adding-a-kind.md").read_text()
    for model in (*kinds.names(), *kinds.layer_names()):
        assert f"| `{model}` |" in guide, f"docs/adding-a-kind.md has no row for kind {model!r}"
    toy = (Path(__file__).parents[1] / "toy_kind.py").read_text()
    snippet = guide.split("```python")[1].split("```")[0]
    for line in filter(None, (x.strip() for x in snippet.splitlines())):
        assert line in toy, f"the guide's step is not tests/toy_kind.py's: {line!r}"


# --- the toy kind, added from outside the package -------------------------------------------------------


@pytest.fixture
def toy():
    from tests import toy_kind
    from tests.reference import toy_kind_oracle

    kinds.register(toy_kind.KIND)
    toy_kind_oracle.register()
    yield toy_kind
    kinds.unregister(toy_kind.NAME)
    oracle.STEPS.pop(toy_kind.NAME)
    assert toy_kind.NAME not in kinds.names() and toy_kind.NAME not in kinds.blocks()


@pytest.mark.parametrize("profile", ["float32", "fixed"])
def test_toy_kind_matches_its_oracle_on_the_chip_model(toy, profile):
    check_kind_against_oracle(toy.NAME, profile)


def test_toy_kind_mixes_with_stock_kinds_in_one_network(toy):
    rng = np.random.default_rng(7)
    inp = snn.Population(4, "spike_list", name="in")
    a = snn.Population(5, toy.NAME, random_params(rng, toy.KIND, 5), name="a", record=("spikes", "v"))
    b = snn.Population(3, "lif_curr_exp", {"threshold": 2.0, "alpha_decay": 0.9, "exc_decay": 0.5}, name="b",
                       record=("spikes", "v"))
    c = snn.Population(3, "lif", {"threshold": 3.0, "alpha_decay": 0.8}, name="c", record=("spikes", "v"))
    net = snn.Network("mixed").add(inp, a, b, c, snn.Projection(inp, a, _rows(rng, 4, 5, toy.NAME, 0.8, 0.2)),
                                   snn.Projection(a, b, _rows(rng, 5, 3, "lif_curr_exp", 0.8, 0.2)),
                                   snn.Projection(b, c, _rows(rng, 3, 3, "lif", 0.8, 0.2)))
    prog = hwmodel.compile_network(net)
    assert [b for b, _ in prog.layout.blocks] == ["lif", "cuba", toy.NAME]
    for profile in ("float32", "fixed"):
        assert_same(net, {"in": rng.random((T, 4)) < 0.5}, T, profile)


def test_toy_kind_passes_the_design_rules_and_maps_onto_cores(toy):
    net, inputs = kind_net(3, toy.NAME)
    assert export.check(net) == []
    mapping = hwmodel.map_to_cores(net)
    assert mapping.pes >= 3  # the input, and each toy population on its own PE
    _, trace = hwmodel.run(hwmodel.compile_network(net), {k: v[None] for k, v in inputs.items()})
    cost = hwmodel.estimate_cost(net, trace, mapping=mapping)
    assert cost.energy_per_tick_j > 0
    bad = snn.Population(3, toy.NAME, {"threshold": 1.0}, name="bad")
    with pytest.raises(ValueError, match=r"weight 200 outside \[-127, 127\], the range of model 'if_toy'"):
        snn.Projection(net.population("in"), bad, [[0, 0, 200, 0]])  # the kind's declared range
    edited = snn.Projection(net.population("in"), bad, [[0, 0, 100, 0]])
    edited.weights = np.asarray([200])  # edited after construction: the design rules report it
    net.add(bad, edited)
    assert [v.rule for v in export.check(net)] == ["weight_range"]


# --- image and bundle codecs by kind ----------------------------------------------------------------------


def toy_file_net(toy):
    """kind_net of the toy kind, with parameters a file must carry: per-neuron thresholds and v_init, both
    reset modes, 'a' split over 2 PEs, an i_offset on 'b' (one dense input: in NIR it travels as an
    Affine bias) and on 'a' (two inputs: in NIR it travels in the s2jax metadata only)."""
    net, inputs = kind_net(5, toy.NAME)
    net.population("a").set_params(threshold=np.linspace(2.0, 9.0, 6).astype(np.float32), reset="reset_to_v_reset",
                                   v_init=np.float32([0.0, 0.5, -1.0, 0.0, 2.0, 0.25]), v_reset=-0.75, i_offset=0.25)
    net.population("a").set_max_atoms_per_core(4)
    net.population("b").set_params(reset="reset_by_subtraction", i_offset=0.125)
    net.population("in").set_params({0: [1, 4], 3: [2]})
    return net, inputs


def neuron_traces(net, inputs, profile):
    """``{population: (spikes, voltages)}`` of every neuron population on the chip model."""
    _, trace = hwmodel.run(hwmodel.compile_network(net, profile), {k: v[None] for k, v in inputs.items()})
    return {p.name: (np.asarray(trace.spikes[p.name]), np.asarray(trace.voltages[p.name]))
            for p in net.populations if not kinds.get(p.neuron_model).is_input}


def assert_same_toy_network(loaded, net, toy, inputs, profile, fields=("name", "neuron_model", "size", "record")):
    """``loaded`` has ``net``'s populations, the toy parameters bit for bit and the same chip-model trace."""
    assert [tuple(getattr(p, f) for f in fields) for p in loaded.populations] == \
           [tuple(getattr(p, f) for f in fields) for p in net.populations]
    for p in net.populations[1:]:
        q = loaded.population(p.name)
        assert set(q.params) == set(toy.KIND.defaults) and q.params["reset"] == p.params["reset"]
        for key in toy.KIND.params_of("value"):
            np.testing.assert_array_equal(q.param_array(key), p.param_array(key))
    want, got = neuron_traces(net, inputs, profile), neuron_traces(loaded, inputs, profile)
    assert want["a"][0].any() and want["b"][0].any(), "no toy neuron fired: the comparison proves little"
    for name in want:
        np.testing.assert_array_equal(got[name][0], want[name][0], err_msg=f"spikes of {name}")
        np.testing.assert_array_equal(got[name][1], want[name][1], err_msg=f"voltages of {name}")


def write_toy_files(toy, folder):
    """The toy network as a board image and a py-spinnaker2 bundle (which warns: not a py-spinnaker2 model)."""
    from s2jax.export.pyspinnaker2 import NonStockModelWarning

    net, inputs = toy_file_net(toy)
    export.save_image(net, folder / "toy.s2img")
    with pytest.warns(NonStockModelWarning, match=r"population\(s\) 'a' \(if_toy\), 'b' \(if_toy\) use neuron model"):
        export.to_pyspinnaker2(net, folder / "bundle", timesteps=T)
    return net, inputs, folder / "toy.s2img", folder / "bundle"


@pytest.mark.parametrize("profile", ["float32", "fixed"])
def test_toy_kind_round_trips_through_the_image_and_the_bundle_exactly(toy, profile, tmp_path):
    net, inputs, img, bundle = write_toy_files(toy, tmp_path)
    for loaded in (export.load_image(img), export.load_pyspinnaker2(bundle)):
        assert [list(q.params) for q in loaded.populations[1:]] == [list(toy.KIND.defaults)] * 2  # declared order
        assert_same_toy_network(loaded, net, toy, inputs, profile,
                                ("name", "neuron_model", "size", "max_atoms_per_core"))
    export.save_image(export.load_image(img), tmp_path / "again.s2img")  # one encoding per network
    assert (tmp_path / "again.s2img").read_bytes() == img.read_bytes()


def test_image_parameter_blocks_come_from_the_kind(toy):
    from s2jax.export import image

    assert image.param_blocks(toy.NAME) == (("reset", "<u4"), ("threshold", "<f4"), ("i_offset", "<f4"),
                                            ("v_init", "<f4"), ("v_reset", "<f4"))
    lif = ("reset", "threshold", "alpha_decay", "i_offset", "v_init", "v_reset")  # format version 1's order
    assert [k for k, _ in image.param_blocks("lif_conv2d")] == list(lif)
    assert image.param_blocks("lif_curr_exp") == tuple(
        (k, "<u4" if k == "reset" else "<f4") for k in lif + ("exc_decay", "inh_decay")) + (("t_refrac", "<u4"),)


def test_a_kind_the_registry_no_longer_has_is_named_on_load(toy, tmp_path):
    from s2jax.export.image import ImageError
    from s2jax.io import FileFormatError

    _, _, img, bundle = write_toy_files(toy, tmp_path)
    kinds.unregister(toy.NAME)
    try:
        known = str(list(kinds.names())).replace("[", r"\[").replace("]", r"\]")
        with pytest.raises(ImageError, match=rf"has model 'if_toy'; expected one of {known}"):
            export.load_image(img)
        with pytest.raises(FileFormatError, match=rf"unknown neuron model 'if_toy'; known models: {known}"):
            export.load_pyspinnaker2(bundle)
    finally:
        kinds.register(toy.KIND)


def test_a_bundle_lists_exactly_the_parameters_of_its_kind(toy, tmp_path):
    import json
    import shutil

    from s2jax.io import FileFormatError

    _, _, _, bundle = write_toy_files(toy, tmp_path)
    meta = json.loads((bundle / "network.json").read_text())
    assert meta["populations"][1]["params"] == {"reset": "reset_to_v_reset"}
    assert list(meta["populations"][1]["array_params"]) == ["threshold", "i_offset", "v_init", "v_reset"]

    def edited(change, name, drop=None):
        folder = tmp_path / name
        shutil.copytree(bundle, folder)
        doc = json.loads(json.dumps(meta))
        change(doc["populations"][2])
        (folder / "network.json").write_text(json.dumps(doc))
        with np.load(bundle / "arrays.npz") as f:
            np.savez(folder / "arrays.npz", **{k: f[k] for k in f.files if k != drop})
        return folder

    missing = edited(lambda p: p["params"].pop("reset"), "missing")
    with pytest.raises(FileFormatError, match=r"populations\[2\] \('b', model 'if_toy'\): missing parameter\(s\) "
                                              r"\['reset'\]; the kind declares \['threshold', 'i_offset'"):
        export.load_pyspinnaker2(missing)

    def to_params(p):
        del p["array_params"]["threshold"]
        p["params"]["threshold"] = "2.0"

    moved = edited(to_params, "moved", drop="pop2.threshold")
    with pytest.raises(FileFormatError, match=r"parameter 'threshold' \(class 'value'\) is a number and belongs in "
                                              r"array_params, got the string '2.0'"):
        export.load_pyspinnaker2(moved)


def test_the_toy_bundle_script_says_it_needs_a_py_spinnaker2_with_the_model(toy, tmp_path):
    import subprocess
    import sys
    import warnings

    from tests.export.pyspinnaker2.test_pyspinnaker2_bundle import STUB

    _, _, _, bundle = write_toy_files(toy, tmp_path)
    script = (bundle / "run_on_spinnaker2.py").read_text()
    assert "NOT STOCK PY-SPINNAKER2: population(s) 'a' (if_toy), 'b' (if_toy)" in script
    assert "--allow-custom-models" in script
    env = {"PYTHONPATH": str(STUB), "PATH": ""}
    run = subprocess.run([sys.executable, str(bundle / "run_on_spinnaker2.py")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1 and "neuron model(s) ['if_toy'], which stock py-spinnaker2 does not implement; " \
                                   "pass --allow-custom-models" in run.stderr, run.stderr
    stock, _ = kind_net(5, "lif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning, no option: the script is as it always was
        export.to_pyspinnaker2(stock, tmp_path / "stock", timesteps=T)
    assert "custom" not in (tmp_path / "stock" / "run_on_spinnaker2.py").read_text()


def test_cli_check_and_inspect_read_the_toy_files(toy, tmp_path, capsys):
    from s2jax.cli import main

    _, _, img, bundle = write_toy_files(toy, tmp_path)
    for path in (img, bundle):
        assert main(["check", str(path)]) == 0
        assert "OK: the chip can run this network" in capsys.readouterr().out
        assert main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert "a                if_toy" in out and "b                if_toy" in out, out


# --- NIR codecs by kind -----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["float32", "fixed"])
def test_toy_kind_round_trips_through_nir_exactly(toy, profile, tmp_path):
    import nir

    net, inputs = toy_file_net(toy)
    graph = export.to_nir(net)
    assert type(graph.nodes["a"]).__name__ == "IF" and type(graph.nodes["b"]).__name__ == "IF"
    assert type(graph.nodes["a_to_b"]).__name__ == "Affine"  # b's i_offset as the bias of its one input
    np.testing.assert_array_equal(graph.nodes["a_to_b"].bias, np.full(4, 0.125))
    nir.write(tmp_path / "toy.nir", graph)
    assert_same_toy_network(export.from_nir(tmp_path / "toy.nir"), net, toy, inputs, profile)


def test_a_toy_nir_file_read_as_foreign_becomes_lif_without_leak(toy):
    net, _ = toy_file_net(toy)
    loaded = export.from_nir(export.to_nir(net), use_metadata=False)
    b = loaded.population("b")  # a foreign IF node: the stock LIF codec's lif_no_delay with alpha_decay 1
    assert b.neuron_model == "lif_no_delay" and b.params["alpha_decay"] == 1.0
    w_scale = b.nir_w_scale  # IF with r = 1: threshold and bias times the weight scale
    np.testing.assert_allclose(b.param_array("i_offset", np.float64), np.full(4, 0.125 * w_scale), rtol=1e-12)
    np.testing.assert_allclose(b.param_array("threshold", np.float64),
                               net.population("b").param_array("threshold", np.float64) * w_scale, rtol=1e-12)


def test_a_kind_without_a_nir_codec_is_refused_by_name(toy):
    import dataclasses

    bare = kinds.register(dataclasses.replace(toy.KIND, name="if_bare", codecs={}))
    try:
        inp = snn.Population(2, "spike_list", name="in")
        pop = snn.Population(3, "if_bare", name="hidden")
        net = snn.Network("bare").add(inp, pop, snn.Projection(inp, pop, [[0, 0, 5, 0]]))
        with pytest.raises(ValueError, match=r"population 'hidden' \(kind 'if_bare'\): neuron kind 'if_bare' "
                                             r"declares no NIR codec"):
            export.to_nir(net)
    finally:
        kinds.unregister(bare.name)
    assert "lif" in kinds.names() and toy.NAME in kinds.blocks()


# --- registry consistency and replacement --------------------------------------------------------------


def _toy_variant(toy_kind, **changes):
    import dataclasses

    return dataclasses.replace(toy_kind.KIND, **changes)


def test_kinds_of_one_block_must_agree(toy):
    import dataclasses

    two = _toy_variant(toy, name="if_toy_two", channels=2)
    with pytest.raises(ValueError, match="shared with kind 'if_toy'.*must agree"):
        kinds.register(two)
    other = _toy_variant(toy, name="if_toy_other", param_classes={**toy.KIND.param_classes, "i_offset": "decay"})
    with pytest.raises(ValueError, match="must agree"):
        kinds.register(other)
    with pytest.raises(ValueError, match="'v_init' parameter of class 'value'"):
        dataclasses.replace(toy.KIND, name="x", param_classes={**toy.KIND.param_classes, "v_init": "decay"})
    with pytest.raises(ValueError, match="needs a weight_range"):
        dataclasses.replace(toy.KIND, name="x", weight_range=None)
    assert "if_toy_two" not in kinds.names() and "if_toy_other" not in kinds.names()


def test_a_compiled_program_keeps_its_steps_when_a_kind_is_replaced(toy):
    import dataclasses

    import jax

    inp = snn.Population(1, "spike_list", {0: [0, 1, 2]}, name="in")
    pop = snn.Population(1, toy.NAME, {"threshold": 1e9}, name="a", record=("v",))
    net = snn.Network("replace").add(inp, pop, snn.Projection(inp, pop, [[0, 0, 5, 0]]))
    old = hwmodel.compile_network(net)
    x = {"in": np.array([[[1], [1], [1], [0], [0]]], bool)}
    jitted = jax.jit(hwmodel.run)

    def run(prog, *_, **__):
        return jitted(prog, x)

    before = np.asarray(run(old)[1].voltages["a"])
    assert before.any()

    def double_step(p, s, a, b, num, settings):  # integrates twice the input
        return toy.if_step(p, s, num.add(a, a), b, num, settings)

    block = dataclasses.replace(toy.BLOCK, step=double_step)
    kinds.register(dataclasses.replace(toy.KIND, block=block), replace=True)
    assert kinds.block(toy.NAME) is block and kinds.blocks().count(toy.NAME) == 1
    np.testing.assert_array_equal(np.asarray(run(old)[1].voltages["a"]), before)
    new = np.asarray(run(hwmodel.compile_network(net))[1].voltages["a"])
    np.testing.assert_array_equal(new, 2 * before)
    kinds.unregister(toy.NAME)
    np.testing.assert_array_equal(np.asarray(run(old)[1].voltages["a"]), before)
    kinds.register(toy.KIND)  # the fixture unregisters it


def test_an_edited_unknown_model_is_a_reported_violation():
    net, _ = kind_net(0, "lif")
    net.population("a").neuron_model = "lif_typo"
    violations = export.check(net)
    assert [v.rule for v in violations] == ["neuron_model"]
    assert "population 'a': unknown neuron model 'lif_typo'" in violations[0].message
    from s2jax.qnet import parameter_error

    assert parameter_error(net.population("a")).startswith("population 'a': unknown neuron model 'lif_typo'")


def test_spec_numbers_for_stock_unknown_and_added_kinds(toy):
    import dataclasses

    with pytest.raises(ValueError, match="unknown neuron model 'nope'"):
        SPINNAKER2.weight_range("nope")
    no_delays = dataclasses.replace(SPINNAKER2, delay_models=())
    assert not no_delays.has_delays("lif") and SPINNAKER2.has_delays("lif")
    assert SPINNAKER2.weight_range(toy.NAME) == (-127, 127) and SPINNAKER2.atoms_per_core(toy.NAME) == 256
    assert SPINNAKER2.state_bytes(toy.NAME) == 20 and not SPINNAKER2.has_delays(toy.NAME)


def test_the_two_family_program_names_still_work():
    net, _ = kind_net(1, "lif")
    prog = hwmodel.compile_network(net)
    assert prog.lif_params is prog.params_of("lif") and prog.lif_v0 is prog.block_v0[0]
    assert prog.cuba_params.alpha.shape == (0,) and prog.cuba_v0.shape == (0,)
    assert prog.layout.n_lif == 10 and prog.layout.n_cuba == 0
