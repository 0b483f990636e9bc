"""Deployment: design-rule checks, NIR both ways, py-spinnaker2 bundles and the board image."""

from s2jax.export.image import ImageError, load_image, save_image
from s2jax.export.nir import NIRFileError, from_nir, to_nir
from s2jax.export.pyspinnaker2 import Difference, compare, load_pyspinnaker2, load_results, to_pyspinnaker2
from s2jax.export.rules import DesignRuleError, Violation, check, require_deployable

__all__ = ["DesignRuleError", "Difference", "ImageError", "NIRFileError", "Violation", "check", "compare",
           "from_nir", "load_image", "load_pyspinnaker2", "load_results", "require_deployable", "save_image",
           "to_nir", "to_pyspinnaker2"]
