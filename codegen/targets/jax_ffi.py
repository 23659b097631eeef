"""Target ``jax_ffi``: the C kernels in JAX through the XLA FFI (``jax_ffi.cc``), exported as ``jax_ffi_invariants``.

The file is C++ handlers, one per kernel and float type, written against the
header-only XLA FFI API jaxlib ships; its text is the same for every module
(the module's kernels are bound at run time,
:mod:`optinv.codegen.runtime.jax_ffi`), so one compiled library serves every
package of an optinv version.  The harness kind ``jax-ffi`` runs every op
through reverse mode of ``jax_ffi_invariants`` as ``jax-c`` does for the
``pure_callback`` route.
"""

from __future__ import annotations

import importlib.util
import json

from optinv.codegen.printer import KernelPrinter
from optinv.codegen.targets import c
from optinv.codegen.targets.base import ARG_ORDER, KERNEL_DOCS, Target, backends_for
from optinv.codegen.targets.jax_source import reverse_mode_caller

#: Row widths of the kernels' inputs and outputs, by the names the handlers' table uses (D and K).
_WIDTH = {"x": "dim", "g": "count", "u": "dim"}
_OUT_WIDTH = {"forward": "count", "vjp": "dim", "jvp": "count", "hvp": "dim"}


def jax_ffi_unavailable() -> str | None:
    """Why the FFI route cannot run here (no jax, or no C++ compiler), or None."""
    if importlib.util.find_spec("jax") is None:
        return "jax is not importable (pip install 'optinv[jax]')"
    import shutil

    from optinv.codegen.runtime.jax_ffi import cxx_compiler  # imports jax: only once jax is known to be there

    cxx = cxx_compiler()
    return None if shutil.which(cxx) else f"no C++ compiler ({cxx!r} not found; set CXX)"


class JaxFfiTarget(Target):
    def render(self, env, common: dict, programs) -> dict[str, str]:
        """``jax_ffi.cc``: from the kernels' argument lists only, so the text is the same for every module."""
        kernels = [{"name": name, "doc": KERNEL_DOCS[name], "width": _OUT_WIDTH[name],
                    "args": [{"name": a, "width": _WIDTH[a]} for a in args]} for name, args in ARG_ORDER.items()]
        return {fname: env.get_template(tpl).render(version=common["version"], types=common["types"], kernels=kernels)
                for fname, tpl in self.templates.items()}

    def init_section(self, env, common: dict) -> str:
        bundled = json.loads(common["request"]).get("bundle_runtime", True)
        return env.get_template(self.init_template).render(common, target=self, bundle_runtime=bundled,
                                                           c_kernels=c.TARGET.attribute)


TARGET = JaxFfiTarget(
    name="jax_ffi",
    printer=KernelPrinter(),
    templates={"jax_ffi.cc": "jax_ffi.cc.j2"},
    init_template="jax_ffi_init.py.j2",
    backends=backends_for("jax-ffi", reverse_mode_caller("jax_ffi_invariants"), jax_ffi_unavailable),
)
