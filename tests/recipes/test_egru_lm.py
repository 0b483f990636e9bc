"""The EGRU language-model recipe: corpus, baselines, and the chip path equal to integer QAT."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from s2jax import hwmodel, quant
from s2jax.hwmodel.egru import run_egru
from s2jax.layers.egru import prune
from s2jax.quant.egru import qat_egru, quantize_egru, quantize_inputs
from s2jax.recipes import egru_lm as E

TINY = E.LMConfig(embed=8, hidden=(16, 16), seq_len=16, batch_size=4, steps=5, qat_steps=3, eval_batches=2)


@pytest.fixture(scope="module")
def data():
    text = E.default_corpus(20_000)
    vocab = E.Vocab(text)
    return text, vocab, E.split(vocab.encode(text))


def test_default_corpus_and_vocab(data, tmp_path):
    text, vocab, (tr, va, te) = data
    assert len(text) == 20_000 and "def " in text  # Python source from the standard library
    assert vocab.decode(vocab.encode(text[:200])) == text[:200]
    assert len(tr) + len(va) + len(te) == len(text)
    with pytest.raises(FileNotFoundError, match="no such text file"):
        E.load_corpus(tmp_path / "missing.txt")
    short = tmp_path / "short.txt"
    short.write_text("abc")
    with pytest.raises(ValueError, match="too little text"):
        E.load_corpus(short)


def test_lstm_baseline_matches_the_parameter_count(data):
    _, vocab, _ = data
    egru = E.EGRULM(len(vocab), TINY, nnx.Rngs(0))
    lstm = E.lstm_matching(len(vocab), TINY, E.param_count(egru))
    assert abs(E.param_count(lstm) - E.param_count(egru)) <= 0.05 * E.param_count(egru)


def test_chip_model_runs_the_integer_qat_stack_exactly(data):
    _, vocab, (tr, _, te) = data
    model = E.EGRULM(len(vocab), TINY, nnx.Rngs(0))
    E.train(model, tr, TINY, steps=TINY.steps, lr=TINY.lr, activity=TINY.activity)
    q = qat_egru(model, "int")
    E.train(q, tr, TINY, steps=TINY.qat_steps, lr=TINY.qat_lr, activity=TINY.activity)
    x, _ = E.eval_windows(te, TINY.seq_len, 1, TINY.batch_size)
    emb = q.embed(jnp.asarray(x[0]))
    out = q.rnn(emb)
    trace = run_egru(quantize_egru(q), quantize_inputs(emb), profile="int")
    for k in range(len(TINY.hidden)):
        chip = np.asarray(trace.outputs[k]).astype(np.float32) / 4096.0
        np.testing.assert_array_equal(chip, np.asarray(out.outputs[k]))
    ppl_qat, rates = E.perplexity(q, te, TINY)
    ppl_chip, _ = E.chip_perplexity(q, te, TINY)
    assert ppl_chip == pytest.approx(ppl_qat, rel=1e-5)  # same events; the head is float on the host
    assert len(rates) == 2 and all(0.0 <= r <= 1.0 for r in rates)


def test_chip_cost_is_the_cost_model_of_the_chip_run(data):
    """The recipe's cost per character is ``hwmodel.estimate_cost`` of the chip model's run over the
    evaluated batches, its dense count the worst case (every stored synapse every tick)."""
    _, vocab, (_, _, te) = data
    model = E.EGRULM(len(vocab), TINY, nnx.Rngs(0))
    prune(model, 0.5)
    q = quant.qat(model, quant.QuantConfig(profile="fixed"))
    chip = E.chip_evaluation(q, te, TINY)
    cost = E.egru_chip_cost(chip.net, chip.trace)

    net = quant.quantize(q)  # independently: quantize, run every evaluation batch, cost the traces
    xs, _ = E.eval_windows(te, TINY.seq_len, TINY.eval_batches, TINY.batch_size)
    inputs = [quantize_inputs(q.embed(jnp.asarray(x))) for x in xs]
    traces = [hwmodel.run(net, x)[1] for x in inputs]
    events = np.concatenate([np.asarray(t.synaptic_events) for t in traces])
    assert events.shape == (TINY.eval_batches * TINY.batch_size, TINY.seq_len, 2)
    np.testing.assert_array_equal(np.asarray(chip.trace.synaptic_events), events)
    trace = hwmodel.Trace({}, {}, events, traces[0].neuron_updates, traces[0].names)
    want = hwmodel.estimate_cost(net, trace)
    worst = hwmodel.estimate_cost(net)
    assert cost == {"synaptic_events": want.synaptic_events_per_tick, "dense_synaptic_ops": worst.synaptic_events_per_tick,
                    "neuron_updates": want.neuron_updates_per_tick, "energy_j": want.energy_per_tick_j,
                    "sparsity_gain": worst.synaptic_events_per_tick / want.synaptic_events_per_tick,
                    "pes": want.pes, "latency_s": want.latency_per_tick_s}
    assert cost["synaptic_events"] == pytest.approx(np.mean([hwmodel.estimate_cost(net, t).synaptic_events_per_tick
                                                             for t in traces]), rel=1e-12)  # mean of the batches

    # the counts follow the stored synapses: the worst case is every non-zero int8 weight, fewer than
    # the unpruned kernels; the dense embedding reaches all of layer 0's stored input kernel
    stored = [int(np.count_nonzero(layer.arrays["w_in"]) + np.count_nonzero(layer.arrays["w_rec"]))
              for layer in net.layers]
    assert cost["dense_synaptic_ops"] == sum(stored) < 8 * 48 + 3 * 16 * 48
    assert cost["neuron_updates"] == 32 and 0 < cost["synaptic_events"] < cost["dense_synaptic_ops"]
    assert all(bool(jnp.all(x != 0)) for x in inputs)
    np.testing.assert_array_equal(events[:, 0, 0], np.count_nonzero(net.layers[0].arrays["w_in"]))  # no events yet
    assert (events[..., 0] >= np.count_nonzero(net.layers[0].arrays["w_in"])).all()


def test_chip_cost_takes_a_network_and_a_trace():
    model = E.EGRULM(10, TINY, nnx.Rngs(0))
    with pytest.raises(TypeError, match="quant.quantize"):
        E.egru_chip_cost(model, [0.5, 0.25])
    with pytest.raises(ValueError, match="needs the trace"):
        E.egru_chip_cost(quant.quantize(quant.qat(model, quant.QuantConfig(profile="fixed"))), None)
