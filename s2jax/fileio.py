"""Earlier name of :mod:`s2jax.io`, kept so existing imports work: ``s2jax.fileio`` *is* that module."""

import sys

from s2jax import io as _io

sys.modules[__name__] = _io
