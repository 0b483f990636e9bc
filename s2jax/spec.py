"""`ChipSpec`: every hardware number and every modelling assumption, in one place.

Each field carries its provenance in the dataclass field metadata:

- ``V`` verified in public py-spinnaker2 / NIR code or in data recorded from the toolchain;
- ``P`` stated in a paper abstract;
- ``A`` an assumption of ours where public sources are silent.

Changing an assumption means constructing another instance, e.g.
``dataclasses.replace(SPINNAKER2, cuba_current_order="previous")``; nothing reads a global.
The README's "assumptions" table is generated from this file by :func:`assumptions_table`
(and a test checks the README still matches it).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field


class Rounding(enum.Enum):
    """How a right shift (a division by 2^s) rounds its result.

    FLOOR: toward minus infinity (a plain arithmetic shift). TO_ZERO: toward zero (C integer
    division). HALF_UP: to nearest, ties toward plus infinity (``(x + 2^(s-1)) >> s``).
    HALF_EVEN: to nearest, ties to the even result (what ``jnp.round`` does).
    """

    FLOOR = "floor"
    TO_ZERO = "to_zero"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"


def _f(default, tag: str, source: str, doc: str):
    return field(default=default, metadata={"tag": tag, "source": source, "doc": doc})


_PYS2 = "py-spinnaker2 snn/ and s2_nir (public code)"
_SPEC = "docs/SPINNAKER2.md"

# The stock kinds by family, as names (s2jax.kinds is the registry every module reads; these tuples
# stay for code written against them and do not list kinds added later).
LIF_MODELS = ("lif", "lif_no_delay", "lif_conv2d")
CUBA_MODELS = ("lif_curr_exp", "lif_curr_exp_no_delay")
NEURON_MODELS = LIF_MODELS + CUBA_MODELS
INPUT_MODELS = ("spike_list",)
ALL_MODELS = INPUT_MODELS + NEURON_MODELS


@dataclass(frozen=True)
class ChipSpec:
    """Hardware facts and assumptions of one SpiNNaker2 chip generation (hashable, immutable)."""

    # --- chip resources (section 1) ---
    pes_per_chip: int = _f(152, "V", "SpiNNaker2 chip papers", "ARM Cortex-M4F processing elements per chip")
    pes_per_qpe: int = _f(4, "V", "SpiNNaker2 chip papers", "PEs per quad-PE")
    sram_per_pe_bytes: int = _f(128 * 1024, "V", "SpiNNaker2 chip papers", "SRAM per PE")
    sram_data_bytes_per_pe: int = _f(
        96 * 1024, "A", _SPEC, "part of the PE's SRAM usable for neuron state and synapse data"
    )
    dram_per_chip_bytes: int = _f(2 * 1024**3, "V", "SpiNNaker2 board papers", "LPDDR4 per chip")
    routing_entries_per_chip: int = _f(16384, "V", "SpiNNaker2 chip papers", "multicast router table entries")
    macs_per_pe: int = _f(64, "V", "SpiNNaker2 MLA papers", "int8 multiply-accumulate units per PE")
    mla_accumulator_bits: int = _f(
        24, "A", "product chip (29 on the prototype)", "signed accumulator width of the MAC array"
    )
    tick_s: float = _f(1e-3, "V", _PYS2 + " (sys_tick_in_s)", "default wall time of one SNN timestep")
    chip_power_w: tuple[float, float] = _f((0.24, 2.2), "A", "measured range in papers", "chip power range")

    # --- synapses (section 2) ---
    weight_ranges: tuple[tuple[str, tuple[int, int]], ...] = _f(
        (
            ("lif", (-15, 15)),
            ("lif_curr_exp", (-15, 15)),
            ("lif_no_delay", (-127, 127)),
            ("lif_curr_exp_no_delay", (-127, 127)),
            ("lif_conv2d", (-127, 127)),
        ),
        "V",
        _PYS2,
        "integer weight range of the synapses into each neuron model",
    )
    conv_weight_range: tuple[int, int] = _f(
        (-128, 127), "A", "int8 kernel of lif_conv2d", "integer range of Conv2DProjection kernels"
    )
    conv_cross_correlation: bool = _f(
        True, "A", "ours (as PyTorch and NIR Conv2d)", "Conv2DProjection kernels are applied unflipped"
    )
    max_delay: int = _f(7, "V", _PYS2, "largest synaptic delay (ticks) of the delay models; arrival after d+1 ticks")
    delay_models: tuple[str, ...] = _f(("lif", "lif_curr_exp"), "V", _PYS2, "models whose synapses take delays")
    exact_input_sum_bound: int = _f(
        2**24, "V", "IEEE-754 binary32", "|int32 input sum| below which its float32 conversion is exact"
    )

    # --- neuron semantics (sections 3 and 4) ---
    threshold_strict: bool = _f(True, "A", "V for NIR; unverified on silicon", "a spike needs v > threshold")
    fused_multiply_add: bool = _f(False, "A", _SPEC, "alpha*v is rounded before the add (no FMA)")
    flush_subnormals: bool = _f(
        True,
        "A",
        "XLA on CPU flushes float32 subnormals to zero (FTZ/DAZ); the Cortex-M4F flushes only "
        "with FPSCR.FZ set, unverified for the SpiNNaker2 apps",
        "float32 results and operands below 2^-126 in magnitude count as (signed) zero",
    )
    i_offset_after_input: bool = _f(True, "A", _SPEC, "i_offset is added after the synaptic input")
    cuba_current_order: str = _f(
        "current",
        "A",
        _SPEC,
        "'current': the membrane sees this tick's synaptic current; 'previous': last tick's",
    )
    refractory_rule: str = _f(
        "hold_at_v_reset",
        "A",
        _SPEC,
        "while refractory the counter counts down and v is held at v_reset, with no integration",
    )
    readout_threshold: float = _f(
        3.4028234663852886e38, "A", _SPEC, "threshold of a non-spiking readout (largest finite float32)"
    )
    layer_latency_ticks: int = _f(1, "V", "published SpiNNaker2 NIR scripts run T+1 ticks", "latency per layer")

    # --- fixed-point profile (section 4) ---
    fixed_v_frac_bits: int = _f(15, "A", _SPEC, "membrane, currents, threshold and i_offset are int32 s16.15")
    fixed_decay_frac_bits: int = _f(16, "A", _SPEC, "decays are unsigned 0.16: alpha_q = round(alpha * 2^16)")
    fixed_decay_rounding: Rounding = _f(
        Rounding.HALF_UP, "A", _SPEC, "rounding of (alpha_q * v) >> 16: (alpha_q*v + 2^15) >> 16"
    )
    fixed_param_rounding: Rounding = _f(
        Rounding.HALF_EVEN, "A", "ours", "host-side rounding of float parameters onto the fixed-point grid"
    )

    # --- mapping onto PEs (issue 4; py-spinnaker2 is silent on most of these, so they are ours) ---
    max_atoms_per_core: tuple[tuple[str, int], ...] = _f(
        (
            ("spike_list", 1024),
            ("lif", 250),
            ("lif_no_delay", 250),
            ("lif_curr_exp", 250),
            ("lif_curr_exp_no_delay", 250),
            ("lif_conv2d", 1024),
        ),
        "A",
        "ours (250 LIF neurons per PE is the size used in published SpiNNaker2 SNN mappings)",
        "default largest number of neurons of each model placed on one PE",
    )
    neuron_state_bytes: tuple[tuple[str, int], ...] = _f(
        (
            ("spike_list", 0),
            ("lif", 24),
            ("lif_no_delay", 24),
            ("lif_curr_exp", 44),
            ("lif_curr_exp_no_delay", 44),
            ("lif_conv2d", 24),
        ),
        "A",
        "ours: one 32-bit word per state variable and per parameter (LIF: v, threshold, alpha_decay, "
        "i_offset, v_reset, reset flag; CUBA adds i_exc, i_inh, exc_decay, inh_decay, refractory counter)",
        "SRAM bytes per neuron on its PE",
    )
    spike_time_bytes: int = _f(4, "A", "ours", "SRAM bytes per (neuron, tick) entry of a spike_list source")
    synapse_word_bytes: int = _f(4, "A", "ours (board image layout)", "bytes per synapse row entry")
    synapse_word_layout: tuple[tuple[str, int, int], ...] = _f(
        (("weight", 0, 8), ("delay", 8, 3), ("inhibitory", 11, 1), ("target", 12, 20)),
        "A",
        "ours (board image layout, docs/image-format.md)",
        "(field, lowest bit, width) of a 32-bit synapse word: weight is two's-complement int8, "
        "inhibitory is 1 when the weight is negative, target is the post neuron's index on its PE",
    )
    routing_entry_rule: str = _f(
        "per_source_pe_and_chip",
        "A",
        "ours",
        "one routing entry per (source PE, chip that holds one of its targets), plus one on the source chip",
    )

    # --- cost model (issue 4; estimates, not measurements) ---
    pe_clock_hz: float = _f(200e6, "A", "SpiNNaker2 papers quote 150-300 MHz PE clocks", "PE clock")
    cycles_per_synaptic_event: int = _f(
        12, "A", "estimate: no public per-event cycle count for the py-spinnaker2 apps", "cycles per delivered synapse"
    )
    cycles_per_neuron_update: int = _f(
        40, "A", "estimate: no public per-update cycle count", "cycles per neuron update (one neuron, one tick)"
    )
    energy_per_synaptic_event_j: float = _f(
        10e-12, "A", "order of magnitude of published SpiNNaker2 figures; estimate", "energy per synaptic event"
    )
    energy_per_neuron_update_j: float = _f(
        30e-12, "A", "estimate", "energy per neuron update"
    )
    energy_per_mac_j: float = _f(1e-12, "A", "order of magnitude of published MLA figures; estimate", "energy per int8 MAC")
    static_power_per_pe_w: float = _f(
        1.5e-3, "A", "chip_power_w lower end / pes_per_chip, rounded; estimate", "idle power of one used PE"
    )

    # --- DNN scheduler model (issue 14; the layer-sequential OctopuScheduler scheme) ---
    dnn_layer_overhead_s: float = _f(
        13e-6, "P", "Jobst et al., ICONS 2025 (about 13 us per layer)", "scheduling overhead per DNN layer"
    )
    dnn_scheduler_pes: int = _f(
        1, "P", "Jobst et al., ICONS 2025 (one scheduler PE drives the workers)", "PEs that schedule, not compute"
    )
    dram_bytes_per_s: float = _f(
        4e9, "A", "estimate: LPDDR4 of one chip shared by its PEs; no public sustained figure",
        "DRAM bandwidth available to one chip's DNN layers",
    )

    # --- int8 MAC layer (section 5) ---
    mla_shift_rounding: Rounding = _f(Rounding.FLOOR, "A", _SPEC, "requantization shift is a truncating shift")

    # --- EGRU (section 6): the integer profile is ours; the float32 profile's activations too ---
    egru_frac_bits: int = _f(
        12, "A", _SPEC + " (ours)",
        "EGRU integer profile: inputs, events y, state h, biases, thresholds and gate values are int16 Q3.12 "
        "(value = q / 2^12), every stored value saturating to int16",
    )
    egru_weight_bits: int = _f(
        8, "A", _SPEC + " (ours)", "EGRU integer weights are signed, used symmetrically: 8 bits = [-127, 127]"
    )
    egru_weight_exponent_range: tuple[int, int] = _f(
        (0, 31), "A", "ours",
        "per output unit a power-of-two scale for its input and one for its recurrent weights: real w = q * 2^-e, "
        "e the largest in this range with max(abs(w)) * 2^e <= 127 over that unit's weights",
    )
    egru_requant_rounding: Rounding = _f(
        Rounding.HALF_UP, "A", "ours", "rounding of the int32 accumulator's right shift by e onto Q3.12"
    )
    egru_product_rounding: Rounding = _f(
        Rounding.HALF_UP, "A", "ours", "rounding of the Q3.12 products r*(R_g y + b_rg), z*h, (1-z)*g: (a*b) >> 12"
    )
    egru_sigmoid_lut_entries: int = _f(
        4096, "A", "ours", "int16 entries of the sigmoid table: entry = round_half_even(sigmoid(bin centre) * 2^12)"
    )
    egru_tanh_lut_entries: int = _f(
        4096, "A", "ours", "int16 entries of the tanh table: entry = round_half_even(tanh(bin centre) * 2^12)"
    )
    egru_lut_input_range: tuple[float, float] = _f(
        (-8.0, 8.0), "A", "ours",
        "input range [lo, hi) of both tables; index = (sat16(a) - lo) >> shift (floor), clamped to the table, "
        "2^shift = (hi - lo) * 2^12 / entries",
    )
    egru_float32_exp: str = _f(
        "cephes_expf", "A",
        "ours: the float32 EGRU code's expf is not public; Cephes expf (Moshier) with one rounding per operation",
        "float32 profile: sigmoid = 1/(1+e) or e/(1+e) with e = exp(-abs(a)), tanh = +-(1-e)/(1+e) with "
        "e = exp(-2 abs(a)), exp by Cephes expf's reduction and polynomial, arguments clamped to [-87, 0]",
    )
    egru_accumulation_order: str = _f(
        "input_unit_index", "A", "Nazeer et al. (AICAS 2024) process one event packet at a time; order ours",
        "float32 profile: a unit's input and recurrent sums are separate accumulators starting at +0, each adding "
        "one contribution per input unit with an event, in index order",
    )
    egru_layer_latency_ticks: int = _f(
        0, "A", "ours (as the EvNN reference)", "layer l at step t consumes layer l-1's events of the same step"
    )

    def __post_init__(self):
        if self.cuba_current_order not in ("current", "previous"):
            raise ValueError(
                f"cuba_current_order must be 'current' or 'previous', got {self.cuba_current_order!r}"
            )
        if self.refractory_rule != "hold_at_v_reset":
            raise ValueError(f"refractory_rule {self.refractory_rule!r} is not implemented")
        if not self.flush_subnormals:
            raise ValueError("flush_subnormals=False is not implemented: XLA on CPU flushes float32 subnormals")
        if not self.i_offset_after_input:
            raise ValueError("i_offset_after_input=False is not implemented")
        if not self.conv_cross_correlation:
            raise ValueError("conv_cross_correlation=False (flipped kernels) is not implemented")
        if self.fused_multiply_add:
            raise ValueError("fused_multiply_add=True is not implemented: the chip model rounds alpha*v")
        if not 1 <= self.fixed_decay_frac_bits <= 16:
            raise ValueError(f"fixed_decay_frac_bits must be in [1, 16], got {self.fixed_decay_frac_bits}")
        if not 0 <= self.fixed_v_frac_bits <= 30:
            raise ValueError(f"fixed_v_frac_bits must be in [0, 30], got {self.fixed_v_frac_bits}")
        self._check_egru()

    def _check_egru(self):
        if not 1 <= self.egru_frac_bits <= 14:
            raise ValueError(f"egru_frac_bits must be in [1, 14], got {self.egru_frac_bits}")
        if not 2 <= self.egru_weight_bits <= 8:
            raise ValueError(f"egru_weight_bits must be in [2, 8] (int8 storage), got {self.egru_weight_bits}")
        lo, hi = self.egru_weight_exponent_range
        if not 0 <= lo <= hi <= 31:
            raise ValueError(f"egru_weight_exponent_range must satisfy 0 <= lo <= hi <= 31, got {(lo, hi)}")
        lo, hi = self.egru_lut_input_range
        one = 2**self.egru_frac_bits
        if not (-32768 <= lo * one < hi * one <= 32768 and float(lo * one).is_integer()
                and float(hi * one).is_integer()):
            raise ValueError(f"egru_lut_input_range {(lo, hi)} must be on the Q grid, lo < hi, inside int16")
        for name in ("egru_sigmoid_lut_entries", "egru_tanh_lut_entries"):
            n = getattr(self, name)
            width = int((hi - lo) * one)
            if n < 2 or width % n or (width // n) & (width // n - 1):
                raise ValueError(f"{name}={n}: the table must split the input range into power-of-two bins")
        if self.egru_float32_exp != "cephes_expf":
            raise ValueError(f"egru_float32_exp {self.egru_float32_exp!r} is not implemented")
        if self.egru_accumulation_order != "input_unit_index":
            raise ValueError(f"egru_accumulation_order {self.egru_accumulation_order!r} is not implemented")
        if self.egru_layer_latency_ticks != 0:
            raise ValueError("egru_layer_latency_ticks != 0 is not implemented")

    # Per-kind numbers: the tables above hold the stock kinds (ALL_MODELS); a kind added through
    # s2jax.kinds takes the numbers its NeuronKind declares unless a table lists it. Those declared
    # numbers are not part of spec_json / the image's spec hash.

    def weight_range(self, model: str) -> tuple[int, int]:
        """Inclusive integer weight range of ``Projection`` synapses into a population of `model`
        (``Conv2DProjection`` kernels use ``conv_weight_range``)."""
        for name, rng in self.weight_ranges:
            if name == model:
                return rng
        rng = _kind(model).weight_range if model not in ALL_MODELS else None  # unknown names: kinds.get says so
        if rng is None:
            from s2jax import kinds

            takes = [n for n, _ in self.weight_ranges] + [n for n in kinds.neuron_names()
                                                          if n not in dict(self.weight_ranges)]
            raise ValueError(f"neuron model {model!r} takes no synapses; models with weights: {takes}")
        return rng

    def atoms_per_core(self, model: str) -> int:
        """Default largest number of ``model`` neurons on one PE."""
        table = dict(self.max_atoms_per_core)
        return table[model] if model in table or model in ALL_MODELS else _kind(model).atoms_per_core

    def state_bytes(self, model: str) -> int:
        """SRAM bytes one ``model`` neuron takes on its PE."""
        table = dict(self.neuron_state_bytes)
        return table[model] if model in table or model in ALL_MODELS else _kind(model).state_bytes

    def has_delays(self, model: str) -> bool:
        """Whether ``model``'s synapses take delays: ``delay_models`` decides for the stock kinds."""
        if model in self.delay_models or model in ALL_MODELS:
            return model in self.delay_models
        return _kind(model).delays


def _kind(model):
    from s2jax import kinds

    return kinds.get(model)


SPINNAKER2 = ChipSpec()


def assumptions_table(spec: ChipSpec = SPINNAKER2) -> str:
    """Markdown table of every field tagged A (assumption), with its value and source."""
    rows = ["| field | value | meaning | source |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(spec):
        if f.metadata.get("tag") != "A":
            continue
        value = getattr(spec, f.name)
        if isinstance(value, Rounding):
            value = value.name
        rows.append(f"| `{f.name}` | `{value}` | {f.metadata['doc']} | {f.metadata['source']} |")
    return "\n".join(rows)


def provenance(name: str, spec: ChipSpec = SPINNAKER2) -> dict:
    """Tag, source and meaning of one field, e.g. ``provenance("max_delay")["tag"] == "V"``."""
    for f in dataclasses.fields(spec):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(name)
