"""The ``s2jax`` command."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="s2jax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="build a small network, run it on the chip model and print it")
    q.add_argument("--profile", choices=["float32", "fixed"], default="float32")
    sub.add_parser("assumptions", help="print the table of modelling assumptions (ChipSpec fields tagged A)")
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        from s2jax.quickstart import main as quickstart

        quickstart(profile=args.profile)
    elif args.command == "assumptions":
        from s2jax.spec import assumptions_table

        print(assumptions_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
