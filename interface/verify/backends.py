"""The backends verify and the test harness run: every registered target's, by name or kind."""

from __future__ import annotations

from optinv.algebra.errors import OptinvError
from optinv.codegen.targets import harness_backends
from optinv.codegen.targets.base import Backend


def all_backends() -> list[Backend]:
    """Every backend of every registered target, in report order."""
    return harness_backends()


def backend_names() -> list[str]:
    return [b.name for b in all_backends()]


def float64_twin(backend: Backend) -> Backend:
    """The float64 backend of the same kind (finite differences are taken in float64)."""
    return next(b for b in all_backends() if b.kind == backend.kind and b.dtype == "float64")


# Emulations of GPU code on the CPU: how the test suite checks CUDA and Triton kernels without a
# device, not a way anyone runs a module.  Slow (the Triton interpreter runs row blocks in
# Python), so verify runs them only when asked (by name, kind or ``all``).
EMULATION_KINDS = ("cuda-host", "triton-interpret")
# Backends that compile the module against PyTorch's C++ headers (20-60 s per module on one core):
# verify runs them only when asked too.
COMPILED_KINDS = ("torch-cpp",)


def parse_backends(spec) -> list[Backend]:
    """Backends by name (``c-f64``) or kind (``c``, ``torch``, ``cuda``), or ``all``.

    None: every backend except the CPU emulations of GPU code (:data:`EMULATION_KINDS`) and the
    C++ operators (:data:`COMPILED_KINDS`).
    """
    everything = all_backends()
    if spec is None:
        return [b for b in everything if b.kind not in EMULATION_KINDS + COMPILED_KINDS]
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if items == ["all"]:
        return everything
    chosen = []
    for item in items:
        match = [b for b in everything if item in (b.name, b.kind)]
        if not match:
            kinds = ", ".join(dict.fromkeys(b.kind for b in everything))
            raise OptinvError(f"--backends: unknown backend {item!r}; expected some of "
                              f"{', '.join(b.name for b in everything)} or {kinds}")
        chosen += [b for b in match if b not in chosen]
    if not chosen:
        raise OptinvError("--backends: expected at least one backend")
    return sorted(chosen, key=everything.index)
