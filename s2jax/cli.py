"""The ``s2jax`` command: check, inspect, export and simulate networks for SpiNNaker2.

FILE is any of: a NIR file (``.nir`` / HDF5, read with py-spinnaker2's conversion settings), a
py-spinnaker2 bundle folder (written by ``s2jax export --to pyspinnaker2``), or a board image
(``s2jax export --to image``). Bad input ends with exit status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import zipfile
import zlib
from pathlib import Path

#: Errors that bad input raises (a malformed, truncated or oversized file, a missing folder, a
#: value out of range, a run too large for memory): one line on stderr, exit status 2.
BAD_INPUT_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, OverflowError,
                    MemoryError, RecursionError)
#: Errors that point at a bug rather than at the input: also one line and exit status 2, marked as
#: internal, with the way to see the traceback (``S2JAX_TRACEBACK=1``).
INTERNAL_ERRORS = (KeyError, TypeError, IndexError, AttributeError)

EPILOG = """examples:
  s2jax check model.nir                 can the chip run it? every reason it cannot
  s2jax inspect model.nir               populations, PEs, memory and estimated cost
  s2jax export model.nir --to image --out model.s2img
  s2jax export model.nir --to pyspinnaker2 --out bundle/ --timesteps 100
  s2jax simulate bundle/ --timesteps 100
"""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _demo_count(limit_name: str):
    """An argparse type: a positive integer at most ``s2jax.recipes.dqn.<limit_name>``."""

    def parse(text):
        value = _positive_int(text)
        from s2jax.recipes import dqn

        limit = getattr(dqn, limit_name)
        if value > limit:
            raise argparse.ArgumentTypeError(f"{value:,} exceeds the limit of {limit:,} (dqn.{limit_name})")
        return value

    parse.__name__ = "bounded positive integer"
    return parse


def load_network(path, *, dt: float = 1e-3, integrator: str = "forward", reset: str = "subtract"):
    """A ``qnet.Network`` from a bundle folder, a board image or a NIR file (told apart by content).
    Devices, FIFOs and sockets are refused by name before they are opened."""
    from s2jax.export import image, pyspinnaker2
    from s2jax.export import nir as s2nir

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        if not (path / pyspinnaker2.NETWORK_FILE).is_file():
            raise FileNotFoundError(f"{path}: a folder, so a py-spinnaker2 bundle folder was expected, but "
                                    f"{path / pyspinnaker2.NETWORK_FILE} is missing (write one with "
                                    f"s2jax export --to pyspinnaker2)")
        return pyspinnaker2.load_pyspinnaker2(path)
    from s2jax.io import special_file_kind

    kind = special_file_kind(path)
    if kind:  # never opened: reading a FIFO would block forever
        raise ValueError(f"{path}: is {kind}, not a regular file (a NIR file, board image or bundle folder "
                         f"was expected)")
    with open(path, "rb") as f:
        head = f.read(len(image.MAGIC))
    if head == image.MAGIC:
        return image.load_image(path)
    return s2nir.from_nir(path, dt=dt, integrator=integrator, reset=reset, output="qnet")


def _check_out_folder(out: Path):
    """The folder ``out`` goes into must exist (named in the error, not a temporary file), and
    ``out`` must not be a device, FIFO or socket (never replaced)."""
    from s2jax.io import special_file_kind

    folder = out.parent
    if not folder.exists():
        raise FileNotFoundError(f"{out}: the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise NotADirectoryError(f"{out}: {folder} is not a folder")
    kind = special_file_kind(out)
    if kind:
        raise FileExistsError(f"{out}: exists and is {kind}, not a regular file; refusing to replace it")


def _weight_report(net) -> str | None:
    """The NIR import's weight quantization report, for networks read from a NIR file."""
    report = getattr(net, "nir_weight_report", None)
    if report is None:
        return None
    from s2jax.export.nir import format_weight_report

    return format_weight_report(report)


def _populations_table(net, mapping) -> str:
    rows = [f"{'population':<16} {'model':<22} {'neurons':>8} {'PEs':>5} {'max SRAM/PE (B)':>16}"]
    for pop in net.populations:
        slices = mapping.of(pop.name)
        sram = max((p.sram_bytes for p in slices), default=0)
        rows.append(f"{pop.name:<16} {pop.neuron_model:<22} {pop.size:>8} {len(slices):>5} {sram:>16,}")
    return "\n".join(rows)


def cmd_check(args) -> int:
    from s2jax.export import rules
    from s2jax.hwmodel.mapping import map_to_cores

    net = load_network(args.file, dt=args.dt, integrator=args.integrator, reset=args.reset)
    violations = rules.check(net, chips_available=args.chips)
    mapping = None if any(v.rule in rules.MAPPING_BLOCKERS for v in violations) else map_to_cores(net)
    if mapping is not None:
        print(f"network {net.name!r}: {len(net.populations)} populations on {mapping.pes} PE(s), "
              f"{mapping.chips} chip(s); routing entries per chip {list(mapping.routing_entries)}")
    report = _weight_report(net)
    if report:
        print(report)
    if not violations:
        print("OK: the chip can run this network")
        return 0
    print(f"{len(violations)} design-rule violation(s):")
    for v in violations:
        print(f"  - {v}")
    return 1


def cmd_inspect(args) -> int:
    from s2jax.hwmodel.cost import estimate_cost
    from s2jax.hwmodel.mapping import map_to_cores

    net = load_network(args.file, dt=args.dt, integrator=args.integrator, reset=args.reset)
    mapping = map_to_cores(net)
    n_syn = sum(getattr(p, "weights").size for p in net.projections)
    print(f"network {net.name!r}: {sum(p.size for p in net.populations):,} neurons, {n_syn:,} synapses "
          f"(conv kernels counted per tap), {mapping.pes} PE(s) on {mapping.chips} chip(s)")
    print(_populations_table(net, mapping))
    report = _weight_report(net)
    if report:
        print(report)
    print(estimate_cost(net, mapping=mapping).summary())
    return 0


def cmd_export(args) -> int:
    out = Path(args.out)
    _check_out_folder(out)  # before the (possibly long) import
    net = load_network(args.file, dt=args.dt, integrator=args.integrator, reset=args.reset)
    if args.to == "image":
        from s2jax.export import image

        image.save_image(net, out)
    elif args.to == "pyspinnaker2":
        from s2jax.export import pyspinnaker2

        pyspinnaker2.to_pyspinnaker2(net, out, timesteps=args.timesteps)
    else:
        import nir

        from s2jax.export import nir as s2nir
        from s2jax.io import atomic_write

        graph = s2nir.to_nir(net)
        atomic_write(out, lambda tmp: nir.write(tmp, graph))
    print(f"wrote {out}")
    return 0


def cmd_simulate(args) -> int:
    import jax
    import numpy as np

    from s2jax import hwmodel

    net = load_network(args.file, dt=args.dt, integrator=args.integrator, reset=args.reset)
    out = None
    if args.out:
        out = Path(args.out) if args.out.endswith(".npz") else Path(args.out + ".npz")
        _check_out_folder(out)
    hwmodel.check_run_size(net, 1, args.timesteps)  # before anything is compiled or allocated
    prog = hwmodel.compile_network(net, args.profile)
    inputs = hwmodel.spike_list_inputs(net, args.timesteps)
    _, trace = jax.jit(hwmodel.run, static_argnames="timesteps")(prog, inputs or None, timesteps=args.timesteps)
    print(f"{args.timesteps} ticks, {args.profile} profile")
    for name, s in trace.spikes.items():
        s = np.asarray(s[0])
        print(f"  {name:<16} {int(s.sum()):>8} spikes  ({s.any(axis=0).sum()} of {s.shape[1]} neurons fired)")
    if out is not None:
        from s2jax.io import save_npz

        arrays = {f"spikes/{k}": np.asarray(v[0]) for k, v in trace.spikes.items()}
        arrays.update({f"voltages/{k}": np.asarray(v[0]) for k, v in trace.voltages.items()})
        save_npz(out, arrays)
        print(f"wrote {out}")
    return 0


def cmd_demo(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder; --out names the folder the demo writes into")
    from s2jax.recipes import dqn
    from s2jax.recipes.dqn_pipeline import PRESETS, format_table, run_pipeline

    config = PRESETS.get(args.env, dqn.DQNConfig(env=args.env))
    changes = {"seed": args.seed}
    if args.steps is not None:
        changes["total_steps"] = args.steps
    if args.episodes is not None:
        changes["eval_episodes"] = args.episodes
    config = config.replace(**changes)
    dqn.make_env(config.env)  # a clear error for an unknown environment
    if args.env not in PRESETS:
        raise ValueError(f"{args.env}: no observation range is known for the population code; run it from "
                         f"Python with DQNConfig(env=..., obs_low=..., obs_high=...) (examples/dqn_custom_env.py)")
    weights = tuple(dict.fromkeys(args.weights))  # "--weights 8 8" means 8
    summary = run_pipeline(config, args.out, weights=weights, qat_steps=args.qat_steps, profile=args.profile,
                           resume=args.resume)
    print(format_table(summary))
    return 0


def _add_nir_options(p):
    p.add_argument("--dt", type=float, default=1e-3, help="NIR import: tick length in seconds (default 1e-3)")
    p.add_argument("--integrator", choices=["forward", "exponential"], default="forward",
                   help="NIR import: alpha_decay = 1 - dt/tau (forward) or exp(-dt/tau)")
    p.add_argument("--reset", choices=["subtract", "zero"], default="subtract", help="NIR import: reset mode")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2jax", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    q = sub.add_parser("quickstart", help="build a small network, run it on the chip model and print it")
    q.add_argument("--profile", choices=["float32", "fixed"], default="float32")
    sub.add_parser("assumptions", help="print the table of modelling assumptions (ChipSpec fields tagged A)")

    d = sub.add_parser("demo", help="the main job: a spiking DQN trained, fine-tuned on the chip model, exported",
                       description="Train a spiking Q-network with DQN in float, quantize it to each weight width "
                                   "(PTQ), fine-tune it against the chip's arithmetic (QAT), evaluate both on the chip "
                                   "model, export it (NIR, py-spinnaker2 bundle, board image) and print one table with "
                                   "a row per width.")
    d.add_argument("--env", default="CartPole-v1", help="gymnax environment (presets: CartPole-v1, Acrobot-v1)")
    d.add_argument("--out", default="s2jax-demo", help="output folder (default s2jax-demo/)")
    d.add_argument("--steps", type=_demo_count("MAX_STEPS"),
                   help="float training env steps (default: the preset's; at most 10^9)")
    d.add_argument("--qat-steps", type=_demo_count("MAX_STEPS"), default=50_000,
                   help="fine-tuning env steps (default 50000; at most 10^9)")
    d.add_argument("--episodes", type=_demo_count("MAX_EVAL_EPISODES"),
                   help="greedy evaluation episodes (default 100; at most 100000)")
    d.add_argument("--weights", type=int, nargs="+", choices=[8, 4], default=[8, 4], metavar="BITS",
                   help="weight widths, one table row each: 8 (lif_no_delay, weights in [-127, 127]) and/or 4 (lif, "
                        "the delay models, weights in [-15, 15]); default: 8 4")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--profile", choices=["float32", "fixed"], default="float32", help="chip numerics")
    d.add_argument("--resume", action="store_true", help="reuse checkpoints in --out whose settings match")

    c = sub.add_parser("check", help="design-rule check: can the chip run FILE, and every reason it cannot")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--chips", type=_positive_int, default=1, help="chips the network may span (default 1)")
    _add_nir_options(c)

    i = sub.add_parser("inspect", help="populations, sizes, PEs, memory per PE and estimated cost of FILE")
    i.add_argument("file", metavar="FILE")
    _add_nir_options(i)

    e = sub.add_parser("export", help="write FILE as a NIR file, a py-spinnaker2 bundle or a board image")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--to", choices=["nir", "pyspinnaker2", "image"], required=True)
    e.add_argument("--out", required=True, help="output file (nir, image) or folder (pyspinnaker2)")
    e.add_argument("--timesteps", type=_positive_int, default=100, help="ticks the py-spinnaker2 script runs (default 100)")
    _add_nir_options(e)

    s = sub.add_parser("simulate", help="run FILE on the chip model, inputs from its spike_list populations")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--timesteps", type=_positive_int, required=True)
    s.add_argument("--profile", choices=["float32", "fixed"], default="float32")
    s.add_argument("--out", help="save spikes and voltages to this .npz")
    _add_nir_options(s)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "quickstart":
        from s2jax.quickstart import main as quickstart

        quickstart(profile=args.profile)
        return 0
    if args.command == "assumptions":
        from s2jax.spec import assumptions_table

        print(assumptions_table())
        return 0
    handler = {"demo": cmd_demo, "check": cmd_check, "inspect": cmd_inspect, "export": cmd_export, "simulate": cmd_simulate}
    try:
        return handler[args.command](args)
    except BAD_INPUT_ERRORS + INTERNAL_ERRORS as err:
        if os.environ.get("S2JAX_TRACEBACK"):
            raise
        print(f"s2jax {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    """One line for stderr: the error's first line; internal errors (a bug, not bad input) say so."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(err, MemoryError):
        return f"out of memory ({text or 'MemoryError'}); the input asks for more than this machine has"
    if isinstance(err, RecursionError):
        return f"input nested too deeply ({text or 'RecursionError'})"
    if isinstance(err, INTERNAL_ERRORS) and not isinstance(err, BAD_INPUT_ERRORS):
        return (f"internal error {type(err).__name__}: {text or '(no message)'} (a bug in s2jax, please report it; "
                f"S2JAX_TRACEBACK=1 shows the traceback)")
    return text or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
