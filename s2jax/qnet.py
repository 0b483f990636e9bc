"""The integer hand-off format, with py-spinnaker2's front door.

An existing py-spinnaker2 script runs on the chip model by changing its imports::

    from s2jax import qnet as snn
    from s2jax import hwmodel as hardware

    stim = snn.Population(size=2, neuron_model="spike_list", params={0: [1, 4], 1: [2]}, name="in")
    pop = snn.Population(size=3, neuron_model="lif",
                         params={"threshold": 10.0, "alpha_decay": 0.9, "reset": "reset_by_subtraction"},
                         name="lif", record=["spikes", "v"])
    proj = snn.Projection(pre=stim, post=pop, connections=[[0, 0, 12, 0], [1, 2, -3, 5]])
    net = snn.Network("demo")
    net.add(stim, pop, proj)
    hardware.SpiNNaker2Chip().run(net, 20)
    pop.get_spikes(), pop.get_voltages()

Everything here is data plus validation: a bad weight, delay, index, name or shape raises a
``ValueError`` that names the population, the value and the limit, at construction time.
"""

from __future__ import annotations

import numbers

import numpy as np

from s2jax.fixedpoint import round_host
from s2jax.spec import (
    ALL_MODELS,
    CUBA_MODELS,
    INPUT_MODELS,
    NEURON_MODELS,
    SPINNAKER2,
    ChipSpec,
    Rounding,
)

__all__ = ["Population", "Projection", "Conv2DProjection", "Network", "LIF_DEFAULTS", "CUBA_DEFAULTS",
           "MAX_POPULATION_SIZE", "MAX_TICK", "DECAY_PARAMS", "DECAY_RANGE", "decay_violations",
           "parameter_error", "population_size_error"]

RESET_MODES = ("reset_by_subtraction", "reset_to_v_reset")

LIF_DEFAULTS = {
    "threshold": 1.0,
    "alpha_decay": 1.0,
    "i_offset": 0.0,
    "v_init": 0.0,
    "v_reset": 0.0,
    "reset": "reset_by_subtraction",
}
CUBA_DEFAULTS = {**LIF_DEFAULTS, "exc_decay": 0.0, "inh_decay": 0.0, "t_refrac": 0}

#: What a population can record: spikes, voltages, and "time_done" (per tick and per PE, the
#: processing time the cost model estimates; :meth:`Population.get_time_done_times`).
RECORDABLE = ("spikes", "v", "time_done")

#: Largest population accepted anywhere (constructor, bundle, image, NIR import): 2^24 neurons,
#: more than a 48-chip board holds (48 x 152 PEs x at most 1024 atoms per PE = 7.5 M). Sizes read
#: from files are checked against it before anything is allocated.
MAX_POPULATION_SIZE = 2**24

#: Largest spike tick of a ``spike_list`` source: the int32 range the bundle and image formats store.
MAX_TICK = 2**31 - 1

#: The decay factors of the neuron models and the range the chip gives them meaning in: one factor
#: per tick in [0, 1] (the fixed-point profile stores them as unsigned 0.16). The design rules
#: (``s2jax.export.rules``) and the fixed-point compiler both check it with :func:`decay_violations`.
DECAY_PARAMS = ("alpha_decay", "exc_decay", "inh_decay")
DECAY_RANGE = (0.0, 1.0)

CONV_KEYS = (
    "in_height",
    "in_width",
    "stride_x",
    "stride_y",
    "pool_x",
    "pool_y",
    "pad_top",
    "pad_bottom",
    "pad_left",
    "pad_right",
)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _is_real(x) -> bool:
    """A real number that is not a bool (Python or NumPy int / float, Fraction): not str, bytes,
    None, complex or an array."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _describe(value) -> str:
    """``type value`` for an error message, the value's repr cut to 60 characters."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _check_name(name, what: str):
    """Population and network names are a string or None (lists, dicts, numbers are refused)."""
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{what} name must be a string or None, got {_describe(name)}")
    return name


def _real_array(value, what: str) -> np.ndarray:
    """``value`` (a number, a list / tuple / array of numbers) as a float64 array.

    Refused with a ``ValueError`` naming ``what`` and the value: strings and bytes (``"1.0"`` is
    not silently converted), bools, None, complex numbers, ragged lists and arrays of any other dtype.
    """
    if _is_real(value):
        arr = np.asarray(value)
    elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype.kind == "O"):
        try:
            obj = np.asarray(value, dtype=object)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{what} must be numbers, got a malformed sequence ({e})") from None
        bad = next((v for v in obj.reshape(-1) if not _is_real(v)), _real_array)
        if bad is not _real_array:
            raise ValueError(f"{what} must be numbers, got {_describe(bad)}")
        arr = obj
    elif isinstance(value, (str, bytes)) or value is None or not hasattr(value, "__array__"):
        raise ValueError(f"{what} must be a number or an array of numbers, got {_describe(value)}")
    else:
        arr = np.asarray(value)  # NumPy / JAX arrays
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"{what} must be numbers, got an array of dtype {arr.dtype}")
    try:
        return arr.astype(np.float64)
    except (OverflowError, ValueError, TypeError) as e:
        raise ValueError(f"{what} must be numbers within the float64 range, got {_describe(value)} ({e})") from None


def population_size_error(pop: "Population") -> str | None:
    """Why ``pop.size`` is not a valid size (an integer in [1, :data:`MAX_POPULATION_SIZE`]), or
    None. The constructor refuses such sizes; this catches a size edited afterwards, for the mapper,
    the compiler and the design rules to check before they allocate per neuron."""
    size = pop.size
    if not _is_int(size) or size < 1:
        return f"population {pop.name!r}: size must be a positive integer, got {_describe(size)}"
    if size > MAX_POPULATION_SIZE:
        return (f"population {pop.name!r}: size {size:,} exceeds the limit of {MAX_POPULATION_SIZE:,} neurons "
                f"per population (MAX_POPULATION_SIZE)")
    return None


def parameter_error(pop: "Population") -> str | None:
    """The constructor's check of ``pop.params`` (types, shapes, finiteness; spike ticks), run
    again on parameters edited after construction: the message of the first problem, or None
    (also None for an invalid size, which :func:`population_size_error` reports)."""
    if population_size_error(pop):
        return None
    try:
        if pop.neuron_model in INPUT_MODELS:
            pop._check_spike_list(pop.params)
        else:
            pop._check_neuron_params(pop.params)
    except ValueError as e:
        return str(e)
    return None


def decay_violations(pop: "Population") -> list[tuple[str, float, str]]:
    """``(parameter, value, message)`` for each decay parameter of ``pop`` (:data:`DECAY_PARAMS`)
    that has a value outside :data:`DECAY_RANGE` (NaN included), checked on the float32 values the
    chip stores. The one rule for decays: the design rules report these, the fixed-point profile
    refuses them. A parameter that is not numbers at all (an array edited after construction) is
    reported too."""
    lo, hi = DECAY_RANGE
    out = []
    for key in DECAY_PARAMS:
        if key not in pop.params:
            continue
        where = f"population {pop.name!r}: {key}"
        try:
            with np.errstate(over="ignore"):
                a = _real_array(pop.params[key], where).astype(np.float32).reshape(-1)
        except ValueError as e:
            out.append((key, pop.params[key], str(e)))
            continue
        if a.size != 1 and a.size != pop.size:
            out.append((key, None, f"{where} must be a scalar or have {pop.size} values, got {a.size}"))
            continue
        bad = ~((a >= lo) & (a <= hi))
        if np.any(bad):
            i = int(np.argmax(bad))
            value = float(a[i])
            neuron = f" (neuron {i})" if a.size > 1 else ""
            out.append((key, value, f"{where} = {value} outside [{lo:g}, {hi:g}]{neuron}, the range of the "
                                    f"chip's decay factors (one factor per tick)"))
    return out


class Population:
    """A group of neurons of one model (py-spinnaker2's ``snn.Population``).

    ``params`` for ``spike_list`` is ``{neuron_index: [tick, ...]}``; for the neuron models it is a
    dict of the model's parameters (scalars or one value per neuron), missing ones taking
    :data:`LIF_DEFAULTS` / :data:`CUBA_DEFAULTS`. After a :class:`~s2jax.hwmodel.Simulator` run,
    :meth:`get_spikes` and :meth:`get_voltages` return what was recorded.
    """

    def __init__(self, size, neuron_model, params=None, name=None, record=("spikes",)):
        _check_name(name, "population")
        if not _is_int(size) or size < 1:
            raise ValueError(f"population {name!r}: size must be a positive integer, got {_describe(size)}")
        if size > MAX_POPULATION_SIZE:
            raise ValueError(f"population {name!r}: size {size:,} exceeds the limit of {MAX_POPULATION_SIZE:,} "
                             f"neurons per population")
        if not isinstance(neuron_model, str) or neuron_model not in ALL_MODELS:
            raise ValueError(
                f"population {name!r}: unknown neuron model {neuron_model!r}; known models: {list(ALL_MODELS)}"
            )
        self.size = int(size)
        self.neuron_model = neuron_model
        self.name = name
        if isinstance(record, str):
            record = [record]
        if record is not None and not isinstance(record, (list, tuple)):
            raise ValueError(f"population {name!r}: record must be a list of names such as ['spikes', 'v'], "
                             f"got {_describe(record)}")
        record = list(record or [])
        for r in record:
            if not isinstance(r, str) or r not in RECORDABLE:
                raise ValueError(f"population {name!r}: cannot record {r!r}; recordable: {list(RECORDABLE)}")
        if neuron_model in INPUT_MODELS and "v" in record:
            raise ValueError(f"population {name!r}: a spike_list population has no voltage to record")
        self.record = record
        self.max_atoms_per_core = None
        if neuron_model in INPUT_MODELS:
            self.params = self._check_spike_list({} if params is None else params)
        else:
            self.params = self._check_neuron_params({} if params is None else params)
        self._spikes = None
        self._voltages = None

    def __repr__(self):
        return f"Population(size={self.size}, neuron_model={self.neuron_model!r}, name={self.name!r})"

    # --- validation -----------------------------------------------------------------------------

    def _check_spike_list(self, params):
        if not isinstance(params, dict):
            raise ValueError(f"population {self.name!r}: spike_list params must be a dict, got {type(params)}")
        out = {}
        for idx, ticks in params.items():
            if not _is_int(idx) or not 0 <= idx < self.size:
                raise ValueError(
                    f"population {self.name!r}: spike_list neuron index {idx!r} outside [0, {self.size - 1}]"
                )
            where = f"population {self.name!r}: spike ticks of neuron {idx}"
            if isinstance(ticks, np.ndarray) and ticks.ndim == 1:
                ticks = ticks.tolist()
            if not isinstance(ticks, (list, tuple, range)):
                raise ValueError(f"{where} must be a list of integer ticks, got {_describe(ticks)}")
            clean = set()
            for t in ticks:
                if not _is_real(t) or (not _is_int(t) and not float(t).is_integer()) or not 0 <= t <= MAX_TICK:
                    raise ValueError(f"{where} must be non-negative integers (at most {MAX_TICK}), got "
                                     f"{_describe(t)}")
                clean.add(int(t))
            out[int(idx)] = sorted(clean)
        return out

    def _check_neuron_params(self, params):
        if not isinstance(params, dict):
            raise ValueError(f"population {self.name!r}: params must be a dict, got {type(params)}")
        defaults = CUBA_DEFAULTS if self.neuron_model in CUBA_MODELS else LIF_DEFAULTS
        unknown = sorted(set(params) - set(defaults), key=repr)
        if unknown:
            raise ValueError(
                f"population {self.name!r}: unknown parameter(s) {unknown} for neuron model "
                f"{self.neuron_model!r}; known: {sorted(defaults)}"
            )
        out = dict(defaults)
        out.update(params)
        if not isinstance(out["reset"], str) or out["reset"] not in RESET_MODES:
            raise ValueError(
                f"population {self.name!r}: reset must be one of {list(RESET_MODES)}, got {out['reset']!r}"
            )
        for key, value in out.items():
            if key == "reset":
                continue
            arr = _real_array(value, f"population {self.name!r}: parameter {key!r}")
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != self.size):
                raise ValueError(
                    f"population {self.name!r}: parameter {key!r} must be a scalar or have {self.size} values, "
                    f"got shape {arr.shape}"
                )
            if key != "threshold" and not np.all(np.isfinite(arr)):
                raise ValueError(f"population {self.name!r}: parameter {key!r} must be finite, got "
                                 f"{arr[~np.isfinite(arr)].flat[0]}")
            with np.errstate(over="ignore"):
                overflow = np.isfinite(arr) & ~np.isfinite(arr.astype(np.float32))
            if key != "threshold" and np.any(overflow):
                raise ValueError(f"population {self.name!r}: parameter {key!r} = {arr[overflow].flat[0]:g} "
                                 f"exceeds the float32 range (|x| <= 3.4e38) the chip stores it in")
            if np.any(np.isnan(arr)):
                raise ValueError(f"population {self.name!r}: parameter {key!r} is NaN")
            if key == "t_refrac" and (np.any(arr < 0) or np.any(np.mod(arr, 1) != 0) or np.any(arr > 2**30)):
                raise ValueError(
                    f"population {self.name!r}: parameter 't_refrac' must be integer ticks in [0, 2^30], got "
                    f"{_describe(value)}"
                )
        return out

    # --- py-spinnaker2 API ------------------------------------------------------------------------

    def set_max_atoms_per_core(self, n: int):
        if not _is_int(n) or n < 1:
            raise ValueError(f"population {self.name!r}: max atoms per core must be a positive integer, got {n!r}")
        self.max_atoms_per_core = int(n)

    def set_params(self, params: dict | None = None, **kwargs):
        """Change parameters after construction (py-spinnaker2's ``pop.set_params``), as a dict,
        keyword arguments or both; checked exactly as at construction, and on any error nothing
        changes. Neuron models: the given parameters replace their current values, the others stay
        (unknown names, wrong shapes, non-numbers, NaN and values outside float32 raise ValueError).
        ``spike_list``: the dict replaces all spike times ``{neuron_index: [tick, ...]}``."""
        if params is None and not kwargs:
            raise ValueError(f"population {self.name!r}: set_params needs parameters (a dict or keywords)")
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"population {self.name!r}: set_params takes a dict, got {type(params).__name__}")
        params = dict(params or {})
        twice = sorted(set(params) & set(kwargs), key=str)
        if twice:
            raise ValueError(f"population {self.name!r}: parameter(s) {twice} given both in the dict and as keywords")
        params.update(kwargs)
        if self.neuron_model in INPUT_MODELS:
            self.params = self._check_spike_list(params)
        else:
            self.params = self._check_neuron_params({**self.params, **params})

    def get_time_done_times(self) -> dict:
        """``{(chip, pe): one value per tick}`` of the last run: how long each PE of this population
        needed to process each tick, in ticks (a fraction of ``sys_tick_in_s``, the unit
        py-spinnaker2 reports; above 1.0 the PE overran the tick). These are ESTIMATES of the cost
        model (:func:`s2jax.hwmodel.estimate_cost` applied tick by tick to the run's synaptic
        events), not measurements. Needs ``"time_done"`` in ``record``."""
        if "time_done" not in self.record:
            raise RuntimeError(f"population {self.name!r} does not record time_done (record={self.record})")
        time_done = getattr(self, "_time_done", None)
        if time_done is None:
            raise RuntimeError(f"population {self.name!r} has not been run yet")
        return time_done

    def set_spike_times(self, spike_times: dict):
        """Replace a ``spike_list`` population's ``{neuron_index: [tick, ...]}`` (validated as at
        construction), e.g. to put one encoded example into an exported network's input."""
        if self.neuron_model not in INPUT_MODELS:
            raise ValueError(f"population {self.name!r}: only spike_list populations take spike times, "
                             f"this one is {self.neuron_model!r}")
        self.params = self._check_spike_list(spike_times)

    def param_array(self, key: str, dtype=np.float32) -> np.ndarray:
        """One value per neuron of a parameter, as ``dtype`` (float32 unless said otherwise)."""
        return np.broadcast_to(np.asarray(self.params[key], dtype=dtype), (self.size,)).copy()

    def get_spikes(self) -> dict[int, list[int]]:
        """``{neuron_index: [tick, ...]}`` of the last run (neurons that never fired are omitted)."""
        if "spikes" not in self.record:
            raise RuntimeError(f"population {self.name!r} does not record spikes (record={self.record})")
        if self._spikes is None:
            raise RuntimeError(f"population {self.name!r} has not been run yet")
        return self._spikes

    def get_voltages(self) -> dict[int, np.ndarray]:
        """``{neuron_index: voltages per tick}`` of the last run, the value after reset."""
        if "v" not in self.record:
            raise RuntimeError(f"population {self.name!r} does not record voltages (record={self.record})")
        if self._voltages is None:
            raise RuntimeError(f"population {self.name!r} has not been run yet")
        return self._voltages


def _check_endpoints(kind: str, pre, post, rounding, spec) -> str:
    """``pre`` and ``post`` are Populations (else a ValueError naming the argument); returns the
    projection's name for messages."""
    for label, pop in (("pre", pre), ("post", post)):
        if not isinstance(pop, Population):
            raise ValueError(f"{kind}: {label} must be a qnet.Population, got {_describe(pop)}")
    where = f"{kind} {pre.name!r} -> {post.name!r}"
    if rounding is not None and not isinstance(rounding, Rounding):
        raise ValueError(f"{where}: rounding must be a Rounding or None, got {_describe(rounding)}")
    if not isinstance(spec, ChipSpec):
        raise ValueError(f"{where}: spec must be a ChipSpec, got {_describe(spec)}")
    return where


def _integral_weights(values, where: str, rounding: Rounding | None) -> np.ndarray:
    w = _real_array(values, f"{where}: weights")
    if not np.all(np.isfinite(w)):
        bad = w[~np.isfinite(w)][0]
        raise ValueError(f"{where}: weight {bad} is not finite")
    frac = np.mod(w, 1) != 0
    if np.any(frac):
        if rounding is None:
            bad = w[frac][0]
            raise ValueError(
                f"{where}: weight {bad} is not an integer; the chip takes integer weights. Quantize it "
                f"yourself or pass rounding=Rounding.HALF_EVEN (or another Rounding) to round explicitly"
            )
        w = round_host(w, rounding)
    return w


def _check_range(w: np.ndarray, where: str, lo: int, hi: int, model: str):
    if w.size and (w.min() < lo or w.max() > hi):
        bad = w.min() if w.min() < lo else w.max()
        raise ValueError(f"{where}: weight {bad:g} outside [{lo}, {hi}], the range of model {model!r}")


class Projection:
    """Synapses between two populations (py-spinnaker2's ``snn.Projection``).

    ``connections``: rows ``[pre_index, post_index, weight, delay]``. Weights must be integers in
    the range of the post population's model (:meth:`ChipSpec.weight_range`); integral floats such
    as ``5.0`` are accepted. A non-integral weight raises unless ``rounding`` names how to round it.
    Delays are 0..``spec.max_delay`` for ``lif`` and ``lif_curr_exp`` and must be 0 otherwise; a
    spike emitted at tick t arrives at tick t + 1 + delay.
    """

    def __init__(self, pre: Population, post: Population, connections, *, rounding: Rounding | None = None,
                 spec: ChipSpec = SPINNAKER2, name: str | None = None):
        where = _check_endpoints("projection", pre, post, rounding, spec)
        self.pre, self.post = pre, post
        self.name = _check_name(name, "projection")
        if post.neuron_model not in NEURON_MODELS:
            raise ValueError(f"{where}: population {post.name!r} of model {post.neuron_model!r} cannot receive synapses")
        conn = _real_array(connections, f"{where}: connections")
        if conn.size == 0:
            conn = conn.reshape(0, 4)
        if conn.ndim != 2 or conn.shape[1] != 4:
            raise ValueError(f"{where}: connections must be rows [pre, post, weight, delay], got shape {conn.shape}")
        for col, name in ((0, "pre index"), (1, "post index"), (3, "delay")):
            if np.any(np.mod(conn[:, col], 1) != 0) or not np.all(np.isfinite(conn[:, col])):
                bad = conn[np.mod(conn[:, col], 1) != 0, col]
                raise ValueError(f"{where}: {name} must be an integer, got {bad[0] if bad.size else 'non-finite'}")
        pre_idx, post_idx, delay = (conn[:, c] for c in (0, 1, 3))  # float64 until range-checked
        for idx, pop, label in ((pre_idx, pre, "pre"), (post_idx, post, "post")):
            if idx.size and (idx.min() < 0 or idx.max() >= pop.size):
                bad = idx.min() if idx.min() < 0 else idx.max()
                raise ValueError(
                    f"{where}: {label} index {bad:.15g} out of range for population {pop.name!r} of size {pop.size}"
                )
        weight = _integral_weights(conn[:, 2], where, rounding)
        lo, hi = spec.weight_range(post.neuron_model)
        _check_range(weight, where, lo, hi, post.neuron_model)
        if spec.has_delays(post.neuron_model):
            if delay.size and (delay.min() < 0 or delay.max() > spec.max_delay):
                bad = delay.min() if delay.min() < 0 else delay.max()
                raise ValueError(f"{where}: delay {bad:.15g} outside [0, {spec.max_delay}] of model "
                                 f"{post.neuron_model!r}")
        elif delay.size and np.any(delay != 0):
            raise ValueError(
                f"{where}: delay {delay[delay != 0][0]:.15g} on model {post.neuron_model!r}, which has no delays "
                f"(spikes arrive after one tick); use a delay model ({', '.join(spec.delay_models)}) or delay 0"
            )
        self.pre_idx = pre_idx.astype(np.int32)
        self.post_idx = post_idx.astype(np.int32)
        self.weights = weight.astype(np.int32)
        self.delays = delay.astype(np.int32)

    @property
    def connections(self) -> np.ndarray:
        """The validated rows ``[pre, post, weight, delay]`` as int32."""
        return np.stack([self.pre_idx, self.post_idx, self.weights, self.delays], axis=1)

    def __repr__(self):
        return f"Projection({self.pre.name!r} -> {self.post.name!r}, {len(self.weights)} synapses)"


class Conv2DProjection:
    """A convolution into a ``lif_conv2d`` population (py-spinnaker2's ``snn.Conv2DProjection``).

    ``weights``: integer kernel ``(C_in, C_out, kH, kW)``. ``conv_params``: ``in_height``,
    ``in_width`` (required), ``stride_x``, ``stride_y``, ``pool_x``, ``pool_y`` (default 1),
    ``pad_top``, ``pad_bottom``, ``pad_left``, ``pad_right`` (default 0). Neurons are indexed
    C, H, W (NCHW flatten). The input is first sum-pooled over non-overlapping ``pool_y x pool_x``
    windows (trailing rows / columns that do not fill a window are dropped), then zero-padded and
    cross-correlated with the kernel at the given strides::

        H_out = (in_height // pool_y + pad_top + pad_bottom - kH) // stride_y + 1   (same for W)
    """

    def __init__(self, pre: Population, post: Population, weights, conv_params: dict, *,
                 rounding: Rounding | None = None, spec: ChipSpec = SPINNAKER2, name: str | None = None):
        where = _check_endpoints("conv projection", pre, post, rounding, spec)
        self.pre, self.post = pre, post
        self.name = _check_name(name, "conv projection")
        if post.neuron_model != "lif_conv2d":
            raise ValueError(f"{where}: a Conv2DProjection must target a 'lif_conv2d' population, "
                             f"got {post.neuron_model!r}")
        if not isinstance(conv_params, dict):
            raise ValueError(f"{where}: conv_params must be a dict, got {_describe(conv_params)}")
        unknown = sorted(set(conv_params) - set(CONV_KEYS), key=repr)
        if unknown:
            raise ValueError(f"{where}: unknown conv_params key(s) {unknown}; known: {list(CONV_KEYS)}")
        for key in ("in_height", "in_width"):
            if key not in conv_params:
                raise ValueError(f"{where}: conv_params needs {key!r}")
        cp = {"stride_x": 1, "stride_y": 1, "pool_x": 1, "pool_y": 1,
              "pad_top": 0, "pad_bottom": 0, "pad_left": 0, "pad_right": 0, **conv_params}
        for key, value in cp.items():
            low = 0 if key.startswith("pad") else 1
            if not _is_int(value) or value < low:
                raise ValueError(f"{where}: conv_params[{key!r}] must be an integer >= {low}, got {value!r}")
        self.conv_params = {k: int(cp[k]) for k in CONV_KEYS}
        w = _real_array(weights, f"{where}: weights")
        if w.ndim != 4:
            raise ValueError(f"{where}: weights must have shape (C_in, C_out, kH, kW), got {w.shape}")
        w = _integral_weights(w, where, rounding)
        lo, hi = spec.conv_weight_range
        _check_range(w, where, lo, hi, "lif_conv2d")
        c_in, c_out, kh, kw = w.shape
        cp = self.conv_params
        if pre.size != c_in * cp["in_height"] * cp["in_width"]:
            raise ValueError(
                f"{where}: population {pre.name!r} has {pre.size} neurons but C_in x in_height x in_width = "
                f"{c_in} x {cp['in_height']} x {cp['in_width']} = {c_in * cp['in_height'] * cp['in_width']}"
            )
        if cp["pool_x"] * cp["pool_y"] > 127:
            raise ValueError(f"{where}: pooling window {cp['pool_y']}x{cp['pool_x']} exceeds 127 inputs")
        hp, wp = cp["in_height"] // cp["pool_y"], cp["in_width"] // cp["pool_x"]
        h_span = hp + cp["pad_top"] + cp["pad_bottom"]
        w_span = wp + cp["pad_left"] + cp["pad_right"]
        if hp < 1 or wp < 1 or h_span < kh or w_span < kw:
            raise ValueError(
                f"{where}: kernel {kh}x{kw} does not fit the pooled, padded input {h_span}x{w_span} "
                f"(input {cp['in_height']}x{cp['in_width']}, pool {cp['pool_y']}x{cp['pool_x']})"
            )
        self.out_height = (h_span - kh) // cp["stride_y"] + 1
        self.out_width = (w_span - kw) // cp["stride_x"] + 1
        n_out = c_out * self.out_height * self.out_width
        if post.size != n_out:
            raise ValueError(
                f"{where}: population {post.name!r} has {post.size} neurons but the conv output is "
                f"C_out x H_out x W_out = {c_out} x {self.out_height} x {self.out_width} = {n_out}"
            )
        self.weights = w.astype(np.int32)

    def __repr__(self):
        return f"Conv2DProjection({self.pre.name!r} -> {self.post.name!r}, kernel {self.weights.shape})"


class Network:
    """A set of populations and projections (py-spinnaker2's ``snn.Network``)."""

    def __init__(self, name: str | None = None):
        self.name = _check_name(name, "network")
        self.populations: list[Population] = []
        self.projections: list[Projection | Conv2DProjection] = []

    def add(self, *objects):
        for obj in objects:
            if isinstance(obj, Population):
                if any(obj is p for p in self.populations):
                    continue
                if obj.name is None:
                    obj.name = f"pop{len(self.populations)}"
                if any(p.name == obj.name for p in self.populations):
                    raise ValueError(f"network {self.name!r}: two populations are named {obj.name!r}")
                self.populations.append(obj)
            elif isinstance(obj, (Projection, Conv2DProjection)):
                if not any(obj is p for p in self.projections):
                    self.projections.append(obj)
            else:
                raise ValueError(f"network {self.name!r}: cannot add {obj!r} (not a Population or Projection)")
        return self

    def reset(self):
        """Forget the recordings of the last run (py-spinnaker2's ``Network.reset``). Every run of
        the chip model starts from the populations' initial state anyway, so this only clears what
        ``get_spikes`` / ``get_voltages`` / ``get_time_done_times`` would return."""
        for pop in self.populations:
            pop._spikes = pop._voltages = pop._time_done = None
        return self

    def validate(self):
        """Check every projection connects populations of this network."""
        for proj in self.projections:
            for pop in (proj.pre, proj.post):
                if not any(pop is p for p in self.populations):
                    raise ValueError(
                        f"network {self.name!r}: {proj!r} uses population {pop.name!r}, which was not added"
                    )

    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(f"network {self.name!r} has no population {name!r}")
