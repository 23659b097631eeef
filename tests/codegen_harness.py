"""The one harness that runs every kernel backend against the engine's reference.

Backends come from the target registry (the same list ``optinv verify`` runs:
C, the PyTorch adapter, CuPy, PyTorch on CUDA, and any target registered
later); the reference and the tolerance rule are verify's
(:mod:`optinv.verify.oracle`): one oracle, one tolerance.
"""

from __future__ import annotations

import shutil

from optinv.verify.backends import all_backends
from optinv.verify.oracle import check_op


def has_nvcc() -> bool:
    return shutil.which("nvcc") is not None


BACKENDS = all_backends()


def check_backend(module, backend, op: str, x, rng) -> None:
    """Compare one backend's op on rows ``x`` with the engine (random ``g``, ``u`` from ``rng``)."""
    check_op(module, backend, op, x, rng)
