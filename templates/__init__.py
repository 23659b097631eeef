"""Jinja templates for generated C, CUDA and Python sources."""
