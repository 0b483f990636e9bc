"""End-to-end recipes for published SpiNNaker2 workloads."""
