"""Reading a board image back: the network section's JSON checked field by field, each PE's
blocks turned into population parameters, synapses and conv kernels, and the rebuilt network
checked against the PE sections and routing table that ``map_to_cores`` gives for it."""

from __future__ import annotations

import json
import math

import numpy as np

from s2jax import kinds
from s2jax.export.image._format import (CONV_COLUMNS, NETWORK, PE, ROUTING, SPEC, ImageError, _block, _check_spec,
                                        _need, _one, _read_blocks, _routing_section, _sections, decode_words)
from s2jax.export.image._params import decode_params, join_params
from s2jax.hwmodel.mapping import MappingSizeError, map_to_cores
from s2jax.qnet import (CONV_KEYS, MAX_POPULATION_SIZE, MAX_SYNAPSES, Conv2DProjection, Network, Population,
                        Projection, spike_count_error)
from s2jax.spec import ChipSpec


def _network_doc(raw: bytes, path: str) -> dict:
    """The network section's JSON, with the type of every field checked."""
    where = f"{path}: network section"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError as e:
        raise ImageError(f"{where} is not UTF-8 JSON ({e})") from e
    except RecursionError:
        raise ImageError(f"{where}: JSON nested too deeply for Python's parser (the format nests at most "
                         f"4 levels)") from None

    def need(obj, key, kind, what):
        if not isinstance(obj, dict) or key not in obj:
            raise ImageError(f"{where}: {what} has no {key!r}")
        value = obj[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ImageError(f"{where}: {what} {key!r} is {value!r}; expected {kind}")
        return value

    pops = need(doc, "populations", list, "the document")
    projs = need(doc, "projections", list, "the document")
    if doc.get("name") is not None and not isinstance(doc["name"], str):
        raise ImageError(f"{where}: the network name is {doc['name']!r}; expected a string or null")
    for i, pd in enumerate(pops):
        need(pd, "name", str, f"population {i}")
        if need(pd, "model", str, f"population {i}") not in kinds.names():
            raise ImageError(f"{where}: population {i} has model {pd['model']!r}; expected one of "
                             f"{list(kinds.names())} (the registered kinds, s2jax.kinds)")
        if not 1 <= need(pd, "size", int, f"population {i}") <= MAX_POPULATION_SIZE:
            raise ImageError(f"{where}: population {i} ({pd['name']!r}) has size {pd['size']:,}; expected 1 to "
                             f"{MAX_POPULATION_SIZE:,} (MAX_POPULATION_SIZE)")
        need(pd, "record", list, f"population {i}")
        if pd.get("max_atoms_per_core") is not None:
            need(pd, "max_atoms_per_core", int, f"population {i}")
    for k, jd in enumerate(projs):
        kind = need(jd, "kind", str, f"projection {k}")
        if kind not in ("dense", "conv"):
            raise ImageError(f"{where}: projection {k} has kind {kind!r}; expected 'dense' or 'conv'")
        for end in ("pre", "post"):
            if not 0 <= need(jd, end, int, f"projection {k}") < len(pops):
                raise ImageError(f"{where}: projection {k} {end} population {jd[end]}; expected < {len(pops)}")
        if kind == "dense":
            if not 0 <= need(jd, "synapses", int, f"projection {k}") <= MAX_SYNAPSES:
                raise ImageError(f"{where}: projection {k} has {jd['synapses']:,} synapses; expected 0 to "
                                 f"{MAX_SYNAPSES:,} (MAX_SYNAPSES, synapses per projection)")
        else:
            need(jd, "kernel_shape", list, f"projection {k}")
            need(jd, "conv_params", dict, f"projection {k}")
    return doc


def _neuron_slice(blocks, model: str, n: int, where: str, spec: ChipSpec, check_rows, max_convs: int):
    """Parameters, synapses (``(projection, pre, local post, weight, delay)``) and convs of one PE.
    ``check_rows(rows, where)`` checks the synapse rows before their words are decoded; at most
    ``max_convs`` conv headers are read."""
    params = decode_params(blocks, model, n, where)
    rows = _need(blocks, "rows", "<u4", where, None, 4).astype(np.int64)
    words = _need(blocks, "words", "<u4", where, 1, None)[0]
    if rows[:, 3].sum() != words.size:
        raise ImageError(f"{where}: rows announce {int(rows[:, 3].sum())} synapse words, the words block has "
                         f"{words.size}")
    check_rows(rows, where)
    weight, delay, target = decode_words(words, spec, where)
    if target.size and target.max() >= n:
        raise ImageError(f"{where}: synapse target {int(target.max())}; expected < {n} (the slice size)")
    synapses = (rows, np.repeat(rows[:, 0], rows[:, 3]), np.repeat(rows[:, 2], rows[:, 3]), target, weight, delay)
    convs = []
    if max_convs or "conv" in blocks:  # PEs of conv targets (older images: empty blocks when no conv enters)
        head = _need(blocks, "conv", "<u4", where, None, len(CONV_COLUMNS)).astype(np.int64)
        if len(head) > max_convs:
            raise ImageError(f"{where}: {len(head):,} conv headers; the network section has {max_convs} conv "
                             f"projection(s) into this population")
        kernels = _need(blocks, "kernels", "i1", where, 1, None)[0]
        sizes = [math.prod(int(x) for x in row[1:5]) for row in head]  # Python ints: no int64 overflow
        if sum(sizes) != kernels.size:
            raise ImageError(f"{where}: conv headers announce {sum(sizes):,} kernel bytes, the kernels block "
                             f"has {kernels.size:,}")
        for row, kernel in zip(head, np.split(kernels, np.cumsum(sizes, dtype=np.int64)[:-1])):
            convs.append((int(row[0]), tuple(int(x) for x in row[1:]), kernel.tobytes()))
    return params, synapses, convs


def _spike_dict(pairs: np.ndarray) -> dict[int, np.ndarray]:
    """``{neuron: ticks}`` of ``(neuron, tick)`` rows, grouped with one sort (no loop per spike)."""
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    neurons, starts = np.unique(pairs[:, 0], return_index=True)
    return dict(zip(neurons.tolist(), np.split(pairs[:, 1], starts[1:])))


def _population(i: int, pd: dict, slices, proj_docs, synapses: dict, convs: dict, path: str, spec: ChipSpec):
    """Rebuild population ``i`` from its PE slices; collect its incoming synapses and conv kernels."""
    bounds = [(a, b) for a, b, _, _ in slices]
    if not bounds or bounds[0][0] != 0 or bounds[-1][1] != pd["size"] or any(
            b1 != a2 for (_, b1), (a2, _) in zip(bounds, bounds[1:])) or any(b <= a for a, b in bounds):
        raise ImageError(f"{path}: PE slices of population {pd['name']!r} are {bounds}; expected consecutive "
                         f"slices covering [0, {pd['size']})")
    model, params, per_pe = pd["model"], {}, []
    is_input = kinds.get(model).is_input
    if is_input:  # count first: the spike rows become Python lists
        entries = sum(blocks["spikes"].shape[0] for _, _, blocks, _ in slices if "spikes" in blocks)
        error = spike_count_error(entries, f"population {pd['name']!r}")
        if error:
            raise ImageError(f"{path}: {error}; refused before reading them")
    # Dense projections into this population: their pre population and the synapses still to find.
    into = {k: jd for k, jd in enumerate(proj_docs) if jd["kind"] == "dense" and jd["post"] == i}
    remaining = {k: jd["synapses"] for k, jd in into.items()}
    max_convs = sum(1 for jd in proj_docs if jd["kind"] == "conv" and jd["post"] == i)

    def check_rows(rows, where):
        """Each row names a dense projection into population ``i`` from its pre population, and no
        projection gets more synapse words than the network section states (before decoding)."""
        for proj, src in {(int(a), int(b)) for a, b in np.unique(rows[:, :2], axis=0)}:
            if proj not in into or into[proj]["pre"] != src:
                raise ImageError(f"{where}: synapse row of projection {proj} from population {src}; "
                                 f"expected a dense projection into population {i} from its pre population")
        for proj in np.unique(rows[:, 0]).tolist():
            remaining[proj] -= int(rows[rows[:, 0] == proj, 3].sum())
            if remaining[proj] < 0:
                raise ImageError(f"{where}: synapse rows of projection {proj} announce more words than its "
                                 f"{into[proj]['synapses']:,} synapses in the network section")

    spikes = []
    for start, stop, blocks, where in slices:
        if is_input:
            pairs = _need(blocks, "spikes", "<u4", where, None, 2).astype(np.int64)
            if pairs.size and pairs[:, 0].max() >= stop - start:
                raise ImageError(f"{where}: spike_list neuron {int(pairs[:, 0].max())}; expected < {stop - start}")
            spikes.append(pairs + [start, 0])
        else:
            local, (_, k, pre, target, weight, delay), pe_convs = _neuron_slice(
                blocks, model, stop - start, where, spec, check_rows, max_convs)
            per_pe.append(local)
            for proj in np.unique(k):
                sel = k == proj
                synapses[int(proj)].append(np.stack([pre[sel], target[sel] + start, weight[sel], delay[sel]], 1))
            for proj, shape, kernel in pe_convs:
                if convs.setdefault(proj, (shape, kernel)) != (shape, kernel):
                    raise ImageError(f"{where}: conv projection {proj} differs from its copy on another PE of the "
                                     f"same population; expected identical copies")
        if blocks:
            raise ImageError(f"{where}: unexpected block(s) {sorted(blocks)} for model {model!r}")
    if spikes:
        params = _spike_dict(np.concatenate(spikes))
    if not is_input:
        params = join_params(model, per_pe, f"{path}: population {pd['name']!r}")
    try:
        pop = Population(pd["size"], model, params, name=pd["name"], record=pd["record"])
        if pd.get("max_atoms_per_core") is not None:
            pop.set_max_atoms_per_core(pd["max_atoms_per_core"])
    except ValueError as e:
        raise ImageError(f"{path}: {e}") from e
    return pop


def _projection(k: int, jd: dict, pops, synapses: dict, convs: dict, path: str, spec: ChipSpec):
    pre, post = pops[jd["pre"]], pops[jd["post"]]
    where = f"{path}: projection {k} ({pre.name!r} -> {post.name!r})"
    try:
        if jd["kind"] == "dense":
            rows = np.concatenate(synapses[k]) if synapses[k] else np.zeros((0, 4), np.int64)
            if len(rows) != jd["synapses"]:
                raise ImageError(f"{where}: {len(rows)} synapse words found on the PEs; the network section says "
                                 f"{jd['synapses']}")
            return Projection(pre, post, rows, spec=spec)
        if k not in convs:
            raise ImageError(f"{where}: no PE of population {post.name!r} holds its kernel")
        shape, kernel = convs[k]
        params = dict(zip(CONV_KEYS, shape[4:]))
        if list(shape[:4]) != jd["kernel_shape"] or params != jd["conv_params"]:
            raise ImageError(f"{where}: the PE copy (kernel {list(shape[:4])}, {params}) differs from the network "
                             f"section (kernel {jd['kernel_shape']}, {jd['conv_params']})")
        weights = np.frombuffer(kernel, np.int8).reshape(shape[:4]).astype(np.int32)
        return Conv2DProjection(pre, post, weights, params, spec=spec)
    except ImageError:
        raise
    except ValueError as e:
        raise ImageError(f"{path}: {e}") from e


def _decode(data: bytes, spec: ChipSpec, path: str) -> Network:
    digest, sections = _sections(data, path)
    _check_spec(digest, _one(sections, SPEC, path), spec, path)
    doc = _network_doc(_one(sections, NETWORK, path), path)
    pop_docs, proj_docs = doc["populations"], doc["projections"]
    pes = sorted((s for s in sections if s[0] == PE), key=lambda s: s[1])
    if [s[1] for s in pes] != list(range(len(pes))):
        raise ImageError(f"{path}: PE section ids {[s[1] for s in pes]}; expected 0 .. {len(pes) - 1}, each once")
    per_pop = {i: [] for i in range(len(pop_docs))}
    placed = []  # (population index, start, stop) of every PE, in PE order
    for _, ident, body, label in pes:
        where = f"{path}: {label}"
        blocks = _read_blocks(body, where)
        pop_i, start, stop, chip, pe = (int(x) for x in _need(blocks, "slice", "<u4", where, 1, 5)[0])
        if pop_i >= len(pop_docs):
            raise ImageError(f"{where}: population index {pop_i}; expected < {len(pop_docs)}")
        if (chip, pe) != divmod(ident, spec.pes_per_chip):
            raise ImageError(f"{where}: placed on chip {chip}, PE {pe}; expected chip {ident // spec.pes_per_chip}, "
                             f"PE {ident % spec.pes_per_chip} (global PE {ident}, {spec.pes_per_chip} PEs per chip)")
        per_pop[pop_i].append((start, stop, blocks, where))
        placed.append((pop_i, start, stop))

    synapses, convs = {k: [] for k in range(len(proj_docs))}, {}
    pops = [_population(i, pd, sorted(per_pop[i], key=lambda s: s[0]), proj_docs, synapses, convs, path, spec)
            for i, pd in enumerate(pop_docs)]
    try:
        net = Network(doc.get("name"))
        net.add(*pops)
    except ValueError as e:
        raise ImageError(f"{path}: {e}") from e
    for k, jd in enumerate(proj_docs):
        net.add(_projection(k, jd, pops, synapses, convs, path, spec))

    # The PE sections and the routing table must be what map_to_cores gives for the rebuilt network.
    try:
        mapping = map_to_cores(net, spec)
    except MappingSizeError as e:
        raise ImageError(f"{path}: {e}") from e
    index = {p.name: i for i, p in enumerate(pops)}
    expected = [(index[p.population], p.start, p.stop) for p in mapping.placements]
    if placed != expected:
        raise ImageError(f"{path}: the PE sections hold slices {placed[:8]}...; map_to_cores of the network "
                         f"gives {expected[:8]}... (population index, start, stop)")
    where = f"{path}: routing section"
    routing = _read_blocks(_one(sections, ROUTING, path), where)
    routes = _need(routing, "routes", "<u4", where, None, 3)
    targets = _need(routing, "targets", "<u4", where, 1, None)
    if routing or _block("routes", routes) + _block("targets", targets) != _routing_section(mapping):
        raise ImageError(f"{where}: the routing table ({len(routes)} entries) disagrees with the one the network "
                         f"maps to ({len(mapping.routes)} entries, per chip {list(mapping.routing_entries)})")
    return net
