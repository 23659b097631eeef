"""The symbolic engine: signatures, contraction graphs, exact rank tests, selection."""
