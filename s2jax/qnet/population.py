"""``Population``: a group of neurons of one model, or a ``spike_list`` source."""

from __future__ import annotations

import numpy as np

from s2jax.qnet.checks import (
    MAX_POPULATION_SIZE,
    MAX_TICK,
    RECORDABLE,
    RESET_MODES,
    _check_name,
    _describe,
    _is_int,
    _is_real,
    _real_array,
    spike_count_error,
)
from s2jax import kinds

__all__ = ["Population"]


def _entry_count(ticks) -> int:
    """How many ticks a spike_list value lists (0 for a value of the wrong type, refused later)."""
    if isinstance(ticks, range):  # len() overflows beyond sys.maxsize
        return max(0, (ticks.stop - ticks.start + ticks.step - (1 if ticks.step > 0 else -1)) // ticks.step)
    if isinstance(ticks, np.ndarray):
        return ticks.size
    return len(ticks) if isinstance(ticks, (list, tuple)) else 0


class Population:
    """A group of neurons of one model (py-spinnaker2's ``snn.Population``).

    ``params`` for ``spike_list`` is ``{neuron_index: [tick, ...]}``; for the neuron models it is a
    dict of the model's parameters (scalars or one value per neuron), missing ones taking the
    defaults its kind declares (:func:`s2jax.kinds.get`, e.g. ``kinds.get("lif").defaults``). After a :class:`~s2jax.hwmodel.Simulator` run,
    :meth:`get_spikes` and :meth:`get_voltages` return what was recorded.
    """

    def __init__(self, size, neuron_model, params=None, name=None, record=("spikes",)):
        _check_name(name, "population")
        if not _is_int(size) or size < 1:
            raise ValueError(f"population {name!r}: size must be a positive integer, got {_describe(size)}")
        if size > MAX_POPULATION_SIZE:
            raise ValueError(f"population {name!r}: size {size:,} exceeds the limit of {MAX_POPULATION_SIZE:,} "
                             f"neurons per population")
        if not isinstance(neuron_model, str) or neuron_model not in kinds.names():
            raise ValueError(
                f"population {name!r}: unknown neuron model {neuron_model!r}; known models: {list(kinds.names())}"
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
        if kinds.get(neuron_model).is_input and "v" in record:
            raise ValueError(f"population {name!r}: a spike_list population has no voltage to record")
        self.record = record
        self.max_atoms_per_core = None
        if kinds.get(neuron_model).is_input:
            self.params = self._check_spike_list({} if params is None else params)
        else:
            self.params = self._check_neuron_params({} if params is None else params)
        self._spikes = None
        self._voltages = None

    def __repr__(self):
        return f"Population(size={self.size}, neuron_model={self.neuron_model!r}, name={self.name!r})"

    # --- validation -----------------------------------------------------------------------------

    def _check_spike_list(self, params):
        """``{neuron: sorted distinct ticks}``: neuron indices in [0, size), ticks integers in
        [0, :data:`MAX_TICK`], at most :data:`MAX_SPIKES` entries in all (counted before any tick
        is looked at). A 1-D integer NumPy array of ticks is checked without a Python loop."""
        if not isinstance(params, dict):
            raise ValueError(f"population {self.name!r}: spike_list params must be a dict, got {type(params)}")
        entries = sum(_entry_count(t) for t in params.values())
        error = spike_count_error(entries, f"population {self.name!r}: spike_list")
        if error:
            raise ValueError(error)
        out = {}
        for idx, ticks in params.items():
            if not _is_int(idx) or not 0 <= idx < self.size:
                raise ValueError(
                    f"population {self.name!r}: spike_list neuron index {idx!r} outside [0, {self.size - 1}]"
                )
            where = f"population {self.name!r}: spike ticks of neuron {idx}"
            if isinstance(ticks, np.ndarray) and ticks.ndim == 1 and ticks.dtype.kind in "iu":
                if ticks.size and (ticks.min() < 0 or ticks.max() > MAX_TICK):
                    bad = ticks.min() if ticks.min() < 0 else ticks.max()
                    raise ValueError(f"{where} must be non-negative integers (at most {MAX_TICK}), got "
                                     f"{_describe(bad)}")
                out[int(idx)] = np.unique(ticks).tolist()
                continue
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
        kind = kinds.get(self.neuron_model)
        defaults = kind.defaults
        unknown = sorted(set(params) - set(defaults), key=repr)
        if unknown:
            raise ValueError(
                f"population {self.name!r}: unknown parameter(s) {unknown} for neuron model "
                f"{self.neuron_model!r}; known: {sorted(defaults)}"
            )
        out = dict(defaults)
        out.update(params)
        for key in kind.params_of("reset"):
            if not isinstance(out[key], str) or out[key] not in RESET_MODES:
                raise ValueError(
                    f"population {self.name!r}: {key} must be one of {list(RESET_MODES)}, got {out[key]!r}"
                )
        for key, value in out.items():
            if kind.param_classes[key] == "reset":
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
            if kind.param_classes[key] == "ticks" and (np.any(arr < 0) or np.any(np.mod(arr, 1) != 0)
                                                       or np.any(arr > 2**30)):
                raise ValueError(
                    f"population {self.name!r}: parameter {key!r} must be integer ticks in [0, 2^30], got "
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
        if kinds.get(self.neuron_model).is_input:
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
        if not kinds.get(self.neuron_model).is_input:
            raise ValueError(f"population {self.name!r}: only spike_list populations take spike times, "
                             f"this one is {self.neuron_model!r}")
        self.params = self._check_spike_list(spike_times)

    def param_array(self, key: str, dtype=np.float32) -> np.ndarray:
        """One value per neuron of a parameter, as ``dtype`` (float32 unless said otherwise)."""
        return np.broadcast_to(np.asarray(self.params[key], dtype=dtype), (self.size,)).copy()

    def store_recording(self, spikes: dict | None = None, voltages: dict | None = None,
                        time_done: dict | None = None):
        """Keep what a simulator run recorded, for :meth:`get_spikes`, :meth:`get_voltages` and
        :meth:`get_time_done_times` to return: ``{neuron: [tick, ...]}``, ``{neuron: voltages per
        tick}`` and ``{(chip, pe): one value per tick}``. Each replaces the previous run's value;
        None means "not recorded" (the getter then says the population has not been run)."""
        self._spikes, self._voltages, self._time_done = spikes, voltages, time_done

    def clear_recording(self):
        """Forget the last run's recordings (before a new run, or on ``Network.reset``)."""
        self.store_recording()

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
