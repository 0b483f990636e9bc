"""The DNN scheduler model: how a network of layers (MAC-array dense and conv layers, pooling) runs one
layer after another on one chip, each layer tiled over the worker PEs (issue 14; the scheme of the
OctopuScheduler, Jobst et al., ICONS 2025). Estimates from :class:`~s2jax.spec.ChipSpec` numbers,
not measurements.

Per layer, for a batch of ``batch`` samples:

- **tiles**: the layer's output units are cut into equal tiles, as many as there are workers (or
  units), and smaller where a tile would not fit one PE's SRAM (``sram_data_bytes_per_pe``) next
  to the bytes every PE of the layer holds (its kind's ``pe_bytes``, e.g. a conv kernel) and an
  input buffer of at most half the SRAM: ``units per tile = min((SRAM - pe_bytes - input buffer) //
  unit_bytes, ceil(units / workers))``, at least one;
- **workers**: ``min(tiles, pes_per_chip - dnn_scheduler_pes)``; tiles beyond that run in further
  rounds on the same workers;
- **DRAM traffic**: every array of the layer once, and per sample its input once per tile and its
  output once (weights and activations live in DRAM between layers). A tile reads the whole input:
  right for a dense layer, an upper bound for a conv tile, which needs only the input rows under
  its outputs;
- **time**: ``dnn_layer_overhead_s + max(compute, DRAM)``: DMA overlaps the MAC work; compute is
  ``rounds x`` the MACs of one tile for the batch ``/ macs_per_pe`` cycles at ``pe_clock_hz``;
  DRAM is the traffic over ``dram_bytes_per_s``;
- **MAC utilization**: the layer's MACs over what its workers could do in that time
  (``workers x macs_per_pe x pe_clock_hz x time``);
- **energy**: MACs x ``energy_per_mac_j`` plus the static power of the workers and the scheduler over
  the layer's time.

Layers run in sequence, so the network's latency is the sum. The ARM work of pooling and the
int8 requantization are not charged (they are small next to the MACs and the DRAM traffic).

Example::

    >>> import numpy as np
    >>> from s2jax import qnet
    >>> fc = qnet.Layer("mla_dense", {"w": np.ones((256, 512), np.int8)}, settings={"shift": 9}, name="fc")
    >>> plan = schedule(qnet.Network("mlp").add(fc))
    >>> plan.layers[0].workers, plan.layers[0].tiles, plan.layers[0].units_per_tile
    (128, 128, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2jax.qnet import Network
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["LayerSchedule", "Schedule", "schedule"]


@dataclass(frozen=True)
class LayerSchedule:
    """One layer's tiling, traffic, time and energy (per batch; see the module doc)."""

    name: str
    kind: str
    tiles: int
    workers: int
    units_per_tile: int
    sram_bytes_per_worker: int
    dram_bytes: int
    macs: int
    compute_s: float
    dram_s: float
    latency_s: float
    mac_utilization: float
    energy_j: float


@dataclass(frozen=True)
class Schedule:
    """Per-layer schedules in execution order, and the batch they are for."""

    layers: tuple[LayerSchedule, ...]
    batch: int

    @property
    def latency_s(self) -> float:
        """Layers run in sequence: the sum of their times."""
        return sum(layer.latency_s for layer in self.layers)

    @property
    def energy_j(self) -> float:
        return sum(layer.energy_j for layer in self.layers)

    def summary(self) -> str:
        """A text table, one line per layer, then the totals."""
        head = ("layer", "kind", "tiles", "workers", "SRAM B/worker", "DRAM bytes", "MACs", "us", "MAC util",
                "bound")
        rows = [head] + [(s.name, s.kind, str(s.tiles), str(s.workers), f"{s.sram_bytes_per_worker:,}",
                          f"{s.dram_bytes:,}", f"{s.macs:,}", f"{1e6 * s.latency_s:,.1f}",
                          f"{100 * s.mac_utilization:.1f}%", "DRAM" if s.dram_s > s.compute_s else "MACs")
                         for s in self.layers]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"total for a batch of {self.batch}: {1e6 * self.latency_s:,.1f} us, "
                     f"{1e9 * self.energy_j:,.1f} nJ (estimates)")
        return "\n".join(lines)


def _layer(layer, batch: int, spec: ChipSpec) -> LayerSchedule:
    kind, arrays, settings = layer.kind, layer.arrays, layer.settings
    sram = spec.sram_data_bytes_per_pe
    fixed = int(kind.pe_bytes(arrays, settings, spec))
    unit = max(1, int(kind.unit_bytes(arrays, settings, spec)))
    input_bytes = int(np.prod(layer.in_shape)) * layer.input_dtype.itemsize
    output_bytes = layer.size * layer.output_dtype.itemsize
    buffer = min(input_bytes, sram // 2)
    available = spec.pes_per_chip - spec.dnn_scheduler_pes
    per_tile = max(1, (sram - fixed - buffer) // unit)  # what fits one PE ...
    per_tile = min(per_tile, -(-layer.size // min(available, layer.size)))  # ... spread over the workers
    tiles = -(-layer.size // per_tile)
    workers = max(1, min(tiles, available))
    rounds = -(-tiles // workers)
    macs = int(kind.macs(arrays, settings)) * batch
    tile_macs = macs * per_tile / layer.size
    compute = rounds * tile_macs / spec.macs_per_pe / spec.pe_clock_hz
    dram_bytes = sum(int(a.nbytes) for a in arrays.values()) + batch * (input_bytes * tiles + output_bytes)
    dram = dram_bytes / spec.dram_bytes_per_s
    latency = spec.dnn_layer_overhead_s + max(compute, dram)
    peak = workers * spec.macs_per_pe * spec.pe_clock_hz * latency
    energy = macs * spec.energy_per_mac_j + (workers + spec.dnn_scheduler_pes) * spec.static_power_per_pe_w * latency
    return LayerSchedule(layer.name, kind.name, tiles, workers, per_tile, fixed + buffer + per_tile * unit,
                         dram_bytes, macs, compute, dram, latency, macs / peak, energy)


def schedule(net: Network, spec: ChipSpec = SPINNAKER2, *, batch: int = 1) -> Schedule:
    """The layer-sequential schedule of ``net``'s layers (module doc) for ``batch`` samples."""
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not isinstance(net, Network) or not net.layers:
        raise ValueError("schedule needs a qnet.Network of layers (MAC-array dense / conv, pooling)")
    if net.populations:
        raise ValueError(f"network {net.name!r} holds populations; the DNN scheduler model takes layers only")
    if spec.pes_per_chip <= spec.dnn_scheduler_pes:
        raise ValueError(f"pes_per_chip {spec.pes_per_chip} leaves no worker next to {spec.dnn_scheduler_pes} "
                         f"scheduler PE(s)")
    return Schedule(tuple(_layer(layer, int(batch), spec) for layer in net.layers), int(batch))
