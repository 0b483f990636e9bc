"""Stand-in for ``spinnaker2.snn``: Population, Projection, Conv2DProjection, Network (see the package)."""

import numpy as np

from spinnaker2 import log, new_id

MODELS = ("spike_list", "lif", "lif_no_delay", "lif_curr_exp", "lif_curr_exp_no_delay", "lif_conv2d")
CONV_KEYS = ("in_height", "in_width", "stride_x", "stride_y", "pool_x", "pool_y",
             "pad_top", "pad_bottom", "pad_left", "pad_right")


def _int(x) -> bool:
    return type(x) is int


def _number(x) -> bool:
    return type(x) in (int, float)


def _need(ok: bool, what: str):
    if not ok:
        raise TypeError(what)


class Population:
    def __init__(self, size, neuron_model, params, name, record=None):
        self._stub_id = new_id()
        log("snn.Population", self, (), dict(size=size, neuron_model=neuron_model, params=params, name=name,
                                             record=record))
        _need(_int(size) and size > 0, f"size must be a positive int, got {size!r}")
        _need(neuron_model in MODELS, f"unknown neuron_model {neuron_model!r}")
        _need(type(name) is str, f"name must be a str, got {name!r}")
        _need(type(record) is list and all(r in ("spikes", "v", "time_done") for r in record),
              f"record must be a list of 'spikes' / 'v' / 'time_done', got {record!r}")
        _need(type(params) is dict, f"params must be a dict, got {type(params)}")
        for key, value in params.items():
            if neuron_model == "spike_list":
                _need(_int(key) and 0 <= key < size, f"spike_list neuron {key!r}")
                _need(type(value) is list and all(_int(t) and t >= 0 for t in value), f"spike ticks {value!r}")
            elif key == "reset":
                _need(value in ("reset_by_subtraction", "reset_to_v_reset"), f"reset {value!r}")
            else:
                per_neuron = type(value) is list and len(value) == size and all(_number(v) for v in value)
                _need(_number(value) or per_neuron,
                      f"param {key!r} must be an int / float or a list of {size}, got {type(value)} {value!r}")
        self.size, self.neuron_model, self.params, self.name, self.record = size, neuron_model, params, name, record
        self._spikes = self._voltages = None

    def set_max_atoms_per_core(self, n):
        log("Population.set_max_atoms_per_core", self, (n,), {})
        _need(_int(n) and n > 0, f"max atoms per core must be a positive int, got {n!r}")
        self.max_atoms_per_core = n

    def get_spikes(self):
        log("Population.get_spikes", self, (), {})
        if "spikes" not in self.record or self._spikes is None:
            raise RuntimeError(f"population {self.name!r}: no spikes recorded")
        return self._spikes

    def get_voltages(self):
        log("Population.get_voltages", self, (), {})
        if "v" not in self.record or self._voltages is None:
            raise RuntimeError(f"population {self.name!r}: no voltages recorded")
        return self._voltages


class Projection:
    def __init__(self, pre, post, connections):
        self._stub_id = new_id()
        log("snn.Projection", self, (), dict(pre=pre, post=post, connections=connections))
        _need(isinstance(pre, Population) and isinstance(post, Population), "pre and post must be Populations")
        _need(type(connections) is list, f"connections must be a list, got {type(connections)}")
        for row in connections:
            _need(type(row) is list and len(row) == 4 and all(_int(v) for v in row),
                  f"a connection must be a list of 4 ints [pre, post, w, d], got {row!r}")
        self.pre, self.post, self.connections = pre, post, connections


class Conv2DProjection:
    def __init__(self, pre, post, weights, conv_params):
        self._stub_id = new_id()
        log("snn.Conv2DProjection", self, (pre, post, weights, conv_params), {})
        _need(isinstance(pre, Population) and isinstance(post, Population), "pre and post must be Populations")
        _need(isinstance(weights, np.ndarray) and weights.dtype == np.int8 and weights.ndim == 4,
              f"weights must be a 4-d int8 numpy array, got {type(weights)}")
        _need(type(conv_params) is dict and sorted(conv_params) == sorted(CONV_KEYS)
              and all(_int(v) for v in conv_params.values()), f"conv_params must map {CONV_KEYS} to ints")
        self.pre, self.post, self.weights, self.conv_params = pre, post, weights, conv_params


class Network:
    def __init__(self, name=None):
        self._stub_id = new_id()
        log("snn.Network", self, (name,), {})
        _need(name is None or type(name) is str, f"name must be a str, got {name!r}")
        self.name, self.populations, self.projections = name, [], []

    def add(self, *objects):
        log("Network.add", self, objects, {})
        for obj in objects:
            if isinstance(obj, Population):
                target = self.populations
            else:
                _need(isinstance(obj, (Projection, Conv2DProjection)), f"cannot add {obj!r}")
                target = self.projections
            if not any(obj is o for o in target):
                target.append(obj)
