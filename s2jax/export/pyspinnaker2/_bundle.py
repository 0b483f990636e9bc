"""py-spinnaker2 bundles, writing and reading: :func:`to_pyspinnaker2`, :func:`load_pyspinnaker2`,
:func:`load_results` and :func:`compare` (the bundle's layout is in :mod:`s2jax.export.pyspinnaker2`;
what it must hold is checked by ``_format``)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from s2jax import io as fileio
from s2jax import kinds, qnet
from s2jax.kinds.codecs import refuse_layers
from s2jax.export.pyspinnaker2._format import (_INT32, _REEXPORT, ARRAYS_FILE, BUNDLE_FORMAT, BUNDLE_VERSION,
                                               NETWORK_FILE, PYSPINNAKER2_MODELS, RESULTS_FILE, SCRIPT_FILE, _array,
                                               _check_arrays, _check_meta, _check_params, _check_result_size,
                                               _header_check, _show)
from s2jax.export.pyspinnaker2._script import _custom_models, _script
from s2jax.hwmodel.program import compile_network
from s2jax.hwmodel.simulator import run, spike_list_inputs, to_volts
from s2jax.spec import SPINNAKER2, ChipSpec

_INT64 = np.iinfo(np.int64)


class NonStockModelWarning(UserWarning):
    """:func:`to_pyspinnaker2` wrote a bundle with a neuron model stock py-spinnaker2 does not
    implement (not in :data:`PYSPINNAKER2_MODELS`): the bundle is complete and loads back, but its
    script runs only with ``--allow-custom-models``."""


# --- writing ------------------------------------------------------------------------------------


def _number_array(value, cls: str, where: str) -> np.ndarray:
    """A parameter as stored: int64 for a "ticks" parameter or one given as integers, float64 otherwise."""
    arr = np.asarray(value)
    if cls == "ticks" and arr.dtype.kind == "f":  # qnet checked the values are whole ticks in [0, 2^30]
        return arr.astype(np.int64)
    if arr.dtype.kind in "biu":
        if arr.size and (arr.min() < _INT64.min or arr.max() > _INT64.max):
            raise ValueError(f"{where}: integer value outside int64")
        return arr.astype(np.int64)
    return arr.astype(np.float64)


def _int32(values, where: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.int64)
    if arr.size and (arr.min() < _INT32.min or arr.max() > _INT32.max):
        raise ValueError(f"{where}: value outside int32")
    return arr.astype(np.int32)


def _describe(net: qnet.Network, timesteps: int, eth_ip: str, sys_tick_in_s: float):
    """``(network.json dict, arrays)`` of a validated network."""
    import s2jax  # at call time: s2jax/__init__ may import this module before defining __version__

    net.validate()
    if net.name is not None and not isinstance(net.name, str):
        raise ValueError(f"the network's name must be a string or None, got {net.name!r}")
    arrays: dict[str, np.ndarray] = {}
    pops = []
    for i, p in enumerate(net.populations):
        if not isinstance(p.name, str):
            raise ValueError(f"population {i} of network {net.name!r}: the name must be a string, got {p.name!r}")
        entry = {"name": p.name, "size": p.size, "neuron_model": p.neuron_model, "record": list(p.record),
                 "max_atoms_per_core": p.max_atoms_per_core}
        where = f"population {p.name!r}"
        kind = kinds.get(p.neuron_model)
        if kind.is_input:
            neurons = list(p.params)
            pairs = [(n, t) for n in neurons for t in p.params[n]]
            arrays[f"pop{i}.spike_neurons"] = _int32(neurons, f"{where}: spike_list neuron")
            arrays[f"pop{i}.spike_times"] = _int32(pairs, f"{where}: spike tick").reshape(-1, 2)
        else:  # every parameter the kind declares, in its order: reset modes as strings, the rest in the npz
            classes = kind.param_classes
            entry["params"] = {k: p.params[k] for k in kind.defaults if classes[k] == "reset"}
            entry["array_params"] = {}
            for key in kind.defaults:
                if classes[key] == "reset":
                    continue
                arr = _number_array(p.params[key], classes[key], f"{where}: parameter {key!r}")
                arrays[f"pop{i}.{key}"] = arr
                entry["array_params"][key] = "scalar" if arr.ndim == 0 else "per_neuron"
        pops.append(entry)
    projs = []
    for j, proj in enumerate(net.projections):
        entry = {"pre": proj.pre.name, "post": proj.post.name}
        if isinstance(proj, qnet.Conv2DProjection):
            w = proj.weights
            fits = w.size == 0 or (w.min() >= -128 and w.max() <= 127)
            arrays[f"proj{j}.kernel"] = w.astype(np.int8 if fits else np.int32)
            entry.update(kind="conv2d", kernel_shape=list(w.shape), conv_params=dict(proj.conv_params),
                         synapses=int(w.size))
        else:
            arrays[f"proj{j}.connections"] = proj.connections.astype(np.int32)
            entry.update(kind="projection", synapses=len(proj.weights))
        projs.append(entry)
    meta = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "s2jax_version": s2jax.__version__,
            "network": net.name, "timesteps": timesteps, "eth_ip": eth_ip, "sys_tick_in_s": sys_tick_in_s,
            "populations": pops, "projections": projs, "synapses": sum(p["synapses"] for p in projs)}
    return meta, arrays


def _savez_compressed(path, arrays: dict[str, np.ndarray]):
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _replace_folder(tmp: Path, target: Path):
    """Move the finished ``tmp`` to ``target``; an existing ``target`` is swapped out, then deleted."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old)


def to_pyspinnaker2(net: qnet.Network, folder, *, timesteps: int, eth_ip: str = "192.168.1.17",
                    sys_tick_in_s: float = 1e-3, overwrite: bool = False) -> Path:
    """Write ``net`` as a py-spinnaker2 bundle (see :mod:`s2jax.export.pyspinnaker2`) into ``folder``.

    ``timesteps``, ``eth_ip`` and ``sys_tick_in_s`` are the script's defaults (``--timesteps``,
    ``--eth-ip``, ``--sys-tick-in-s`` override them). Every registered neuron kind is written; a
    model stock py-spinnaker2 does not implement (not in :data:`PYSPINNAKER2_MODELS`) raises a
    :class:`NonStockModelWarning` and makes the script refuse to run without ``--allow-custom-models``. A non-empty ``folder`` is refused unless
    ``overwrite=True``. The bundle is built in a hidden folder next to ``folder`` and renamed into
    place at the end: on any error nothing half-written remains and an existing bundle is kept.
    Returns the bundle's path.
    """
    refuse_layers(net, "a py-spinnaker2 bundle")
    if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, got {timesteps!r}")
    if not isinstance(eth_ip, str) or not eth_ip:
        raise ValueError(f"eth_ip must be a non-empty string, got {eth_ip!r}")
    if isinstance(sys_tick_in_s, bool) or not np.isfinite(sys_tick_in_s) or not sys_tick_in_s > 0:
        raise ValueError(f"sys_tick_in_s must be a positive number of seconds, got {sys_tick_in_s!r}")
    target = Path(folder).resolve()
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{target} is not empty; pass overwrite=True to replace it")
    meta, arrays = _describe(net, int(timesteps), eth_ip, float(sys_tick_in_s))
    custom = _custom_models(meta)
    if custom:
        pops = ", ".join(f"{name!r} ({model})" for name, model in custom.items())
        warnings.warn(f"network {net.name!r}: population(s) {pops} use neuron model(s) that stock py-spinnaker2 "
                      f"does not implement (it implements {list(PYSPINNAKER2_MODELS)}); the bundle is complete "
                      f"and loads back with load_pyspinnaker2, but {SCRIPT_FILE} runs only with "
                      f"--allow-custom-models, on a py-spinnaker2 that implements them", NonStockModelWarning,
                      stacklevel=2)
    network_json = json.dumps(meta, indent=2, allow_nan=False) + "\n"
    script = _script(meta, arrays)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        fileio.atomic_write_text(tmp / NETWORK_FILE, network_json)  # each file synced to disk ...
        fileio.atomic_write(tmp / ARRAYS_FILE, lambda path: _savez_compressed(path, arrays))
        fileio.atomic_write_text(tmp / SCRIPT_FILE, script)
        _replace_folder(tmp, target)  # ... before the folder is renamed into place
        fileio.fsync_folder(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# --- reading ------------------------------------------------------------------------------------


def _read_bundle(folder) -> tuple[dict, dict[str, np.ndarray]]:
    """``(network.json, arrays)`` of a bundle folder, both checked (see :mod:`s2jax.export.pyspinnaker2`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise fileio.FileFormatError(f"{folder}: not a folder; a py-spinnaker2 bundle folder (with {NETWORK_FILE} "
                                     f"and {ARRAYS_FILE}, written by s2jax.export.to_pyspinnaker2) was expected")
    meta = fileio.load_json(folder / NETWORK_FILE, what=f"{NETWORK_FILE} of a py-spinnaker2 bundle folder")
    expected = _check_meta(folder / NETWORK_FILE, meta)
    arrays = fileio.load_npz(folder / ARRAYS_FILE, what=f"{ARRAYS_FILE} of a py-spinnaker2 bundle", keys=expected,
                             check_header=_header_check(folder / ARRAYS_FILE, meta))
    _check_arrays(folder, meta, arrays)
    _check_params(folder / NETWORK_FILE, meta)
    return meta, arrays


def load_pyspinnaker2(folder, *, spec: ChipSpec = SPINNAKER2) -> qnet.Network:
    """Rebuild the :class:`~s2jax.qnet.Network` of a bundle (the script is not run).

    Scalar parameters come back as Python numbers, per-neuron ones as float64 / int64 arrays;
    projections are validated against ``spec`` (the bundle does not record a non-default spec).
    Every file is checked first (:mod:`s2jax.export.pyspinnaker2`); a malformed bundle or a network ``qnet``
    refuses raises :class:`~s2jax.io.FileFormatError` naming the file.
    """
    meta, arrays = _read_bundle(folder)
    where = Path(folder) / NETWORK_FILE
    try:
        return _network_from_bundle(meta, arrays, spec)
    except fileio.FileFormatError:
        raise
    except ValueError as err:
        raise fileio.FileFormatError(f"{where}: the bundle's network is invalid: {err}") from None
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        raise fileio.FileFormatError(f"{where}: malformed bundle ({type(err).__name__}: {err}); {_REEXPORT}") from None


def _spike_dict(neurons: np.ndarray, times: np.ndarray) -> dict[int, np.ndarray]:
    """``{neuron: ticks}`` of a spike_list population from its (checked) arrays, grouped with one
    sort rather than a Python loop per spike; every listed neuron is a key, in the listed order."""
    times = times.astype(np.int64)
    order = np.argsort(times[:, 0], kind="stable")
    sorted_neurons, ticks = times[order, 0], times[order, 1]
    keys, starts = np.unique(sorted_neurons, return_index=True)
    groups = dict(zip(keys.tolist(), np.split(ticks, starts[1:])))
    empty = np.zeros(0, np.int64)
    return {n: groups.get(n, empty) for n in neurons.tolist()}


def _network_from_bundle(meta, arrays, spec):
    pops = []
    for i, p in enumerate(meta["populations"]):
        if kinds.get(p["neuron_model"]).is_input:
            params = _spike_dict(arrays[f"pop{i}.spike_neurons"], arrays[f"pop{i}.spike_times"])
        else:
            params = dict(p["params"])
            for key in p["array_params"]:
                arr = arrays[f"pop{i}.{key}"]
                params[key] = arr.item() if arr.ndim == 0 else arr
        pop = qnet.Population(p["size"], p["neuron_model"], params, name=p["name"], record=p["record"])
        if p["max_atoms_per_core"] is not None:
            pop.set_max_atoms_per_core(p["max_atoms_per_core"])
        pops.append(pop)
    by_name = {p.name: p for p in pops}
    projs = []
    for j, c in enumerate(meta["projections"]):
        pre, post = by_name[c["pre"]], by_name[c["post"]]
        if c["kind"] == "conv2d":
            projs.append(qnet.Conv2DProjection(pre, post, arrays[f"proj{j}.kernel"], c["conv_params"], spec=spec))
        else:
            projs.append(qnet.Projection(pre, post, arrays[f"proj{j}.connections"], spec=spec))
    return qnet.Network(meta["network"]).add(*pops, *projs)


def _read_results(folder, net: qnet.Network):
    """``(timesteps, {name: {"spikes", "voltages"}})`` of the chip run saved in results.npz.

    Checks dtypes and shapes of every array used, and that the rebuilt recordings (``timesteps x
    size`` per population) fit :data:`~s2jax.export.pyspinnaker2.MAX_RESULT_BYTES` (2 GiB), before allocating them."""
    folder = Path(folder)
    meta, _ = _read_bundle(folder)
    path = folder / RESULTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run {folder / SCRIPT_FILE} on the board's host first")
    res = fileio.load_npz(path, what=f"{RESULTS_FILE} of a py-spinnaker2 bundle")
    steps = _array(path, res, "timesteps", "iu", "an integer")
    if steps.shape != () or not 1 <= int(steps) <= _INT32.max:
        raise fileio.FileFormatError(f"{path}: 'timesteps' must be one integer in [1, {_INT32.max}], "
                                     f"got {_show(steps.tolist())}")
    timesteps = int(steps)
    out = {}
    for i, p in enumerate(meta["populations"]):
        if not p["record"]:
            continue
        size = net.population(p["name"]).size
        if size != p["size"]:
            raise ValueError(f"population {p['name']!r} has {size} neurons in net but {p['size']} in the bundle")
        rec = {}
        if "spikes" in p["record"]:
            pairs = _array(path, res, f"pop{i}.spikes", "iu", "integer (neuron, tick) rows")
            if pairs.size == 0:
                pairs = pairs.reshape(0, 2)
            if pairs.ndim != 2 or pairs.shape[1] != 2:
                raise fileio.FileFormatError(f"{path}: pop{i}.spikes must have shape (S, 2), got {pairs.shape}")
            _check_result_size(path, p["name"], "spikes", timesteps, size, 1)
            bad = (pairs[:, 0] < 0) | (pairs[:, 0] >= size) | (pairs[:, 1] < 0) | (pairs[:, 1] >= timesteps)
            if np.any(bad):
                n, t = pairs[bad][0]
                raise ValueError(f"population {p['name']!r}: the chip reported a spike of neuron {n} at tick {t}, "
                                 f"outside {size} neurons x {timesteps} ticks")
            spikes = np.zeros((timesteps, size), bool)
            spikes[pairs[:, 1], pairs[:, 0]] = True
            rec["spikes"] = spikes
        if "v" in p["record"]:
            neurons = _array(path, res, f"pop{i}.v_neurons", "iu", "integer neuron indices")
            values = _array(path, res, f"pop{i}.v", "iuf", "numbers")
            if neurons.ndim != 1 or values.ndim != 2 or values.shape[0] != neurons.size:
                raise fileio.FileFormatError(f"{path}: pop{i}.v must have one row per neuron of pop{i}.v_neurons, "
                                             f"got shapes {values.shape} and {neurons.shape}")
            if neurons.size and (neurons.min() < 0 or neurons.max() >= size):
                raise ValueError(f"population {p['name']!r}: voltages of neurons outside [0, {size - 1}]")
            _check_result_size(path, p["name"], "voltages", values.shape[1], size, 4)
            volts = np.full((values.shape[1], size), np.nan, np.float32)
            volts[:, neurons] = values.T.astype(np.float32)
            rec["voltages"] = volts
        out[p["name"]] = rec
    return timesteps, out


def load_results(folder, net: qnet.Network) -> dict[str, dict[str, np.ndarray]]:
    """The chip's recordings from ``results.npz``, in the layout of the chip model's ``Trace``.

    Returns ``{name: {"spikes": (T, n) bool, "voltages": (T, n) float32}}`` for every population
    that records something (only the recorded keys): exactly ``trace.spikes[name][0]`` and
    ``trace.voltages[name][0]`` of :func:`s2jax.hwmodel.run` in the float32 profile (``Trace`` is
    ``(B, T, n)``; this is batch element 0; a fixed-profile trace holds raw s16.15, compare with
    ``to_volts``), with ``T`` the ticks the script ran. Voltages are the values after reset as the
    chip reported them, cast to float32; a neuron or tick the chip did not report is NaN (if
    the chip returned L != T voltages per neuron, the voltage array has L rows). ``net`` gives the
    population sizes and must have the bundle's population names.
    """
    return _read_results(folder, net)[1]


class Difference(NamedTuple):
    """Where the chip first departs from the chip model in one population."""

    tick: int
    neuron: int
    quantity: str  # "voltages" or "spikes"
    chip: float  # the chip's value (a spike as 1.0 / 0.0; NaN where not reported)
    model: float  # the chip model's value


def _first_difference(chip: np.ndarray, model: np.ndarray, quantity: str) -> Difference | None:
    ticks = min(chip.shape[0], model.shape[0])
    a, b = chip[:ticks], model[:ticks]
    differ = a != b
    if quantity == "voltages":
        differ &= ~(np.isnan(a) & np.isnan(b))
    hits = np.argwhere(differ)
    if hits.size:
        t, n = (int(x) for x in hits[0])
        return Difference(t, n, quantity, float(a[t, n]), float(b[t, n]))
    if chip.shape[0] != model.shape[0]:
        value = lambda x: float(x[ticks, 0]) if x.shape[0] > ticks else float("nan")  # noqa: E731
        return Difference(ticks, 0, quantity, value(chip), value(model))
    return None


def compare(folder, net: qnet.Network | None = None, profile: str = "float32", *,
            spec: ChipSpec = SPINNAKER2) -> dict[str, Difference | None]:
    """Run the chip model on the bundled network and compare it with the chip's ``results.npz``.

    ``net`` defaults to :func:`load_pyspinnaker2` of the bundle. The model runs the ticks the
    script ran, with the spike_list inputs of ``net``. Returns ``{name: None}`` where every recorded
    spike and voltage is identical (float32 bits), else the earliest :class:`Difference` (by tick,
    voltages before spikes at the same tick, then by neuron).
    """
    if net is None:
        net = load_pyspinnaker2(folder, spec=spec)
    timesteps, chip = _read_results(folder, net)
    prog = compile_network(net, profile, spec)
    inputs = spike_list_inputs(net, timesteps)
    _, trace = jax.jit(run, static_argnames="timesteps")(prog, inputs or None, timesteps=timesteps)
    out = {}
    for name, rec in chip.items():
        found = []
        if "voltages" in rec:
            model_v = to_volts(trace.voltages[name][0], prog.layout).astype(np.float32)
            found.append(_first_difference(rec["voltages"], model_v, "voltages"))
        if "spikes" in rec:
            found.append(_first_difference(rec["spikes"], np.asarray(trace.spikes[name][0]), "spikes"))
        found = [d for d in found if d is not None]
        out[name] = min(found, key=lambda d: (d.tick, d.quantity != "voltages", d.neuron)) if found else None
    return out
