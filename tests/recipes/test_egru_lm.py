"""The EGRU language-model recipe: corpus, baselines, and the chip path equal to integer QAT."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from s2jax.hwmodel.egru import run_egru
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


def test_chip_cost_counts_events_along_their_fanout():
    model = E.EGRULM(10, TINY, nnx.Rngs(0))
    cost = E.egru_chip_cost(model, [0.5, 0.25])
    # embedding 8 -> layer 0's 48 input columns; layer 0: 0.5 * 16 units * (48 recurrent + 48 into layer 1);
    # layer 1: 0.25 * 16 * 48 recurrent
    events = 8 * 48 + 0.5 * 16 * 96 + 0.25 * 16 * 48
    assert cost["synaptic_events"] == pytest.approx(events)
    assert cost["neuron_updates"] == 32
    assert cost["sparsity_gain"] == pytest.approx((8 * 48 + 16 * 96 + 16 * 48) / events)
