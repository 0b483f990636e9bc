"""The limits and checks of the hand-off format, shared by its constructors, the mapper, the
compiler and the design rules: defaults, recordable names, size and tick limits, the decay
range, and the helpers that turn a malformed value into a ``ValueError`` naming it."""

from __future__ import annotations

import numbers

import numpy as np

from s2jax import kinds

__all__ = ["LIF_DEFAULTS", "CUBA_DEFAULTS", "RESET_MODES", "RECORDABLE", "MAX_POPULATION_SIZE", "MAX_TICK",
           "MAX_SYNAPSES", "MAX_SPIKES", "MAX_NAME_LENGTH", "DECAY_PARAMS", "DECAY_RANGE", "CONV_KEYS",
           "decay_violations", "parameter_error", "check_name", "population_size_error", "synapse_count_error",
           "spike_count_error"]

RESET_MODES = ("reset_by_subtraction", "reset_to_v_reset")

# The stock kinds' defaults, as declared by their kinds (s2jax.kinds.get(model).defaults).
LIF_DEFAULTS = dict(kinds.get("lif").defaults)
CUBA_DEFAULTS = dict(kinds.get("lif_curr_exp").defaults)

#: What a population can record: spikes, voltages, and "time_done" (per tick and per PE, the
#: processing time the cost model estimates; :meth:`Population.get_time_done_times`).
RECORDABLE = ("spikes", "v", "time_done")

#: Largest population accepted anywhere (constructor, bundle, image, NIR import): 2^24 neurons,
#: more than a 48-chip board holds (48 x 152 PEs x at most 1024 atoms per PE = 7.5 M). Sizes read
#: from files are checked against it before anything is allocated.
MAX_POPULATION_SIZE = 2**24

#: Most synapses of one projection (rows of a ``Projection``, weights of a ``Conv2DProjection``
#: kernel): 2^24. One chip holds about 152 PEs x 128 KiB SRAM / 4 bytes per synapse word = 5 M
#: synapse words, so 2^24 (16.8 M) is generous for one projection. Counts read from files are
#: checked against it before any array is read or any per-synapse list is built.
MAX_SYNAPSES = 2**24

#: Most spike entries (``(neuron, tick)`` pairs) of one ``spike_list`` population: 2^23 (8.4 M),
#: more than the spike tables one chip's SRAM holds (the same 5 M words as above). Counts read from
#: files are checked against it before the entries are read or turned into Python lists.
MAX_SPIKES = 2**23

#: Longest population, projection or network name: 256 characters (a name is shown in every
#: message and stored in every file).
MAX_NAME_LENGTH = 256

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


def check_name(name, what: str):
    """Population, projection and network names are a string or None (lists, dicts, numbers are
    refused), of at most :data:`MAX_NAME_LENGTH` characters and encodable as UTF-8 (no lone
    surrogates), so that every file format can store them."""
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{what} name must be a string or None, got {_describe(name)}")
    if name is not None and len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} name {name[:40]!r}... has {len(name):,} characters, over the limit of "
                         f"{MAX_NAME_LENGTH} (MAX_NAME_LENGTH)")
    if name is not None:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{what} name {name!r} cannot be encoded as UTF-8 ({e.reason} at character "
                             f"{e.start}); names must be valid Unicode text") from None
    return name


_check_name = check_name  # the name qnet's own modules use


def synapse_count_error(count: int, where: str) -> str | None:
    """Why ``count`` synapses are too many for one projection (:data:`MAX_SYNAPSES`), or None."""
    if count > MAX_SYNAPSES:
        return (f"{where}: {count:,} synapses exceed the limit of {MAX_SYNAPSES:,} synapses per projection "
                f"(MAX_SYNAPSES)")
    return None


def spike_count_error(count: int, where: str) -> str | None:
    """Why ``count`` spike entries are too many for one spike_list population (:data:`MAX_SPIKES`), or None."""
    if count > MAX_SPIKES:
        return (f"{where}: {count:,} spike entries exceed the limit of {MAX_SPIKES:,} per spike_list population "
                f"(MAX_SPIKES)")
    return None


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


def population_size_error(pop) -> str | None:
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


def parameter_error(pop) -> str | None:
    """The constructor's check of ``pop.params`` (types, shapes, finiteness; spike ticks), run
    again on parameters edited after construction: the message of the first problem, or None
    (also None for an invalid size, which :func:`population_size_error` reports)."""
    if population_size_error(pop):
        return None
    try:
        if kinds.get(pop.neuron_model).is_input:
            pop._check_spike_list(pop.params)
        else:
            pop._check_neuron_params(pop.params)
    except ValueError as e:
        return str(e) if str(e).startswith("population ") else f"population {pop.name!r}: {e}"
    return None


def decay_violations(pop) -> list[tuple[str, float, str]]:
    """``(parameter, value, message)`` for each decay parameter of ``pop`` (:data:`DECAY_PARAMS`)
    that has a value outside :data:`DECAY_RANGE` (NaN included), checked on the float32 values the
    chip stores. The one rule for decays: the design rules report these, the fixed-point profile
    refuses them. A parameter that is not numbers at all (an array edited after construction) is
    reported too."""
    lo, hi = DECAY_RANGE
    out = []
    try:
        decays = kinds.get(pop.neuron_model).params_of("decay")
    except ValueError:
        decays = DECAY_PARAMS  # a model name edited after construction: the design rules name it
    for key in decays:
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
