"""NIR import from s2jax metadata: the exact ``qnet.Network`` or ``layers.SNN`` that
:func:`s2jax.export.nir.to_nir` wrote, rebuilt from the ``s2jax_*`` node metadata."""

from __future__ import annotations

import numpy as np

import nir
from s2jax import qnet
from s2jax.export.nir_common import _P, QNET_PARAMS, _kind, _md, _need, _pair, _text
from s2jax.spec import ChipSpec


def _by_kind(graph, kind: str, order_key: str) -> list:
    items = [(n, v) for n, v in graph.nodes.items() if _text(_md(v).get(_P + "kind", "")) == kind]
    return sorted(items, key=lambda nv: int(_need(_md(nv[1]), order_key, f"node {nv[0]!r}")))


def _restore_qnet(graph: nir.NIRGraph, spec: ChipSpec) -> qnet.Network:
    name = graph.metadata.get(_P + "network_name")
    net = qnet.Network(None if name is None else _text(name))
    pops = {}
    for node_name, node in _by_kind(graph, "population", "index"):
        md, where = _md(node), f"node {node_name!r}"
        model = _text(_need(md, "neuron_model", where))
        record = [r for r in _text(_need(md, "record", where)).split(",") if r]
        size = int(_need(md, "size", where))
        if model == "spike_list":
            idx, ticks = (np.asarray(_need(md, k, where), np.int64).reshape(-1) for k in ("spike_neuron", "spike_tick"))
            params: dict = {}
            for i, t in zip(idx.tolist(), ticks.tolist()):
                params.setdefault(i, []).append(t)
        else:
            params = {k: np.asarray(md[_P + "param_" + k], np.float64) for k in QNET_PARAMS if _P + "param_" + k in md}
            params = {k: (float(v) if v.ndim == 0 else v) for k, v in params.items()}
            params["reset"] = _text(_need(md, "reset", where))
        pop = qnet.Population(size, model, params, name=node_name, record=record)
        if int(md.get(_P + "max_atoms_per_core", 0)):
            pop.set_max_atoms_per_core(int(md[_P + "max_atoms_per_core"]))
        pops[node_name] = pop
        net.add(pop)
    for node_name, node in _by_kind(graph, "projection", "index"):
        md, where = _md(node), f"{_kind(node)} node {node_name!r}"
        pre, post = (pops[_text(_need(md, k, where))] for k in ("pre", "post"))
        if isinstance(node, nir.Conv2d):
            w = np.swapaxes(np.asarray(node.weight, np.float64), 0, 1)
            cp = {k: int(_need(md, "conv_" + k, where)) for k in qnet.CONV_KEYS}
            net.add(qnet.Conv2DProjection(pre, post, w, cp, spec=spec))
            continue
        conn = np.asarray(_need(md, "connections", where), np.int64).reshape(-1, 4)
        proj = qnet.Projection(pre, post, conn, spec=spec)
        dense = np.zeros((post.size, pre.size))
        np.add.at(dense, (proj.post_idx, proj.pre_idx), proj.weights)
        if not np.array_equal(dense, np.asarray(node.weight, np.float64)):
            raise ValueError(f"{where}: its weights differ from the synapses in its s2jax metadata (was the graph "
                             f"edited?); pass use_metadata=False to convert the NIR weights instead")
        net.add(proj)
    return net


def _restore_model(graph: nir.NIRGraph):
    from flax import nnx

    from s2jax import layers as L

    syns = dict(_by_kind(graph, "synapse", "layer"))
    cells = _by_kind(graph, "neuron", "layer")
    if len(syns) != len(cells):
        raise ValueError(f"s2jax metadata names {len(syns)} synapse and {len(cells)} neuron layers")
    syn_by_layer = {int(_md(v)[_P + "layer"]): (n, v) for n, v in syns.items()}
    layers, rngs = [], nnx.Rngs(0)
    for name, cell in cells:
        md = _md(cell)
        k = int(md[_P + "layer"])
        sname, snode = syn_by_layer[k]
        if isinstance(snode, nir.Conv2d):
            w = np.asarray(snode.weight, np.float32)
            syn = L.Conv(w.shape[1], w.shape[0], w.shape[2:], stride=_pair(snode.stride, "stride", sname),
                         padding=tuple(map(tuple, np.asarray(_need(_md(snode), "padding", sname)).tolist())),
                         pool=tuple(np.asarray(_need(_md(snode), "pool", sname)).tolist()), rngs=rngs)
            syn.kernel[...] = np.swapaxes(w, 0, 1)
        else:
            w = np.asarray(snode.weight, np.float32).T
            syn = L.Linear(w.shape[0], w.shape[1], rngs=rngs)
            syn.kernel[...] = w
        layers.append((syn, _restore_cell(md, f"node {name!r}")))
    remat = int(graph.metadata.get(_P + "remat", 0))
    kwargs = {} if remat == 0 else {"remat": True if remat == -1 else remat}
    return L.SNN(layers, latency=bool(graph.metadata.get(_P + "latency", True)), **kwargs)


def _restore_cell(md: dict, where: str):
    """A LIF / CubaLIF / LI cell exactly as :func:`_neuron_metadata` recorded it."""
    from dataclasses import replace

    from s2jax import layers as L
    from s2jax.surrogates import REGISTRY

    def f32(key):
        return np.asarray(_need(md, key, where), np.float32)

    kind = _text(_need(md, "cell", where))
    alpha = f32("alpha")
    common = {"alpha": alpha, "bias": bool(_need(md, "has_bias", where)),
              "learn_alpha": bool(_need(md, "learn_alpha", where))}
    if kind == "LI":
        cell = L.LI(alpha.shape, **common)
    else:
        common.update(threshold=f32("threshold"), reset=_text(_need(md, "reset", where)),
                      learn_threshold=bool(_need(md, "learn_threshold", where)))
        if kind == "CubaLIF":
            cell = L.CubaLIF(alpha.shape, exc_decay=f32("exc_decay"), inh_decay=f32("inh_decay"),
                             t_refrac=int(_need(md, "t_refrac", where)), **common)
        else:
            cell = L.LIF(alpha.shape, **common)
    cell.surrogate = REGISTRY[_text(_need(md, "surrogate", where))](float(_need(md, "surrogate_param", where)))
    cell.numerics = replace(cell.numerics, surrogate=cell.surrogate,
                            detach_reset=bool(_need(md, "detach_reset", where)))
    cell.v_reset[...] = f32("v_reset")
    if cell.bias is not None:
        cell.bias[...] = f32("bias")
    return cell
