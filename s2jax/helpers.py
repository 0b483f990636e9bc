"""py-spinnaker2's ``helpers`` for the chip model: ``from s2jax import helpers`` replaces
``from spinnaker2 import helpers``.

Implemented (same names, arguments and return shapes as in py-spinnaker2 scripts):

- :func:`spike_times_dict_to_arrays` ``(spike_times) -> (indices, times)``, the raster-plot form;
- :func:`spike_times_to_matrix` ``(spike_times, n_timesteps) -> (n_neurons, n_timesteps)`` 0/1 matrix.

Refused with an error that names them: the time_done plotting helpers (such as
``plot_times_done_multiple_pes_one_plot_vertical``), which read py-spinnaker2's own result files;
plot ``pop.get_time_done_times()`` (cost-model estimates) with matplotlib instead. Any other name
raises an AttributeError listing what this module has.

Inputs are checked: a spike dict must map neuron indices (non-negative integers) to iterables of
non-negative integer ticks; a bad key, tick or size raises a ValueError naming it.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["MAX_MATRIX_ENTRIES", "spike_times_dict_to_arrays", "spike_times_to_matrix"]

#: Largest ``n_neurons * n_timesteps`` :func:`spike_times_to_matrix` allocates (2^28 int32 entries, 1 GiB).
MAX_MATRIX_ENTRIES = 2**28

#: py-spinnaker2 helpers this module refuses, with what to do instead.
REFUSED = {
    "plot_times_done_multiple_pes_one_plot_vertical":
        "it plots py-spinnaker2's measured time_done result files; the chip model has estimates only: "
        "plot pop.get_time_done_times() with matplotlib",
}


def _is_index(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool) and x >= 0


def _checked(spike_times) -> list[tuple[int, np.ndarray]]:
    """``[(neuron, ticks as int64)]`` in the dict's order, every key and tick checked."""
    if not isinstance(spike_times, dict):
        raise ValueError(f"spike_times must be a dict {{neuron index: [tick, ...]}}, got {type(spike_times).__name__}")
    out = []
    for neuron, ticks in spike_times.items():
        if not _is_index(neuron):
            raise ValueError(f"spike_times: neuron index {neuron!r} is not a non-negative integer")
        if isinstance(ticks, (str, bytes, dict)):
            raise ValueError(f"spike_times: neuron {neuron}: ticks must be a list of integers, got {ticks!r}")
        try:
            arr = np.asarray(list(ticks) if not isinstance(ticks, np.ndarray) else ticks)
        except TypeError:
            raise ValueError(f"spike_times: neuron {neuron}: ticks must be a list of integers, got {ticks!r}") from None
        arr = arr.reshape(-1)
        if arr.size and (arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr))
                         or not np.all(np.mod(arr, 1) == 0) or arr.min() < 0):
            raise ValueError(f"spike_times: neuron {neuron}: ticks must be non-negative integers, "
                             f"got {arr.tolist()[:10]}")
        out.append((int(neuron), arr.astype(np.int64)))
    return out


def spike_times_dict_to_arrays(spike_times: dict) -> tuple[np.ndarray, np.ndarray]:
    """``{neuron: [ticks]}`` (e.g. ``pop.get_spikes()`` or a ``spike_list``'s params) as two int64
    arrays ``(indices, times)`` of equal length, one entry per spike, in the dict's order; what
    ``plt.plot(times, indices, "|")`` draws as a raster."""
    pairs = _checked(spike_times)
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    indices = np.concatenate([np.full(t.size, n, np.int64) for n, t in pairs])
    times = np.concatenate([t for _, t in pairs])
    return indices, times


def spike_times_to_matrix(spike_times: dict, n_timesteps: int, n_neurons: int | None = None) -> np.ndarray:
    """``(n_neurons, n_timesteps)`` int32 matrix, 1 where a neuron spiked at a tick.

    ``n_neurons`` defaults to the population size when ``spike_times`` comes from
    ``pop.get_spikes()`` (it carries it), else to the largest neuron index + 1; pass it to count
    silent neurons after the last one that fired. A tick at or beyond ``n_timesteps`` or a neuron
    at or beyond ``n_neurons`` raises (nothing is dropped); so does a matrix over
    :data:`MAX_MATRIX_ENTRIES` entries, before it is allocated.
    """
    pairs = _checked(spike_times)
    if not _is_index(n_timesteps) or n_timesteps < 1:
        raise ValueError(f"n_timesteps must be a positive integer, got {n_timesteps!r}")
    if n_neurons is None:
        n_neurons = getattr(spike_times, "n_neurons", None)
    if n_neurons is None:
        n_neurons = max((n for n, _ in pairs), default=-1) + 1
    elif not _is_index(n_neurons):
        raise ValueError(f"n_neurons must be a non-negative integer, got {n_neurons!r}")
    if n_neurons * n_timesteps > MAX_MATRIX_ENTRIES:
        raise ValueError(f"a {n_neurons:,} x {n_timesteps:,} spike matrix has {n_neurons * n_timesteps:,} entries, "
                         f"over the limit of {MAX_MATRIX_ENTRIES:,}")
    matrix = np.zeros((n_neurons, n_timesteps), np.int32)
    for neuron, ticks in pairs:
        if neuron >= n_neurons:
            raise ValueError(f"spike_times: neuron {neuron} outside the {n_neurons} rows (n_neurons={n_neurons})")
        if ticks.size and ticks.max() >= n_timesteps:
            raise ValueError(f"spike_times: neuron {neuron} spikes at tick {int(ticks.max())}, at or beyond "
                             f"n_timesteps={n_timesteps}")
        matrix[neuron, ticks] = 1
    return matrix


def __getattr__(name: str):
    if name in REFUSED:
        def refused(*args, **kwargs):
            raise NotImplementedError(f"helpers.{name} is not supported by s2jax: {REFUSED[name]}")
        refused.__name__ = name
        return refused
    raise AttributeError(f"s2jax.helpers has no {name!r}; it has {__all__[1:]} "
                         f"(py-spinnaker2 helpers refused by name: {sorted(REFUSED)})")
