"""Character-level EGRU language model: float EGRU, integer-QAT EGRU (what the chip model computes)
and an LSTM of about the same parameter count, trained the same way on the same text.

--text PATH: a UTF-8 text file. Default: a corpus built offline from this Python's standard
library source (textwrap.py, argparse.py, string.py, ... : s2jax.recipes.egru_lm.CORPUS_MODULES).
Prints test perplexities, the event sparsity per layer and the chip cost per character, and
writes them to --out (JSON, default s2jax-examples/egru_lm.json; its folder is created).
``--tiny --steps 5 --qat-steps 3 --hidden 16`` checks the whole run in seconds (the figures then
mean nothing).
"""

import argparse
import json
from pathlib import Path

from s2jax import io as fileio
from s2jax.recipes import egru_lm
from s2jax.recipes.dqn_pipeline import display_path

# --tiny: 20,000 characters of text, short sequences, small batches and embedding, a short evaluation
TINY = dict(max_chars=20_000, seq_len=16, batch_size=4, embed=8, eval_batches=2)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", help="UTF-8 text file (default: the standard-library corpus)")
    parser.add_argument("--steps", type=int, default=egru_lm.LMConfig.steps)
    parser.add_argument("--qat-steps", type=int, default=egru_lm.LMConfig.qat_steps)
    parser.add_argument("--hidden", type=int, nargs="+", default=list(egru_lm.LMConfig.hidden))
    parser.add_argument("--out", default="s2jax-examples/egru_lm.json", help="results file (JSON)")
    parser.add_argument("--tiny", action="store_true", help="little text, small batches: a seconds-long smoke test")
    args = parser.parse_args()
    config = egru_lm.LMConfig(steps=args.steps, qat_steps=args.qat_steps, hidden=tuple(args.hidden),
                              **(TINY if args.tiny else {}))
    text = egru_lm.load_corpus(args.text, config.max_chars)
    result = egru_lm.run(config, text)
    print(f"{result['chars']:,} characters, vocabulary {result['vocab']}")
    print(f"  float EGRU            perplexity {result['float_egru_perplexity']:.3f}  "
          f"({result['egru_params']:,} parameters)")
    print(f"  integer QAT EGRU      perplexity {result['qat_int_egru_perplexity']:.3f}  (= the chip model)")
    print(f"  LSTM                  perplexity {result['lstm_perplexity']:.3f}  ({result['lstm_params']:,} parameters)")
    print("  event sparsity per layer (QAT): "
          + ", ".join(f"{100 * s:.1f}%" for s in result["qat_sparsity_per_layer"]))
    cost = result["chip_cost_per_char"]
    print(f"  chip per character: {cost['synaptic_events']:,.0f} synaptic events "
          f"({cost['sparsity_gain']:.1f}x fewer than dense), {1e9 * cost['energy_j']:.1f} nJ (estimate)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fileio.atomic_write_text(args.out, json.dumps(result, indent=1))
    print(f"wrote {display_path(args.out)}")
