"""Target ``torch_cpp``: the C kernels as PyTorch operators registered from C++ (``TORCH_LIBRARY``).

One file, ``torch_ops.cpp``: operators ``forward``, ``vjp``, ``jvp``, ``hvp``
and ``invariants`` under the namespace ``optinv_cpp_<name>_<sha256 of
kernels.c, 12 hex>`` (a TorchScript model saved against one version of the
kernels cannot bind to another), with CPU, meta and autograd kernels.  The
runtime (:mod:`optinv.codegen.runtime.torch_cpp`) compiles it with ``kernels.c``
into the build cache; the package exports ``torch_cpp_library()`` (the checked
``.so``, loaded), ``torch_cpp_ops()`` and ``torch_cpp_invariants(x)``.  A
process that only loads the ``.so`` runs TorchScript models calling the
operators, which is what LAMMPS and C++ deployments need.

The harness kind ``torch-cpp`` runs every op through autograd of the
registered operators (VJP by backward, JVP and HVP by double backward).
Compiling against PyTorch's headers takes about a minute per module, so
verify runs it only when asked (``--backends torch-cpp`` or ``all``).

CPU tensors only; why, and what to use on CUDA tensors: see
:mod:`optinv.codegen.runtime.torch_cpp`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil

from optinv.codegen.printer import KernelPrinter
from optinv.codegen.targets import c
from optinv.codegen.targets.base import ARG_ORDER, KERNEL_DOCS, Target, backends_for, torch_caller


def namespace(name: str, kernels_c: str) -> str:
    """The operators' namespace: the module name and the kernels' hash (the package computes the same)."""
    return f"optinv_cpp_{name}_{hashlib.sha256(kernels_c.encode()).hexdigest()[:12]}"


def torch_cpp_unavailable() -> str | None:
    """Why the C++ operators cannot be built here, or None."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not importable (pip install 'optinv[torch]')"
    from optinv.codegen.runtime.torch_cpp import cxx_compiler

    if cxx_compiler() is None:
        return "no C++ compiler (c++, g++ or clang++; or $CXX) for the torch_cpp operators"
    return None


class TorchCppTarget(Target):
    def render(self, env, common: dict, programs) -> dict[str, str]:
        kernels_c = c.TARGET.render(env, common, programs)["kernels.c"]
        widths = {"x": common["D"], "g": common["K"], "u": common["D"]}
        # the C++ only declares and wraps the kernels: names, arguments and widths (no statements to print)
        kernels = [{"name": n, "doc": KERNEL_DOCS[n], "width": len(p.outputs),
                    "args": [{"name": a, "width": widths[a]} for a in ARG_ORDER[n]]} for n, p in programs.items()]
        text = env.get_template("torch_ops.cpp.j2").render(
            common, kernels=kernels, namespace=namespace(common["name"], kernels_c),
            kernels_sha256=hashlib.sha256(kernels_c.encode()).hexdigest())
        return {"torch_ops.cpp": text}

    def init_section(self, env, common: dict) -> str:
        bundled = json.loads(common["request"]).get("bundle_runtime", True)
        return env.get_template(self.init_template).render(common, target=self, bundle_runtime=bundled)


TARGET = TorchCppTarget(
    name="torch_cpp",
    printer=KernelPrinter(),
    templates={"torch_ops.cpp": "torch_ops.cpp.j2"},
    init_template="torch_cpp_init.py.j2",
    backends=backends_for("torch-cpp", torch_caller("cpu", lambda package: package.torch_cpp_invariants),
                          torch_cpp_unavailable),
)
