"""Code generation: plan a Program from a Basis, emit sources from templates, build modules."""
