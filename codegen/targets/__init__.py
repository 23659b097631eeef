"""The target registry: every code-generation target, by name.

A target (:class:`~optinv.codegen.targets.base.Target`) is one module here with
its printer, templates and file list, the runtime class packages load it with,
and the backends through which ``optinv verify`` and the test harness run it.
``compile``, the generated packages' dispatch, ``verify`` and the harness all
read this registry, so adding a target is one new module (plus its templates)
and one :func:`register` call.

>>> [t.name for t in targets()]
['c', 'cuda', 'torch', 'torch_library', 'jax', 'jax_ffi', 'triton', 'torch_cpp']
>>> [b.name for b in harness_backends()][:4]
['c-f64', 'c-f32', 'torch-f64', 'torch-f32']
"""

from __future__ import annotations

from optinv.algebra.errors import OptinvError
from optinv.codegen.targets import c, cuda, jax_ffi, jax_source, torch_cpp, torch_library, torch_source, triton_source
from optinv.codegen.targets.base import Backend, Target

#: Targets every package is generated for unless a request names others.
DEFAULT_TARGETS = ("c", "cuda", "torch", "torch_library", "jax", "jax_ffi", "triton", "torch_cpp")

_REGISTRY: dict[str, Target] = {}


def register(target: Target) -> Target:
    """Add ``target`` to the registry (a target of the same name is replaced)."""
    _REGISTRY[target.name] = target
    return target


def unregister(name: str) -> None:
    """Remove a target (tests that register a toy target clean up with this)."""
    _REGISTRY.pop(name, None)


def targets() -> list[Target]:
    """Registered targets, in registration order."""
    return list(_REGISTRY.values())


def get_target(name: str) -> Target:
    if name not in _REGISTRY:
        raise OptinvError(f"targets: unknown target {name!r}; expected some of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def harness_backends() -> list[Backend]:
    """Every registered target's backends, in registry order (the order ``optinv verify`` reports)."""
    return [b for t in targets() for b in t.backends]


register(c.TARGET)
register(cuda.TARGET)
register(torch_source.TARGET)
register(torch_library.TARGET)
register(jax_source.TARGET)
register(jax_ffi.TARGET)
register(triton_source.TARGET)
register(torch_cpp.TARGET)

__all__ = ["Backend", "DEFAULT_TARGETS", "Target", "get_target", "harness_backends", "register", "targets",
           "unregister"]
