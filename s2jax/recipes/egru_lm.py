"""A character-level EGRU language model: float, integer QAT (== the chip model) and an LSTM.

The workload of Nazeer et al. (AICAS 2024), the first language model on a neuromorphic chip, on
the EGRU of Subramoney et al. (ICLR 2023), scaled to a CPU: characters are embedded, a stack of
EGRU layers turns them into sparse graded events, and a dense head predicts the next character
from the last layer's events. The chip runs the EGRU stack (``hwmodel.run`` on ``quant.quantize``'s network of ``egru`` layers); the
embedding lookup and the head run on the host, as in the paper's deployment.

Stages (:func:`run`): train the float EGRU with an activity penalty (mean ``|event|`` of every layer,
weight ``activity``) that drives most units silent; fine-tune a copy in the chip's integer
profile (``quant.qat`` with ``QuantConfig(profile="fixed")``: int8 weights with per-row power-of-two scales, Q3.12 events and
state, lookup-table gates); train an LSTM of about the same parameter count the same way; report
the test perplexity of all three, the event sparsity per layer and the chip cost per character
(:func:`egru_chip_cost`: ``hwmodel.estimate_cost`` of the chip model's run on the test windows).

The default corpus is built offline from the Python standard library's own source files (a fixed
list of modules; see :func:`default_corpus`), so every CPython install has it.
"""

from __future__ import annotations

import math
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from s2jax.layers.egru import EGRUStack
from s2jax import hwmodel, quant
from s2jax.qnet import Network
from s2jax.quant.egru import quantize_inputs
from s2jax.spec import SPINNAKER2

__all__ = ["LMConfig", "default_corpus", "load_corpus", "Vocab", "EGRULM", "LSTMLM", "train", "perplexity",
           "ChipEval", "chip_evaluation", "chip_perplexity", "egru_chip_cost", "run"]

CORPUS_MODULES = ("textwrap", "argparse", "string", "difflib", "csv", "fractions", "heapq", "bisect", "shlex",
                  "calendar", "colorsys", "glob", "fnmatch", "copy", "numbers", "statistics", "random", "pprint",
                  "queue", "sched")


@dataclass(frozen=True)
class LMConfig:
    seed: int = 0
    embed: int = 32
    hidden: tuple = (128, 128)
    threshold: float = 0.2
    seq_len: int = 64
    batch_size: int = 32
    steps: int = 1500
    lr: float = 3e-3
    activity: float = 4.0  # weight of the mean |event| penalty (sparsity)
    qat_steps: int = 300
    qat_lr: float = 5e-4
    max_chars: int = 400_000
    eval_batches: int = 20


def default_corpus(max_chars: int = 400_000) -> str:
    """The source of :data:`CORPUS_MODULES` from this Python's standard library, in that order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts = []
    for name in CORPUS_MODULES:
        path = stdlib / f"{name}.py"
        if path.exists():
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    text = "\n".join(parts)
    if len(text) < 10_000:
        raise FileNotFoundError(f"the standard library under {stdlib} has too little source for the default corpus; "
                                f"pass a text file with --text PATH")
    return text[:max_chars]


def load_corpus(path=None, max_chars: int = 400_000) -> str:
    """The text of ``path`` (UTF-8), or :func:`default_corpus` when ``path`` is None."""
    if path is None:
        return default_corpus(max_chars)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such text file")
    text = path.read_text(encoding="utf-8", errors="replace")[:max_chars]
    if len(text) < 1_000:
        raise ValueError(f"{path}: {len(text)} characters is too little text to train on (at least 1,000)")
    return text


class Vocab:
    """Characters <-> ids, sorted by code point."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray([self.index[c] for c in text], np.int32)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def split(ids: np.ndarray):
    """90% / 5% / 5% train / validation / test, contiguous."""
    n = len(ids)
    a, b = int(0.9 * n), int(0.95 * n)
    return ids[:a], ids[a:b], ids[b:]


def batches(ids: np.ndarray, seq_len: int, batch: int, rng: np.random.Generator):
    """Random windows: inputs ``(B, L)`` and next-character targets ``(B, L)``."""
    start = rng.integers(0, len(ids) - seq_len - 1, batch)
    idx = start[:, None] + np.arange(seq_len + 1)[None]
    w = ids[idx]
    return w[:, :-1], w[:, 1:]


def eval_windows(ids: np.ndarray, seq_len: int, n: int, batch: int):
    """Fixed, evenly spaced windows (the same for every model)."""
    starts = np.linspace(0, len(ids) - seq_len - 2, n * batch).astype(np.int64)
    idx = starts[:, None] + np.arange(seq_len + 1)[None]
    w = ids[idx].reshape(n, batch, seq_len + 1)
    return w[..., :-1], w[..., 1:]


class EGRULM(nnx.Module):
    """Embedding -> ``EGRUStack`` -> dense head on the last layer's events."""

    def __init__(self, vocab: int, config: LMConfig, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab, config.embed, rngs=rngs)
        self.rnn = EGRUStack(config.embed, config.hidden, threshold=config.threshold, rngs=rngs)
        self.head = nnx.Linear(config.hidden[-1], vocab, rngs=rngs)

    def __call__(self, tokens):
        out = self.rnn(self.embed(tokens))
        activity = sum(jnp.mean(jnp.abs(o)) for o in out.outputs) / len(out.outputs)
        return self.head(out.output), activity, out.event_rates


class LSTMLM(nnx.Module):
    """Embedding -> LSTM layers -> dense head (the non-event baseline)."""

    def __init__(self, vocab: int, embed: int, hidden: tuple, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab, embed, rngs=rngs)
        sizes = (embed, *hidden)
        self.layers = nnx.List([nnx.RNN(nnx.LSTMCell(a, b, rngs=rngs)) for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = nnx.Linear(hidden[-1], vocab, rngs=rngs)

    def __call__(self, tokens):
        h = self.embed(tokens)
        for layer in self.layers:
            h = layer(h)
        return self.head(h), jnp.float32(0.0), ()


def param_count(model) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))))


def lstm_matching(vocab: int, config: LMConfig, target: int) -> LSTMLM:
    """The LSTM (same embedding, same number of layers, equal widths) whose parameter count is
    closest to ``target``. The count is quadratic in the width: fitted on three widths, solved,
    and the integer widths around the root compared exactly."""

    def count(h):
        return param_count(nnx.eval_shape(lambda: LSTMLM(vocab, config.embed, (h,) * len(config.hidden),
                                                         nnx.Rngs(0))))

    xs = np.array([8.0, 16.0, 24.0])
    a, b, c = np.polyfit(xs, [count(int(x)) for x in xs], 2)
    roots = [r.real for r in np.roots([a, b, c - target]) if abs(r.imag) < 1e-9 and r.real > 0]
    guess = int(round(max(roots))) if roots else 8
    best = min(range(max(1, guess - 2), guess + 3), key=lambda h: abs(count(h) - target))
    return LSTMLM(vocab, config.embed, (best,) * len(config.hidden), nnx.Rngs(config.seed + 1))


def _loss(model, x, y, activity_weight):
    logits, activity, _ = model(x)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + activity_weight * activity, ce


def train(model, train_ids, config: LMConfig, *, steps: int, lr: float, activity: float, progress=None):
    """Adam with cosine decay on random windows; returns the model (trained in place) and the
    per-step training cross-entropy."""
    schedule = optax.cosine_decay_schedule(lr, steps, alpha=0.1)
    opt = nnx.Optimizer(model, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule)), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, x, y):
        (loss, ce), grads = nnx.value_and_grad(_loss, has_aux=True)(model, x, y, activity)
        opt.update(model, grads)
        return ce

    rng = np.random.default_rng(config.seed)
    curve = []
    with jax.numpy_dtype_promotion("standard"):
        for i in range(steps):
            x, y = batches(train_ids, config.seq_len, config.batch_size, rng)
            curve.append(float(step(model, opt, jnp.asarray(x), jnp.asarray(y))))
            if progress is not None:
                progress(i + 1, curve[-1])
    return model, np.asarray(curve)


def perplexity(model, ids, config: LMConfig):
    """``(perplexity, event rate per layer)`` over fixed evaluation windows (dropout off)."""
    xs, ys = eval_windows(ids, config.seq_len, config.eval_batches, config.batch_size)

    @nnx.jit
    def ce(model, x, y):
        logits, _, rates = model(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), rates

    total, rates = 0.0, []
    with jax.numpy_dtype_promotion("standard"):
        for x, y in zip(xs, ys):
            c, r = ce(model, jnp.asarray(x), jnp.asarray(y))
            total += float(c)
            rates.append([float(v) for v in r])
    return math.exp(total / len(xs)), np.mean(rates, axis=0) if rates and rates[0] else np.zeros(0)


class ChipEval(NamedTuple):
    """What :func:`chip_evaluation` measured: the perplexity, the head's logits per batch, the
    network the chip ran (``quant.quantize`` of the model) and one :class:`~s2jax.hwmodel.Trace`
    of every evaluated batch (``spikes`` and ``synaptic_events`` concatenated along the batch axis,
    ``neuron_updates``; no ``values`` or ``states``)."""

    perplexity: float
    logits: list
    net: object
    trace: object


def chip_evaluation(model, ids, config: LMConfig, batches: int | None = None) -> ChipEval:
    """The EGRU stack of an integer-QAT ``model`` run by the chip model (``hwmodel.run`` on
    ``quant.quantize``'s network of ``egru`` layers, integer profile) on the fixed evaluation
    windows; embedding and head on the host, as in QAT. The trace feeds :func:`egru_chip_cost`."""
    net = quant.quantize(model)
    last = net.layers[-1].name
    xs, ys = eval_windows(ids, config.seq_len, batches or config.eval_batches, config.batch_size)
    run = jax.jit(lambda x: hwmodel.run(net, x)[1])
    scale = jnp.float32(2.0**-SPINNAKER2.egru_frac_bits)
    total, logits_all, spikes, counts = 0.0, [], [], []
    for x, y in zip(xs, ys):
        emb = model.embed(jnp.asarray(x))
        trace = run(quantize_inputs(emb))
        logits = model.head(trace.values[last].astype(jnp.float32) * scale)
        logits_all.append(np.asarray(logits))
        total += float(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y)).mean())
        spikes.append({name: np.asarray(s) for name, s in trace.spikes.items()})
        counts.append(np.asarray(trace.synaptic_events))
    merged = hwmodel.Trace({name: np.concatenate([s[name] for s in spikes]) for name in trace.names}, {},
                           np.concatenate(counts), np.asarray(trace.neuron_updates), trace.names)
    return ChipEval(math.exp(total / len(xs)), logits_all, net, merged)


def chip_perplexity(model, ids, config: LMConfig, batches: int | None = None):
    """``(perplexity, logits per batch)`` of :func:`chip_evaluation`."""
    result = chip_evaluation(model, ids, config, batches)
    return result.perplexity, result.logits


def egru_chip_cost(net, trace, spec=SPINNAKER2) -> dict:
    """Per character (one tick) on the chip, from the cost model: :func:`s2jax.hwmodel.estimate_cost`
    of the network of ``egru`` layers ``net`` with ``trace`` (a :func:`~s2jax.hwmodel.run` of it,
    averaged over its batch and ticks; e.g. :func:`chip_evaluation`'s) and, for
    ``dense_synaptic_ops``, its worst case (every stored synapse every tick). Estimates from
    ``ChipSpec``'s cost constants.

    Keys: ``synaptic_events`` (synapses reached: every non-zero input or recurrent event reaches the
    non-zero weights of its kernel row, counted at the receiving layer), ``dense_synaptic_ops``,
    ``neuron_updates``, ``energy_j`` (events, updates and the static power of the PEs used over one
    tick), ``sparsity_gain`` (dense / active), ``pes``, ``latency_s`` (the busiest PE per tick).
    The embedding input into layer 0 is dense (every quantized embedding entry is in practice
    non-zero), so layer 0 receives its whole stored input kernel every character.

    The earlier formula (the pruning masks' density times the event rates of the QAT model) gave
    different numbers: the counts now take the stored int8 synapses, so weights that quantize to
    zero drop out and the dense count leaves out pruned synapses (``sparsity_gain`` then measures
    activity alone), a recurrent event is counted in the tick after it is sent, and the energy
    includes the PEs' static power.
    """
    if not isinstance(net, Network):
        raise TypeError(f"egru_chip_cost takes the chip network (quant.quantize(model)) and the trace of a "
                        f"hwmodel.run of it (chip_evaluation gives both), got {type(net).__name__}; event rates "
                        f"are no longer accepted")
    if trace is None:
        raise ValueError("egru_chip_cost needs the trace of a hwmodel.run of the network (chip_evaluation gives one)")
    mapping = hwmodel.map_to_cores(net, spec)
    active = hwmodel.estimate_cost(net, trace, spec, mapping)
    dense = hwmodel.estimate_cost(net, None, spec, mapping).synaptic_events_per_tick
    events = active.synaptic_events_per_tick
    return {"synaptic_events": events, "dense_synaptic_ops": dense, "neuron_updates": active.neuron_updates_per_tick,
            "energy_j": active.energy_per_tick_j, "sparsity_gain": dense / max(events, 1e-9), "pes": active.pes,
            "latency_s": active.latency_per_tick_s}


def run(config: LMConfig, text: str, *, quiet: bool = False) -> dict:
    """Train float EGRU, integer-QAT EGRU and the LSTM baseline on ``text``; return the figures."""
    from tqdm.auto import tqdm

    vocab = Vocab(text)
    tr, va, te = split(vocab.encode(text))
    need = config.seq_len + 2
    for name, part in (("training", tr), ("validation", va), ("test", te)):
        if len(part) < need:
            raise ValueError(f"the {name} split has {len(part)} characters, fewer than seq_len + 2 = {need}: "
                             f"use a longer text (at least {int(need / 0.05) + 1:,} characters) or a shorter seq_len")
    seconds = {}

    def bar(name, total):
        b = tqdm(total=total, desc=name, disable=quiet, dynamic_ncols=True)
        return b, (lambda i, ce: (b.update(1), b.set_postfix(ce=f"{ce:.3f}")))

    t = time.perf_counter()
    egru = EGRULM(len(vocab), config, nnx.Rngs(config.seed))
    b, cb = bar("float EGRU", config.steps)
    train(egru, tr, config, steps=config.steps, lr=config.lr, activity=config.activity, progress=cb)
    b.close()
    float_ppl, float_rates = perplexity(egru, te, config)
    seconds["float_egru"] = time.perf_counter() - t

    t = time.perf_counter()
    q = quant.qat(egru, quant.QuantConfig(profile="fixed"))
    b, cb = bar("integer QAT EGRU", config.qat_steps)
    train(q, tr, config, steps=config.qat_steps, lr=config.qat_lr, activity=config.activity, progress=cb)
    b.close()
    qat_ppl, qat_rates = perplexity(q, te, config)
    seconds["qat_egru"] = time.perf_counter() - t

    t = time.perf_counter()
    n_params = param_count(egru)
    lstm = lstm_matching(len(vocab), config, n_params)
    b, cb = bar("LSTM", config.steps)
    train(lstm, tr, config, steps=config.steps, lr=config.lr, activity=0.0, progress=cb)
    b.close()
    lstm_ppl, _ = perplexity(lstm, te, config)
    seconds["lstm"] = time.perf_counter() - t

    chip = chip_evaluation(q, te, config)
    cost = egru_chip_cost(chip.net, chip.trace)
    return {
        "chars": len(text), "vocab": len(vocab), "egru_params": n_params, "lstm_params": param_count(lstm),
        "lstm_hidden": lstm.layers[0].cell.hidden_features,
        "float_egru_perplexity": float_ppl, "qat_int_egru_perplexity": qat_ppl, "lstm_perplexity": lstm_ppl,
        "float_event_rate_per_layer": [float(r) for r in float_rates],
        "qat_event_rate_per_layer": [float(r) for r in qat_rates],
        "qat_sparsity_per_layer": [1.0 - float(r) for r in qat_rates],
        "chip_cost_per_char": cost, "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
