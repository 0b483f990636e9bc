"""A stand-in for py-spinnaker2 in tests: it logs every call, checks types, runs s2jax's chip model.

Put ``tests/stub_spinnaker2`` (and the repository) on ``PYTHONPATH`` and a py-spinnaker2 script's
``from spinnaker2 import snn, hardware`` gets :mod:`spinnaker2.snn` and :mod:`spinnaker2.hardware`
from here. Every constructor and method call of those modules is appended to :data:`CALLS` as
``(name, object_id, args, kwargs)``, e.g. ``("snn.Population", 0, (), {"size": 3, ...})`` or
``("Population.set_max_atoms_per_core", 0, (8,), {})``; arguments are deep copies, stub objects
in them are replaced by ``("__stub_ref__", object_id)``, so the log is plain data.
:func:`network_from_calls` replays the log into an :class:`s2jax.qnet.Network`;
``SpiNNaker2Chip.run`` does exactly that, simulates it with :func:`s2jax.hwmodel.run` and, when
the environment variable ``SPINNAKER2_STUB_LOG`` names a file, writes :data:`CALLS` into it as
JSON (:func:`dump_calls`; tuples and NumPy arrays tagged, read back by :func:`load_calls`).

The type checks follow what s2jax's bundle script promises py-spinnaker2 (plain ``int``,
``float``, ``str`` and ``list`` in params and connections, an int8 NumPy kernel for convs); they are
stricter than the real library, which also takes NumPy values in some places.
"""

import copy
import itertools
import json

import numpy as np

REF = "__stub_ref__"
CALLS: list = []
_ids = itertools.count()


def new_id() -> int:
    return next(_ids)


def _plain(x):
    """A deep copy of ``x`` with every stub object replaced by ``(REF, its id)``."""
    if hasattr(x, "_stub_id"):
        return (REF, x._stub_id)
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return copy.deepcopy(x)


def _encode(x):
    if isinstance(x, tuple):
        return {"__tuple__": [_encode(v) for v in x]}
    if isinstance(x, list):
        return [_encode(v) for v in x]
    if isinstance(x, dict):
        return {"__dict__": [[_encode(k), _encode(v)] for k, v in x.items()]}
    if isinstance(x, np.ndarray):
        return {"__ndarray__": x.tolist(), "dtype": str(x.dtype)}
    if isinstance(x, np.generic):
        return {"__npscalar__": x.item(), "dtype": str(x.dtype)}
    return x


def _decode(x):
    if isinstance(x, list):
        return [_decode(v) for v in x]
    if isinstance(x, dict):
        if "__tuple__" in x:
            return tuple(_decode(v) for v in x["__tuple__"])
        if "__dict__" in x:
            return {_decode(k): _decode(v) for k, v in x["__dict__"]}
        if "__ndarray__" in x:
            return np.asarray(x["__ndarray__"], dtype=x["dtype"])
        if "__npscalar__" in x:
            return np.dtype(x["dtype"]).type(x["__npscalar__"])
    return x


def dump_calls(path, calls=None):
    """Write the call log as JSON (types kept: tuples, dicts, NumPy arrays and scalars are tagged)."""
    with open(path, "w") as f:
        json.dump(_encode(CALLS if calls is None else calls), f)


def load_calls(path):
    with open(path) as f:
        return _decode(json.load(f))


def log(name: str, obj, args: tuple, kwargs: dict):
    CALLS.append((name, obj._stub_id, _plain(tuple(args)), _plain(dict(kwargs))))


def network_from_calls(calls, network_id=None):
    """Replay a call log into an :class:`s2jax.qnet.Network` (the last ``snn.Network`` by default)."""
    from s2jax import qnet

    objects = {}

    def resolve(x):
        if isinstance(x, tuple) and len(x) == 2 and x[0] == REF:
            return objects[x[1]]
        if isinstance(x, (list, tuple)):
            return type(x)(resolve(v) for v in x)
        return x

    constructors = {"snn.Population": qnet.Population, "snn.Projection": qnet.Projection,
                    "snn.Conv2DProjection": qnet.Conv2DProjection, "snn.Network": qnet.Network}
    networks = []
    for name, obj_id, args, kwargs in calls:
        args = resolve(args)
        kwargs = {k: resolve(v) for k, v in kwargs.items()}
        if name in constructors:
            objects[obj_id] = constructors[name](*args, **kwargs)
            if name == "snn.Network":
                networks.append(obj_id)
        elif name == "Population.set_max_atoms_per_core":
            objects[obj_id].set_max_atoms_per_core(*args, **kwargs)
        elif name == "Network.add":
            objects[obj_id].add(*args, **kwargs)
    if not networks:
        raise ValueError("the log holds no snn.Network")
    return objects[networks[-1] if network_id is None else network_id]
