"""Deployment: design-rule checks, NIR, py-spinnaker2 bundles and the board image."""
