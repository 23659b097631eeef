"""optinv: a symbolic compiler for minimal, complete rotation-invariant bases.

The engine lives in :mod:`optinv.algebra` (signatures, contraction graphs, rank
tests, selection); code generation in :mod:`optinv.codegen`.
"""

__version__ = "0.1.0"

from optinv.algebra.errors import OptinvError  # noqa: E402

__all__ = ["OptinvError", "__version__"]
