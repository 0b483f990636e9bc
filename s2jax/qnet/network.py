"""``Network``: the populations and projections of one network."""

from __future__ import annotations

from s2jax.qnet.checks import _check_name
from s2jax.qnet.population import Population
from s2jax.qnet.projection import Conv2DProjection, Projection

__all__ = ["Network"]


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
