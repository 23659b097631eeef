"""The version of optinv (its own module, so that code generation can record it without importing the API)."""

__version__ = "0.1.0"
