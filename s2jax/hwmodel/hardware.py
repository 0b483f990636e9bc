"""py-spinnaker2's ``hardware`` front door on the chip model: ``Simulator`` and the hardware
classes ``SpiNNaker2Chip`` (one chip) and ``SpiNNcloud48NodeBoard`` (48 chips), whose ``run(net,
timesteps)`` fills ``pop.get_spikes()``, ``pop.get_voltages()`` and ``pop.get_time_done_times()``.
The array form they call is :func:`s2jax.hwmodel.run`."""

from __future__ import annotations

import jax
import numpy as np

from s2jax import dynamics, kinds
from s2jax.hwmodel.cost import _conv_macs
from s2jax.hwmodel.mapping import map_to_cores
from s2jax.hwmodel.program import CHIP_PROFILES, compile_network
from s2jax.hwmodel.simulator import MAX_RUN_BYTES, Trace, _positive_int, check_run_size, run, spike_list_inputs, to_volts
from s2jax.qnet import RECORDABLE, Conv2DProjection, Network, Population
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["Simulator", "SpiNNaker2Chip", "SpiNNcloud48NodeBoard", "SpikeTimes", "time_done_estimates",
           "IGNORED_HARDWARE_OPTIONS", "RUN_OPTIONS"]


class SpikeTimes(dict):
    """``{neuron: [ticks]}`` as ``pop.get_spikes()`` returns it (neurons that never fired are
    omitted), plus ``n_neurons``, the population size, so that
    :func:`s2jax.helpers.spike_times_to_matrix` gives silent neurons their rows. Compares, prints
    and iterates as the plain dict it is."""

    def __init__(self, spikes: dict, n_neurons: int):
        super().__init__(spikes)
        self.n_neurons = int(n_neurons)


#: Keyword arguments of py-spinnaker2's hardware constructors: accepted, checked for type, and
#: ignored (the model talks to no board). Any other keyword raises a ValueError naming it.
IGNORED_HARDWARE_OPTIONS = ("eth_ip", "stm_ip", "experiment_backend_type")

#: Keyword arguments of py-spinnaker2's ``hardware.run`` and their defaults. ``sys_tick_in_s`` sets
#: the tick that ``time_done`` estimates are expressed in; ``mapping_only`` maps without simulating;
#: ``debug`` and ``reset_board`` are accepted and have no effect on the model; ``record_power`` and
#: ``live_power`` are refused when True (the model measures no power: see ``estimate_cost``).
RUN_OPTIONS = {"debug": True, "sys_tick_in_s": 1e-3, "mapping_only": False, "reset_board": False,
               "record_power": False, "live_power": False}


class Simulator:
    """Runs a Network like ``hardware.SpiNNaker2Chip().run(net, timesteps)`` and fills its populations.

    ``pop.get_spikes()`` gives ``{neuron: [ticks]}``, ``pop.get_voltages()`` gives
    ``{neuron: voltages per tick}`` (float32, or float64 ``v / 2^15`` in the fixed profile),
    ``pop.get_time_done_times()`` gives cost-model ESTIMATES of each PE's processing time per tick
    (``record=[..., "time_done"]``). The run is jitted here: this class is the outermost call of a
    py-spinnaker2 style script. ``Simulator`` itself has no chip limit; the py-spinnaker2 class
    names below refuse a network that does not fit their chips.

    Constructor: ``profile`` ("float32" or "fixed"), ``spec``, and py-spinnaker2's
    :data:`IGNORED_HARDWARE_OPTIONS` (strings or None for the addresses); anything else raises a
    ValueError naming it.
    """

    #: Chips the hardware has (None: the model alone, no limit).
    chips: int | None = None

    def __init__(self, profile: str = "float32", spec: ChipSpec = SPINNAKER2, **hardware_options):
        name = type(self).__name__
        unknown = sorted(set(hardware_options) - set(IGNORED_HARDWARE_OPTIONS))
        if unknown:
            raise ValueError(f"{name}() got unknown keyword argument(s) {unknown}; accepted: profile, spec and "
                             f"py-spinnaker2's {list(IGNORED_HARDWARE_OPTIONS)} (accepted and ignored by the model)")
        for key in ("eth_ip", "stm_ip"):
            value = hardware_options.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}(): {key} must be an address string (ignored by the model), got {value!r}")
        if not isinstance(spec, ChipSpec):
            raise ValueError(f"{name}(): spec must be a ChipSpec, got {type(spec).__name__}")
        dynamics.profile_name(profile, CHIP_PROFILES)  # validates the profile name
        self.profile = profile
        self.spec = spec
        self.hardware_options = hardware_options  # accepted and ignored by the model
        self.last_trace = None
        self.last_mapping = None

    def run(self, net: Network, timesteps: int, **run_options):
        """Simulate ``net`` for ``timesteps`` ticks (batch of one, inputs from the ``spike_list``
        populations' own spike times) and fill every population's recordings; returns the
        :class:`Trace`.

        Keyword arguments: those of py-spinnaker2's ``run`` in :data:`RUN_OPTIONS`, each checked
        for type; unknown ones raise a ValueError naming them. ``mapping_only=True`` maps the
        network onto PEs (:func:`~s2jax.hwmodel.map_to_cores`), prints that nothing was simulated
        (unless ``debug=False``), clears the populations' recordings and returns the ``Mapping``.
        Parameters and record lists assigned directly (``pop.params = ...``, ``pop.record = ...``)
        are checked here as at construction. A hardware class with a chip count refuses a network
        whose mapping needs more chips.
        """
        options = self._run_options(run_options)
        timesteps = _positive_int(timesteps, "timesteps")
        if not isinstance(net, Network):
            raise ValueError(f"run() takes a qnet.Network, got {type(net).__name__}")
        if net.layers:
            raise ValueError(f"network {net.name!r} holds layers ({net.layers[0].name!r}, ...), which read tensor "
                             f"inputs: run it with hwmodel.run(net, inputs); py-spinnaker2's run() drives spike "
                             f"sources only")
        net.validate()
        _recheck_populations(net)
        for pop in net.populations:  # no stale results if this run fails or only maps
            pop.clear_recording()
        want_time_done = [p for p in net.populations if "time_done" in p.record]
        if not options["mapping_only"]:
            check_run_size(net, 1, timesteps)  # the run's memory, before anything is allocated
        mapping = None
        if options["mapping_only"] or want_time_done or self.chips is not None:
            mapping = map_to_cores(net, self.spec)
            self.last_mapping = mapping
            self._check_chips(net, mapping)
        if options["mapping_only"]:
            if options["debug"]:
                print(f"mapping_only=True: network {net.name!r} mapped onto {mapping.pes} PE(s) on "
                      f"{mapping.chips} chip(s); nothing was simulated")
            return mapping
        if want_time_done:  # one float64 per PE and tick, plus the (T, populations) events
            pes = sum(1 for pl in mapping.placements if "time_done" in net.population(pl.population).record)
            need = 8 * timesteps * (pes + len(net.populations))
            if need > MAX_RUN_BYTES:
                raise ValueError(f"time_done of {pes:,} PEs over {timesteps:,} timesteps needs about {need:,} bytes, "
                                 f"over the limit of {MAX_RUN_BYTES:,} bytes (MAX_RUN_BYTES); record time_done on "
                                 f"fewer populations or run fewer timesteps")
        prog = compile_network(net, self.profile, self.spec)
        lay = prog.layout
        inputs = spike_list_inputs(net, timesteps)
        _, trace = jax.jit(run, static_argnames="timesteps")(prog, inputs or None, timesteps=timesteps)
        self.last_trace = trace
        estimates = {}
        if want_time_done:
            estimates = time_done_estimates(net, mapping, trace, options["sys_tick_in_s"], self.spec)
        for pop in net.populations:
            spikes = voltages = None
            if pop.name in trace.spikes:
                s = np.asarray(trace.spikes[pop.name][0])
                fired = np.nonzero(s.any(axis=0))[0]
                spikes = SpikeTimes({int(i): np.nonzero(s[:, i])[0].tolist() for i in fired}, pop.size)
            if pop.name in trace.voltages:
                v = to_volts(trace.voltages[pop.name][0], lay)
                voltages = {i: v[:, i].copy() for i in range(pop.size)}
            time_done = estimates[pop.name] if "time_done" in pop.record else None
            pop.store_recording(spikes=spikes, voltages=voltages, time_done=time_done)
        return trace

    def _run_options(self, run_options: dict) -> dict:
        name = f"{type(self).__name__}.run()"
        unknown = sorted(set(run_options) - set(RUN_OPTIONS))
        if unknown:
            raise ValueError(f"{name} got unknown keyword argument(s) {unknown}; py-spinnaker2's run options "
                             f"the model takes: {list(RUN_OPTIONS)}")
        options = {**RUN_OPTIONS, **run_options}
        for key, value in options.items():
            if key == "sys_tick_in_s":
                if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
                        or not np.isfinite(value) or not 0 < value <= 1e3):
                    raise ValueError(f"{name}: sys_tick_in_s must be a tick length in seconds in (0, 1000], "
                                     f"got {value!r}")
            elif not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name}: {key} must be True or False, got {value!r}")
        for key in ("record_power", "live_power"):
            if options[key]:
                raise ValueError(f"{name}: {key}=True is not supported: the chip model measures no power; "
                                 f"s2jax.hwmodel.estimate_cost(net, trace) gives energy and power estimates")
        options["sys_tick_in_s"] = float(options["sys_tick_in_s"])
        return options

    def _check_chips(self, net: Network, mapping):
        if self.chips is not None and mapping.chips > self.chips:
            raise ValueError(
                f"network {net.name!r} needs {mapping.pes} PEs on {mapping.chips} chips, but a "
                f"{type(self).__name__} has {self.chips} chip(s) of {self.spec.pes_per_chip} PEs; use "
                f"hardware.SpiNNcloud48NodeBoard (48 chips) or hardware.Simulator (no limit)")


class SpiNNaker2Chip(Simulator):
    """py-spinnaker2's single chip: ``hardware.SpiNNaker2Chip(eth_ip=...)`` works unchanged (the
    address, also accepted as the first positional argument, is ignored). Refuses a network whose
    mapping needs more than one chip."""

    chips = 1

    def __init__(self, eth_ip: str | None = None, **options):
        super().__init__(eth_ip=eth_ip, **options)


class SpiNNcloud48NodeBoard(Simulator):
    """py-spinnaker2's 48-chip board: ``hardware.SpiNNcloud48NodeBoard(stm_ip=..., eth_ip=...)``
    works unchanged (keyword arguments only; the addresses are ignored). The model simulates the
    whole network as one; only the chip count (48) is checked against the mapping."""

    chips = 48

    def __init__(self, **options):
        super().__init__(**options)


def _recheck_populations(net: Network):
    """Check what py-spinnaker2 scripts assign directly after construction (``pop.params``,
    ``pop.record``) with the constructor's own checks; stores the checked parameters."""
    for pop in net.populations:
        if not isinstance(pop, Population):
            raise ValueError(f"network {net.name!r}: {pop!r} is not a qnet.Population")
        record = pop.record
        if isinstance(record, str):
            record = [record]
        if not isinstance(record, (list, tuple)) or not all(isinstance(r, str) for r in record):
            raise ValueError(f"population {pop.name!r}: record must be a list of names, got {pop.record!r}")
        for r in record:
            if r not in RECORDABLE:
                raise ValueError(f"population {pop.name!r}: cannot record {r!r}; recordable: {list(RECORDABLE)}")
        if kinds.get(pop.neuron_model).is_input:
            for r in ("v", "time_done"):
                if r in record:
                    raise ValueError(
                        f"population {pop.name!r}: a spike_list population cannot record {r!r}"
                        + (" (the cost model charges no processing time to spike sources)" if r == "time_done"
                           else " (it has no voltage)"))
        if not isinstance(pop.params, dict):  # worded as the constructor words it
            what = "spike_list params" if kinds.get(pop.neuron_model).is_input else "params"
            raise ValueError(f"population {pop.name!r}: {what} must be a dict, got {type(pop.params)}")
        pop.set_params(pop.params)  # the constructor's checks; the checked parameters replace pop.params
        pop.record = list(record)


def time_done_estimates(net: Network, mapping, trace: Trace, sys_tick_in_s: float, spec: ChipSpec = SPINNAKER2
                        ) -> dict:
    """``{population: {(chip, pe): (T,) float64}}``: per tick, the cost model's processing time of
    every PE, in ticks of ``sys_tick_in_s`` (py-spinnaker2's ``time_done`` unit). ESTIMATES: the
    per-PE cycle count of :mod:`s2jax.hwmodel.cost` (events of the tick shared among a population's
    PEs in proportion to their neurons, neuron updates, conv MACs) divided by ``spec.pe_clock_hz``;
    averaged over ticks, the busiest PE gives ``estimate_cost(net, trace).latency_per_tick_s``.
    Spike sources get no entry (the cost model charges them nothing)."""

    names = [p.name for p in net.populations]
    if tuple(trace.names) != tuple(names):
        raise ValueError(f"the trace is of populations {list(trace.names)}, the network has {names}")
    events = np.asarray(trace.synaptic_events, np.float64)
    events = events.reshape(-1, events.shape[-2], events.shape[-1]).mean(axis=0)  # (T, P), batch mean
    macs = dict.fromkeys(names, 0)
    for proj in net.projections:
        if isinstance(proj, Conv2DProjection):
            macs[proj.post.name] += _conv_macs(proj)
    out = {p.name: {} for p in net.populations if not kinds.get(p.neuron_model).is_input}
    for pl in mapping.placements:
        pop = net.population(pl.population)
        if kinds.get(pop.neuron_model).is_input:
            continue
        share = pl.size / pop.size
        ev = 0.0 if kinds.mac_target(pop.neuron_model) else events[:, names.index(pop.name)]
        cycles = (share * ev * spec.cycles_per_synaptic_event + pl.size * spec.cycles_per_neuron_update
                  + share * macs[pop.name] / spec.macs_per_pe)
        out[pop.name][(pl.chip, pl.pe)] = np.broadcast_to(
            np.asarray(cycles, np.float64) / spec.pe_clock_hz / sys_tick_in_s, (events.shape[0],)).copy()
    return out
