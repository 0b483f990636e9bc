"""``Network``: the populations, projections and layers of one network."""

from __future__ import annotations

from s2jax.qnet.checks import check_name as _check_name
from s2jax.qnet.layer import Layer
from s2jax.qnet.population import Population
from s2jax.qnet.projection import Conv2DProjection, Projection

__all__ = ["Network"]


class Network:
    """A set of populations and projections (py-spinnaker2's ``snn.Network``), and of
    :class:`~s2jax.qnet.Layer` nodes (EGRU, MAC-array layers), in the order they were added."""

    def __init__(self, name: str | None = None):
        self.name = _check_name(name, "network")
        self.populations: list[Population] = []
        self.projections: list[Projection | Conv2DProjection] = []
        self.layers: list[Layer] = []

    def _check_unique(self, obj):
        if any(n.name == obj.name for n in (*self.populations, *self.layers)):
            raise ValueError(f"network {self.name!r}: two nodes are named {obj.name!r}")

    def add(self, *objects):
        for obj in objects:
            if isinstance(obj, Population):
                if any(obj is p for p in self.populations):
                    continue
                if obj.name is None:
                    obj.name = f"pop{len(self.populations)}"
                if any(p.name == obj.name for p in self.populations):
                    raise ValueError(f"network {self.name!r}: two populations are named {obj.name!r}")
                self._check_unique(obj)
                self.populations.append(obj)
            elif isinstance(obj, Layer):
                if any(obj is n for n in self.layers):
                    continue
                if obj.pre is not None and not any(obj.pre is n for n in self.layers):
                    raise ValueError(f"network {self.name!r}: add layer {obj.pre.name!r} before the layer "
                                     f"{obj.name!r} that reads it")
                if obj.name is None:
                    name = f"layer{len(self.layers)}"
                    taken = {n.name for n in (*self.populations, *self.layers)}
                    while name in taken:
                        name += "_"
                    obj.name = name
                self._check_unique(obj)
                self.layers.append(obj)
            elif isinstance(obj, (Projection, Conv2DProjection)):
                if not any(obj is p for p in self.projections):
                    self.projections.append(obj)
            else:
                raise ValueError(f"network {self.name!r}: cannot add {obj!r} (not a Population, Projection or Layer)")
        return self

    def reset(self):
        """Forget the recordings of the last run (py-spinnaker2's ``Network.reset``). Every run of
        the chip model starts from the populations' initial state anyway, so this only clears what
        ``get_spikes`` / ``get_voltages`` / ``get_time_done_times`` would return."""
        for pop in self.populations:
            pop.clear_recording()
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
