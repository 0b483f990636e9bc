"""The py-spinnaker2 bundle's format: its names and version, and the checks of what is read back.

:mod:`s2jax.export.pyspinnaker2` writes and reads bundles; this module says what a bundle must hold
(:func:`_check_meta` for ``network.json``, :func:`_check_arrays` for ``arrays.npz``,
:func:`_array` / :func:`_check_result_size` for ``results.npz``). Every check runs before anything
is allocated from the values it checks and raises :class:`s2jax.io.FileFormatError` naming the
file, the key, the value and the limit.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from s2jax import io as fileio
from s2jax import kinds, qnet

BUNDLE_FORMAT = "s2jax-pyspinnaker2-bundle"
BUNDLE_VERSION = 2  # 2: synapse counts per projection and in total, checked on load
NETWORK_FILE, ARRAYS_FILE, SCRIPT_FILE, RESULTS_FILE = (
    "network.json", "arrays.npz", "run_on_spinnaker2.py", "results.npz")

_INT32 = np.iinfo(np.int32)
_REEXPORT = "re-export it with s2jax.export.to_pyspinnaker2"
_TOP_KEYS = {"format", "format_version", "s2jax_version", "network", "timesteps", "eth_ip", "sys_tick_in_s",
             "populations", "projections", "synapses"}
_POP_KEYS = {"name", "size", "neuron_model", "record", "max_atoms_per_core"}
_NEURON_KEYS = _POP_KEYS | {"params", "array_params"}
_PROJ_KEYS = {"pre", "post", "kind", "synapses"}
_CONV_KEYS = _PROJ_KEYS | {"kernel_shape", "conv_params"}
#: Most bytes the recordings rebuilt from results.npz may take (spikes and voltages of one population).
MAX_RESULT_BYTES = fileio.MAX_FILE_BYTES
#: The ``neuron_model`` names py-spinnaker2 itself implements (a fact about py-spinnaker2, not about
#: s2jax's kinds): a bundle of any other registered kind is written and read back, but its script
#: refuses to run unless told that the py-spinnaker2 it runs with implements the model.
PYSPINNAKER2_MODELS = ("spike_list", "lif", "lif_no_delay", "lif_conv2d", "lif_curr_exp", "lif_curr_exp_no_delay")


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value, lo, hi) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_str_dict(value, values=None) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, str) and (values is None or v in values) for v in value.values())


class _Meta:
    """Checks of network.json's values, each error naming the file and the key."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, text: str) -> fileio.FileFormatError:
        return fileio.FileFormatError(f"{self.path}: malformed bundle: {text}; {_REEXPORT}")

    def get(self, obj: dict, key: str, where: str, ok, expected: str):
        if key not in obj:
            raise fileio.FileFormatError(
                f"{self.path}: malformed bundle (KeyError: {key!r}): {where} has no key {key!r}; {_REEXPORT}")
        value = obj[key]
        if not ok(value):
            raise self.error(f"{where}[{key!r}] must be {expected}, got {_show(value)}")
        return value

    def keys(self, obj: dict, allowed: set, where: str):
        extra = sorted(set(obj) - allowed)
        if extra:
            raise self.error(f"{where} has unexpected key(s) {extra}; known: {sorted(allowed)}")


def _check_meta(path: Path, meta: dict) -> set[str]:
    """Check every value of network.json (types, limits, names); returns the array names it implies."""
    m = _Meta(path)
    fmt = meta.get("format")
    if fmt != BUNDLE_FORMAT:
        raise fileio.FileFormatError(f"{path}: not a {BUNDLE_FORMAT} (format {_show(fmt)}); "
                                     f"a bundle folder written by s2jax.export.to_pyspinnaker2 was expected")
    version = meta.get("format_version")
    if version != BUNDLE_VERSION:
        raise fileio.FileFormatError(f"{path}: {BUNDLE_FORMAT} version {_show(version)}; this s2jax reads version "
                                     f"{BUNDLE_VERSION} only: {_REEXPORT}")
    m.keys(meta, _TOP_KEYS, "network.json")
    m.get(meta, "s2jax_version", "network.json", lambda v: isinstance(v, str), "a string")
    m.get(meta, "network", "network.json", lambda v: v is None or isinstance(v, str), "a string or null")
    m.get(meta, "timesteps", "network.json", lambda v: _is_int(v, 1, _INT32.max), f"an integer in [1, {_INT32.max}]")
    m.get(meta, "eth_ip", "network.json", lambda v: isinstance(v, str) and v, "a non-empty string")
    m.get(meta, "sys_tick_in_s", "network.json",
          lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
          "a positive number of seconds")
    pops = m.get(meta, "populations", "network.json", lambda v: isinstance(v, list), "a list")
    projs = m.get(meta, "projections", "network.json", lambda v: isinstance(v, list), "a list")
    expected = set()
    names = {}
    for i, p in enumerate(pops):
        where = f"populations[{i}]"
        if not isinstance(p, dict):
            raise m.error(f"{where} must be an object, got {_show(p)}")
        name = m.get(p, "name", where, lambda v: isinstance(v, str), "a string")
        if name in names:
            raise m.error(f"{where}: two populations are named {name!r}")
        names[name] = p
        m.get(p, "size", where, lambda v: _is_int(v, 1, qnet.MAX_POPULATION_SIZE),
              f"an integer in [1, {qnet.MAX_POPULATION_SIZE:,}] (qnet.MAX_POPULATION_SIZE)")
        model = m.get(p, "neuron_model", where, lambda v: isinstance(v, str), "a string")
        m.get(p, "record", where, _is_str_list, "a list of strings")
        m.get(p, "max_atoms_per_core", where, lambda v: v is None or _is_int(v, 1, qnet.MAX_POPULATION_SIZE),
              f"null or an integer in [1, {qnet.MAX_POPULATION_SIZE:,}]")
        if model not in kinds.names():
            raise m.error(f"{where}: unknown neuron model {model!r}; known models: {list(kinds.names())} "
                          f"(the registered kinds, s2jax.kinds)")
        if kinds.get(model).is_input:
            m.keys(p, _POP_KEYS, where)
            expected |= {f"pop{i}.spike_neurons", f"pop{i}.spike_times"}
        else:
            m.keys(p, _NEURON_KEYS, where)
            params = m.get(p, "params", where, _is_str_dict, "an object of string values")
            shapes = m.get(p, "array_params", where, lambda v: _is_str_dict(v, ("scalar", "per_neuron")),
                           'an object of "scalar" / "per_neuron"')
            both = sorted(set(params) & set(shapes))
            if both:
                raise m.error(f"{where}: parameter(s) {both} are in both params and array_params")
            expected |= {f"pop{i}.{key}" for key in shapes}
    total = 0
    for j, c in enumerate(projs):
        where = f"projections[{j}]"
        if not isinstance(c, dict):
            raise m.error(f"{where} must be an object, got {_show(c)}")
        for end in ("pre", "post"):
            name = m.get(c, end, where, lambda v: isinstance(v, str), "a string")
            if name not in names:
                raise m.error(f"{where}[{end!r}] names population {name!r}, which is not in populations")
        kind = m.get(c, "kind", where, lambda v: v in ("projection", "conv2d"), '"projection" or "conv2d"')
        synapses = m.get(c, "synapses", where, lambda v: _is_int(v, 0, qnet.MAX_SYNAPSES),
                         f"an integer in [0, {qnet.MAX_SYNAPSES:,}] (qnet.MAX_SYNAPSES, synapses per projection)")
        total += synapses
        if kind == "conv2d":
            m.keys(c, _CONV_KEYS, where)
            shape = m.get(c, "kernel_shape", where, lambda v: isinstance(v, list) and len(v) == 4 and all(
                _is_int(s, 1, qnet.MAX_POPULATION_SIZE) for s in v), "a list of 4 positive integers")
            if math.prod(shape) != synapses:
                raise m.error(f"{where}: kernel_shape {shape} holds {math.prod(shape):,} weights but synapses "
                              f"says {synapses:,}")
            m.get(c, "conv_params", where, lambda v: isinstance(v, dict) and all(
                _is_int(x, 0, qnet.MAX_POPULATION_SIZE) for x in v.values()), "an object of non-negative integers")
            expected.add(f"proj{j}.kernel")
        else:
            m.keys(c, _PROJ_KEYS, where)
            expected.add(f"proj{j}.connections")
    stated = m.get(meta, "synapses", "network.json", lambda v: _is_int(v, 0, 2**62), "a non-negative integer")
    if stated != total:
        raise m.error(f"'synapses' says {stated:,} synapses but the projections list {total:,}")
    return expected


def _header_check(path: Path, meta: dict):
    """``check_header(name, shape, dtype)`` for :func:`s2jax.io.load_npz`: refuses an array of
    arrays.npz whose header declares more elements than network.json (already checked) allows:
    more than ``size`` values per population parameter or spike neuron list, more than :data:`~s2jax.qnet.MAX_SPIKES` spike rows,
    more rows or weights than a projection's ``synapses``. Runs before the array is read, so a small
    compressed file declaring millions of rows costs nothing."""
    limits: dict[str, tuple[int, str]] = {}
    for i, p in enumerate(meta["populations"]):
        where = f"population {p['name']!r}"
        if kinds.get(p["neuron_model"]).is_input:
            limits[f"pop{i}.spike_neurons"] = (p["size"], f"the {p['size']:,} neurons of {where}")
            spikes = f"{qnet.MAX_SPIKES:,} spike rows (neuron, tick) of {where} (qnet.MAX_SPIKES)"
            limits[f"pop{i}.spike_times"] = (2 * qnet.MAX_SPIKES, spikes)
        else:
            for key in p["array_params"]:  # the exact shape (scalar or per neuron) is checked after reading
                limits[f"pop{i}.{key}"] = (p["size"], f"{p['size']:,} values of parameter {key!r} of {where}")
    for j, c in enumerate(meta["projections"]):
        where = f"projection {c['pre']!r} -> {c['post']!r}"
        if c["kind"] == "conv2d":
            limits[f"proj{j}.kernel"] = (c["synapses"], f"the {c['synapses']:,} kernel weights of {where}")
        else:
            rows = f"{c['synapses']:,} rows [pre, post, weight, delay] of {where} ({NETWORK_FILE}'s synapses)"
            limits[f"proj{j}.connections"] = (4 * c["synapses"], rows)

    def check(key: str, shape: tuple, dtype) -> None:
        if key not in limits:
            return
        limit, what = limits[key]
        count = math.prod(shape)
        rows = shape[0] if len(shape) == 2 and key.endswith(("spike_times", "connections")) else None
        if count > limit:
            stated = f"{rows:,} rows, " if rows is not None else ""
            raise fileio.FileFormatError(f"{path}: array {key!r} declares shape {shape} ({stated}{count:,} values), "
                                         f"more than the {what} allow; refused before reading it")

    return check


def _array(path: Path, arrays: dict, key: str, kinds: str, what: str) -> np.ndarray:
    """``arrays[key]`` when its dtype kind is one of ``kinds`` (``"iu"`` integer, ``"f"`` float)."""
    if key not in arrays:
        raise fileio.FileFormatError(f"{path}: array {key!r} is missing ({NETWORK_FILE} needs it)")
    arr = arrays[key]
    if arr.dtype.kind not in kinds:
        raise fileio.FileFormatError(f"{path}: array {key!r} must hold {what}, got dtype {arr.dtype} "
                                     f"(e.g. {_show(arr.flat[0]) if arr.size else 'empty'})")
    return arr


def _check_arrays(folder: Path, meta: dict, arrays: dict[str, np.ndarray]):
    """Check the dtypes, shapes and synapse counts of arrays.npz against network.json."""
    path = folder / ARRAYS_FILE
    for i, p in enumerate(meta["populations"]):
        where = f"population {p['name']!r}"
        if kinds.get(p["neuron_model"]).is_input:
            neurons = _array(path, arrays, f"pop{i}.spike_neurons", "iu", "integer neuron indices")
            times = _array(path, arrays, f"pop{i}.spike_times", "iu", "integer (neuron, tick) rows")
            if neurons.ndim != 1 or len(np.unique(neurons)) != neurons.size:
                raise fileio.FileFormatError(f"{path}: pop{i}.spike_neurons of {where} must list distinct neurons "
                                             f"in one dimension, got shape {neurons.shape}")
            if times.ndim != 2 or times.shape[1] != 2:
                raise fileio.FileFormatError(f"{path}: pop{i}.spike_times of {where} must have shape (S, 2), "
                                             f"got {times.shape}")
            unknown = ~np.isin(times[:, 0], neurons)
            if np.any(unknown):
                raise fileio.FileFormatError(f"{path}: pop{i}.spike_times of {where} has a spike of neuron "
                                             f"{times[unknown][0, 0]}, which pop{i}.spike_neurons does not list")
            continue
        for key, kind in p["array_params"].items():
            arr = _array(path, arrays, f"pop{i}.{key}", "iuf", "integer or float numbers")
            shape = () if kind == "scalar" else (p["size"],)
            if arr.shape != shape:
                raise fileio.FileFormatError(f"{path}: pop{i}.{key} of {where} is {kind} in {NETWORK_FILE} and "
                                             f"must have shape {shape}, got {arr.shape}")
    for j, c in enumerate(meta["projections"]):
        where = f"projection {c['pre']!r} -> {c['post']!r}"
        if c["kind"] == "conv2d":
            arr = _array(path, arrays, f"proj{j}.kernel", "iu", "integer weights")
            if list(arr.shape) != c["kernel_shape"]:
                raise fileio.FileFormatError(f"{path}: proj{j}.kernel of {where} has shape {arr.shape}, "
                                             f"{NETWORK_FILE} says {tuple(c['kernel_shape'])}")
        else:
            arr = _array(path, arrays, f"proj{j}.connections", "iu", "integer [pre, post, weight, delay] rows")
            if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] != c["synapses"]:
                raise fileio.FileFormatError(f"{path}: proj{j}.connections of {where} has shape {arr.shape}, "
                                             f"{NETWORK_FILE} says {c['synapses']:,} synapses: ({c['synapses']}, 4)")


def _check_params(path: Path, meta: dict):
    """Each neuron population lists exactly the parameters its kind declares (``kind.defaults``):
    reset modes (class "reset") as strings in ``params``, every other class as numbers in
    ``array_params``. A missing parameter is an error, not a default: the script hands py-spinnaker2
    only what the bundle lists, and py-spinnaker2's defaults need not be s2jax's."""
    m = _Meta(path)
    for i, p in enumerate(meta["populations"]):
        kind = kinds.get(p["neuron_model"])
        if kind.is_input:
            continue
        where = f"populations[{i}] ({p['name']!r}, model {kind.name!r})"
        declared = set(kind.defaults)
        unknown = sorted((set(p["params"]) | set(p["array_params"])) - declared)
        missing = [k for k in kind.defaults if k not in p["params"] and k not in p["array_params"]]
        if unknown or missing:
            problems = [f"{what} parameter(s) {keys}" for what, keys in (("unknown", unknown), ("missing", missing))
                        if keys]
            raise m.error(f"{where}: {', '.join(problems)}; the kind declares {list(kind.defaults)}")
        for key in p["params"]:
            if kind.param_classes[key] != "reset":
                raise m.error(f"{where}: parameter {key!r} (class {kind.param_classes[key]!r}) is a number and "
                              f"belongs in array_params, got the string {_show(p['params'][key])}")
        for key in p["array_params"]:
            if kind.param_classes[key] == "reset":
                raise m.error(f"{where}: parameter {key!r} is a reset mode and belongs in params as a string, "
                              f"not in array_params")


def _check_result_size(path: Path, name: str, what: str, ticks: int, size: int, itemsize: int):
    need = ticks * size * itemsize
    if need > MAX_RESULT_BYTES:
        raise fileio.FileFormatError(f"{path}: the {what} of population {name!r} ({ticks:,} ticks x {size:,} neurons) "
                                     f"would take {need:,} bytes, over the limit of {MAX_RESULT_BYTES:,} bytes")
