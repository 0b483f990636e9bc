"""Build a small py-spinnaker2 style network, run it on the s2jax chip model and print the result."""

import argparse

from s2jax.quickstart import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=["float32", "fixed"], default="float32")
    parser.add_argument("--timesteps", type=int, default=50)
    args = parser.parse_args()
    main(profile=args.profile, timesteps=args.timesteps)
