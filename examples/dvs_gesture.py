"""DVS gesture recognition with a convolutional SNN on SpiNNaker2's conv path: float, PTQ, QAT.

By default it runs on the synthetic gesture camera (no download, no extra install; a few minutes
on a laptop CPU). With ``--data PATH`` it runs on IBM's DVSGesture in tonic's layout: PATH holds
``DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy`` and ``DVSGesture/ibmGestureTest/...``
(docs/dvs-gesture.md); that needs the data extra (tonic): ``pip install -e ".[data]"``.
Results, plots, checkpoints, the NIR file and a py-spinnaker2 bundle go to ``--out``
(default s2jax-examples/dvs/). ``--tiny --epochs 1 --qat-epochs 1`` checks the whole pipeline in
seconds (the accuracies then mean nothing).
"""

import argparse

from s2jax.data import require_tonic
from s2jax.recipes.dvs import PRESETS
from s2jax.recipes.dvs_pipeline import format_table, run_pipeline

# --tiny: 40 training and 16 test synthetic gestures, a small network, small evaluation batches
TINY = dict(n_train=40, n_test=16, ticks=6, channels=(4, 8), hidden=16, batch_size=8, eval_batch=16)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", metavar="PATH", help='DVSGesture folder (default: synthetic gestures); '
                        'needs the data extra: pip install -e ".[data]"')
    parser.add_argument("--out", default="s2jax-examples/dvs", help="output folder (default s2jax-examples/dvs/)")
    parser.add_argument("--epochs", type=int, help="float training epochs (default: the preset's)")
    parser.add_argument("--qat-epochs", type=int, help="QAT fine-tuning epochs (default: the preset's)")
    parser.add_argument("--profile", choices=("float32", "fixed"), default="float32",
                        help="chip arithmetic: the stock float32 apps or the fixed-point profile")
    parser.add_argument("--cache", metavar="DIR", help="framed-data cache (default: OUT/cache)")
    parser.add_argument("--resume", action="store_true", help="reuse the checkpoints of an earlier run in OUT")
    parser.add_argument("--tiny", action="store_true", help="tiny data and network: a seconds-long smoke test")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    if args.data:
        try:
            require_tonic()
        except ImportError as err:
            parser.error(f"--data {args.data}: {err}")
    config = PRESETS["dvsgesture"].replace(data=args.data) if args.data else PRESETS["synthetic"]
    changes = {"epochs": args.epochs, "qat_epochs": args.qat_epochs, "cache_dir": args.cache}
    config = config.replace(profile=args.profile, **{k: v for k, v in changes.items() if v is not None})
    if args.tiny:
        config = config.replace(**TINY)
    print(format_table(run_pipeline(config, args.out, resume=args.resume, quiet=args.quiet)))
